"""Reading AMI channel names and numbers, and the office's configuration: pure helpers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pinc.config import PbxConfig

# PJSIP/101-0000000a, SIP/101-00000001, IAX2/101-123, DAHDI/i1/101-1, Local/101@phones-00000001;1
_TECH_RE = re.compile(r"^(?P<tech>[A-Za-z0-9_]+)/(?P<peer>.+?)(?:-[0-9a-fA-F]+)?$")
_LOCAL_RE = re.compile(r"^Local/(?P<exten>[^@]+)@(?P<ctx>.+)-[0-9a-fA-F]+;(?P<half>[12])$")
_EPOCH_RE = re.compile(r"(\d{9,11})\.\d+$")


def clean(value: str) -> str:
    """A header value without the stray CR some framings leave on the last line."""
    return value.rstrip("\r ") if value[-1:] in ("\r", " ") else value


def digits(raw: str) -> str:
    """A phone number as digits only (a leading + and any punctuation dropped)."""
    raw = clean(raw)
    if raw in ("", "<unknown>", "unknown", "anonymous"):
        return ""
    return "".join(ch for ch in raw if ch.isdigit())


def epoch_of(uniqueid: str) -> float | None:
    """The creation second of a channel, from its ``[system-]epoch.seq`` Uniqueid."""
    m = _EPOCH_RE.search(uniqueid)
    return float(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class ChannelName:
    """What a channel's name says: its technology, the extension or number it names,
    the Local context, which Local half it is, and the pair key shared by both halves."""

    tech: str
    exten: str  # peer (PJSIP/101-..) or Local exten (Local/101@ctx-..)
    context: str  # Local channels only
    half: str  # "1" or "2" for Local channels, else ""
    pair: str  # Local/101@ctx-0001 for both halves; the name itself otherwise


def parse_name(name: str) -> ChannelName:
    m = _LOCAL_RE.match(name)
    if m:
        base = name[: name.rfind(";")]
        return ChannelName("Local", m.group("exten"), m.group("ctx"), m.group("half"), base)
    m = _TECH_RE.match(name)
    if m:
        peer = m.group("peer")
        if "/" in peer:  # DAHDI/i1/101-1, IAX2/host/101
            peer = peer.rsplit("/", 1)[1]
        return ChannelName(m.group("tech"), peer, "", "", name)
    return ChannelName("", "", "", "", name)


class Office:
    """The configuration's view of who is who: employee extensions and trunk contexts."""

    def __init__(self, pbx: PbxConfig) -> None:
        self._ext = re.compile(pbx.extension_pattern)
        self.trunk_contexts = frozenset(pbx.trunk_contexts)
        self.internal_contexts = frozenset(pbx.internal_contexts)
        self.recordings_dir = pbx.recordings_dir.rstrip("/")

    def is_ext(self, value: str) -> bool:
        return bool(value) and self._ext.match(value) is not None

    def phone_ext(self, name: ChannelName) -> str | None:
        """The employee extension a channel name points at, if it is a phone."""
        if name.tech == "Local":
            if name.context in self.trunk_contexts:
                return None
            return name.exten if self.is_ext(name.exten) else None
        if name.tech in ("", "Message"):
            return None
        return name.exten if self.is_ext(name.exten) else None

    def recording_path(self, raw: str) -> str | None:
        """A recording file relative to the recordings directory (MixMonitor args allowed)."""
        raw = clean(raw).split(",", 1)[0].strip().strip('"')
        if not raw:
            return None
        prefix = self.recordings_dir + "/"
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
        return raw or None
