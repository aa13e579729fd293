"""The fake Asterisk's sessions and replies (pinc.sim.amiserver): one client's state, the
events it replays, and the answers to the actions that need more than one line.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Protocol

import trio

from pinc.ami.protocol import Message, encode_headers, parse_block

AMI_VERSION = "11.0.0"
ASTERISK_VERSION = "Asterisk 22.10.1"

SIMPLE_SUCCESS = {
    "originate": "Originate successfully queued",
    "redirect": "Redirect successful",
    "blindtransfer": "Transfer succeeded",
    "atxfer": "Atxfer successfully queued",
    "setvar": "Variable Set",
    "filter": "Filter Added",
    "events": "Events on",
    "hangup": "Channel Hungup",
    "getvar": "Result will follow",
}
# The channel snapshot block, in Asterisk's wire order (manager_channels.c).
SNAPSHOT_KEYS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)

EventItem = bytes | tuple[float, bytes]


@dataclass
class Event:
    delay: float
    raw: bytes
    message: Message
    classes: frozenset[str]
    text: str


@dataclass
class Session:
    stream: trio.SocketStream
    cancel: trio.CancelScope
    lock: trio.StrictFIFOLock = field(default_factory=trio.StrictFIFOLock)
    logged_in: bool = False
    challenge: str = ""
    events_on: bool = True
    classes: frozenset[str] | None = None  # None: every class
    includes: list[re.Pattern[str]] = field(default_factory=list)
    excludes: list[re.Pattern[str]] = field(default_factory=list)

    def wants(self, ev: Event) -> bool:
        if not self.events_on:
            return False
        if self.classes is not None and ev.classes and not (ev.classes & self.classes):
            return False
        if self.includes and not any(p.search(ev.text) for p in self.includes):
            return False
        return not any(p.search(ev.text) for p in self.excludes)

    async def send(self, data: bytes) -> bool:
        """Write ``data``; False when the client is gone."""
        try:
            async with self.lock:
                with trio.fail_after(10):
                    await self.stream.send_all(data)
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
            self.cancel.cancel()
            return False


def parse_event(item: EventItem) -> Event:
    delay, raw = (0.0, item) if isinstance(item, bytes) else (float(item[0]), item[1])
    if not raw.endswith(b"\n\n") and not raw.endswith(b"\r\n\r\n"):
        raw = raw.rstrip(b"\r\n") + b"\r\n\r\n"
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    message = parse_block(text)
    privilege = message.get("Privilege")
    classes = frozenset(c.strip().lower() for c in privilege.split(",") if c.strip()) - {"all"}
    return Event(delay, raw, message, classes, text.replace("\r\n", "\n"))


class Reply(Protocol):
    """The type of the ``reply`` helper passed to the action handlers."""

    def __call__(self, *headers: tuple[str, str], response: str = "Success") -> bytes: ...



def set_events(session: Session, mask: str) -> None:
    value = mask.strip().lower()
    if value in ("off", "no", "false", "0"):
        session.events_on, session.classes = False, None
    elif value in ("on", "yes", "true", "1", "all"):
        session.events_on, session.classes = True, None
    else:
        session.events_on = True
        session.classes = frozenset(c.strip() for c in value.split(",") if c.strip())

def add_filter(session: Session, msg: Message, reply: Reply) -> bytes:
    expr = msg.get("Filter")
    exclude = expr.startswith("!")
    try:
        pattern = re.compile(expr[1:] if exclude else expr)
    except re.error:
        return reply(("Message", "Filter Rejected"), response="Error")
    (session.excludes if exclude else session.includes).append(pattern)
    return reply(("Message", "Filter Added"))

def command_output(command: str) -> list[str]:
    if command.strip().lower() == "core show version":
        return [f"{ASTERISK_VERSION} built by pinc-sim on a x86_64 running Linux"]
    return [f"No such command '{command}' (type 'core show help {command}' for help)"]


def core_show_channels(
    channels: dict[str, dict[str, str]], seen: dict[str, float], aid: str, reply: Reply
) -> bytes:
    """The CoreShowChannels list of the live channels, as Asterisk writes it."""
    parts = [
        reply(("EventList", "start"), ("Message", "Channels will follow")),
    ]
    now = time.monotonic()
    head = [("ActionID", aid)] if aid else []
    for uniqueid, snap in channels.items():
        seconds = int(now - seen.get(uniqueid, now))
        headers = [("Event", "CoreShowChannel"), *head]
        headers += [(k, snap.get(k, "")) for k in SNAPSHOT_KEYS]
        headers += [
            ("Application", snap.get("Application", "")),
            ("ApplicationData", snap.get("ApplicationData", "")),
            ("Duration", f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"),
            ("BridgeId", snap.get("BridgeId", "")),
        ]
        parts.append(encode_headers(headers))
    parts.append(
        encode_headers(
            [
                ("Event", "CoreShowChannelsComplete"),
                *head,
                ("EventList", "Complete"),
                ("ListItems", str(len(channels))),
            ]
        )
    )
    return b"".join(parts)
