"""The call model: Call, Leg, Transfer, and the CallChange the tracker emits.

A ``CallChange`` carries a snapshot of its call as a plain dict in the shape
``pinc replay`` prints (see DESIGN.md), so the journal, the websocket feed and the
CRM delivery never share the tracker's mutable state.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

ChangeKind = Literal[
    "call.started",
    "call.ringing",
    "call.answered",
    "call.transferred",
    "call.recording",
    "call.held",
    "call.ended",
]
CHANGE_KINDS: Final[tuple[str, ...]] = (
    "call.started",
    "call.ringing",
    "call.answered",
    "call.transferred",
    "call.recording",
    "call.held",
    "call.ended",
)
DIRECTIONS: Final = ("inbound", "outbound", "internal")
LIVE_STATUSES: Final = ("ringing", "answered")
FINAL_STATUSES: Final = ("completed", "missed", "no-answer", "busy", "failed")
LEG_RESULTS: Final = ("answered", "no-answer", "busy", "cancelled", "failed")
TRANSFER_KINDS: Final = ("blind", "attended", "followme", "redirect", "crm")

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _b36(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(reversed(out)).rjust(width, "0")


def call_id_for(linkedid: str) -> str:
    """A short, sortable, deterministic id from Asterisk's Linkedid.

    ``1795480926.22`` -> 7 base-36 digits of the epoch + 5 of the sequence. A
    ``systemname-`` prefix is dropped; anything unparseable falls back to a
    sanitised copy so an id always exists.
    """
    m = re.search(r"(\d+)\.(\d+)$", linkedid)
    if not m:
        return "x" + re.sub(r"[^0-9A-Za-z]", "", linkedid)[:24]
    return _b36(int(m.group(1)), 7) + _b36(int(m.group(2)) % 36**5, 5)


def random_call_id(linkedid: str, started: float | None) -> str:
    """A public call id for a live pinc: 7 base-36 digits of the start second (so ids
    still sort by time) and 14 random ones (72 bits), so nobody can guess another call's
    id from one they know. ``pinc replay`` keeps the deterministic ``call_id_for``."""
    del linkedid  # the id must not be derivable from what Asterisk shows
    stamp = _b36(int(started or 0) % 36**7, 7)
    return stamp + "".join(secrets.choice(_B36) for _ in range(14))


CallIdFactory = Callable[[str, float | None], str]


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with a Z, to the second (the journal's format)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Leg:
    """One employee phone (or FollowMe mobile) the PBX made ring."""

    ext: str
    rang_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    result: str | None = None  # None while ringing / talking; then one of LEG_RESULTS
    cause: int | None = None
    cause_txt: str | None = None
    channel: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ext": self.ext,
            "result": self.result,
            "rang_at": iso(self.rang_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "cause": self.cause,
            "cause_txt": self.cause_txt,
        }


@dataclass
class Transfer:
    kind: str  # one of TRANSFER_KINDS
    from_ext: str
    to: str
    at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "from": self.from_ext, "to": self.to, "at": iso(self.at)}


@dataclass
class Call:
    id: str
    linkedid: str
    direction: str = "inbound"
    status: str = "ringing"
    from_number: str = ""
    to_number: str = ""
    started_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    duration: int = 0
    talk: int = 0
    answered_by: str | None = None
    legs: list[Leg] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    recording: str | None = None
    cause: int | None = None
    cause_txt: str | None = None
    end_reason: str | None = None  # e.g. "ended while pinc was disconnected", "stale"
    voicemail: bool = False  # the caller reached voicemail (VoiceMail ran on the call)
    held: bool = False  # a party put the answered call on hold (live calls only)
    linkedids: list[str] = field(default_factory=list)  # merged by attended transfers
    record_id: str | None = None  # the CRM record that asked for a click-to-call
    origin: str | None = None  # "crm" for click-to-call from the CRM or the API

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The ``pinc replay`` shape: the contract fields first, then extras."""
        return {
            "id": self.id,
            "linkedid": self.linkedid,
            "direction": self.direction,
            "status": self.status,
            "from": self.from_number,
            "to": self.to_number,
            "started_at": iso(self.started_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "duration": self.duration,
            "talk": self.talk,
            "answered_by": self.answered_by,
            "legs": [leg.to_dict() for leg in self.legs],
            "transfers": [t.to_dict() for t in self.transfers],
            "recording": self.recording,
            "cause": self.cause,
            "cause_txt": self.cause_txt,
            "end_reason": self.end_reason,
            "voicemail": self.voicemail,
            "held": self.held,
            "linkedids": list(self.linkedids),
            "record_id": self.record_id,
            "origin": self.origin,
        }


@dataclass(frozen=True, slots=True)
class CallChange:
    """Something that happened to a call. ``call`` is the call's snapshot after it."""

    kind: str  # one of CHANGE_KINDS
    call_id: str
    at: str  # ISO 8601 UTC
    call: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)  # e.g. {"ext": "101"} for ringing

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "call_id": self.call_id,
            "at": self.at,
            "data": self.data,
            "call": self.call,
        }


def call_from_dict(d: dict[str, Any]) -> Call:
    """A call back from its ``to_dict`` form (the journal's live calls after a restart)."""

    def ts(value: Any) -> float | None:
        if not value:
            return None
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None

    linkedid = str(d.get("linkedid") or "")
    call = Call(
        id=str(d.get("id") or call_id_for(linkedid)),
        linkedid=linkedid,
        direction=str(d.get("direction") or "inbound"),
        status=str(d.get("status") or "ringing"),
        from_number=str(d.get("from") or ""),
        to_number=str(d.get("to") or ""),
        started_at=ts(d.get("started_at")),
        answered_at=ts(d.get("answered_at")),
        answered_by=d.get("answered_by"),
        recording=d.get("recording"),
        record_id=d.get("record_id"),
        origin=d.get("origin"),
        voicemail=bool(d.get("voicemail")),
        linkedids=[str(x) for x in d.get("linkedids") or []],
    )
    for leg in d.get("legs") or []:
        call.legs.append(
            Leg(
                ext=str(leg.get("ext") or ""),
                rang_at=ts(leg.get("rang_at")),
                answered_at=ts(leg.get("answered_at")),
                ended_at=ts(leg.get("ended_at")),
                result=leg.get("result"),
            )
        )
    for t in d.get("transfers") or []:
        call.transfers.append(
            Transfer(
                kind=str(t.get("kind")),
                from_ext=str(t.get("from") or ""),
                to=str(t.get("to") or ""),
                at=ts(t.get("at")),
            )
        )
    return call
