"""Helpers for the journal tests: configs on tmp_path, calls and changes, a tracker stand-in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pinc.ami.protocol import Message
from pinc.calls.model import Call, CallChange, Leg, iso
from pinc.config import Config, replace

T0 = 1_795_480_926.0


def make_config(path: Path, **journal: Any) -> Config:
    return replace(Config(), journal={"path": str(path), **journal})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "pinc.db"


@pytest.fixture
def config(db_path: Path) -> Config:
    return make_config(db_path)


def call(n: int, status: str = "ringing", **extra: Any) -> Call:
    c = Call(
        id=f"c{n:05d}",
        linkedid=f"{int(T0)}.{n}",
        direction="inbound",
        status=status,
        from_number=f"7903555{n:04d}",
        to_number="74951230000",
        started_at=T0 + n,
        legs=[Leg(ext="101", rang_at=T0 + n)],
    )
    for key, value in extra.items():
        setattr(c, key, value)
    return c


def change(kind: str, c: Call, **data: Any) -> CallChange:
    return CallChange(kind=kind, call_id=c.id, at=str(iso(T0)), call=c.to_dict(), data=data)


def lifecycle(n: int) -> list[CallChange]:
    """started, ringing, answered, ended for call ``n``."""
    c = call(n)
    out = [change("call.started", c), change("call.ringing", c, ext="101")]
    c.status = "answered"
    c.answered_at = T0 + n + 2
    c.answered_by = "101"
    c.legs[0].result = "answered"
    out.append(change("call.answered", c, ext="101"))
    c.status = "completed"
    c.ended_at = T0 + n + 9
    c.duration, c.talk = 9, 7
    out.append(change("call.ended", c))
    return out


class StandInTracker:
    """A tiny stand-in for pinc.calls.tracker.Tracker (used only until it lands):
    Newchannel starts a call per Linkedid, Hangup of the first channel ends it."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.restored: list[dict[str, Any]] = []
        self.resynced: list[Sequence[Message]] = []

    def feed(self, msg: Message, at: float | None = None) -> list[CallChange]:
        linkedid = msg.get("Linkedid")
        ts = at or T0
        if msg.name == "Newchannel" and linkedid and linkedid not in self.calls:
            c = Call(
                id="k" + linkedid.replace(".", ""),
                linkedid=linkedid,
                started_at=ts,
                from_number=msg.get("CallerIDNum"),
            )
            self.calls[linkedid] = c
            return [CallChange("call.started", c.id, str(iso(ts)), c.to_dict())]
        if msg.name == "Hangup" and linkedid in self.calls and msg.get("Uniqueid") == linkedid:
            c = self.calls.pop(linkedid)
            c.status, c.ended_at = "missed", ts
            return [CallChange("call.ended", c.id, str(iso(ts)), c.to_dict())]
        return []

    def note_originate(
        self, channel_id: str, *, ext: str, number: str, record_id: str | None, origin: str
    ) -> None:
        return None

    def note_transfer(self, call_id: str, to: str = "") -> None:
        return None

    def transfer_result(self, call_id: str, to: str, accepted: bool) -> None:
        return None

    def oddities(self) -> dict[str, int]:
        return {}

    def oddity_example(self, kind: str) -> str:
        return ""

    def resync(
        self, channels: Sequence[Message], at: float, *, periodic: bool = False
    ) -> list[CallChange]:
        self.resynced.append(channels)
        alive = {m.get("Linkedid") for m in channels}
        out = []
        for linkedid in [k for k in self.calls if k not in alive]:
            c = self.calls.pop(linkedid)
            c.status, c.ended_at = "missed", at
            c.end_reason = "ended while pinc was disconnected"
            out.append(CallChange("call.ended", c.id, str(iso(at)), c.to_dict()))
        return out

    def expire(self, at: float) -> list[CallChange]:
        return []

    def restore(self, calls: Sequence[dict[str, Any]]) -> None:
        self.restored.extend(calls)
        for d in calls:
            self.calls[d["linkedid"]] = Call(
                id=d["id"], linkedid=d["linkedid"], status=d["status"], from_number=d["from"]
            )

    def live_calls(self) -> list[Call]:
        return list(self.calls.values())

    def live_count(self) -> int:
        return len(self.calls)

    def call_of_extension(self, ext: str) -> str | None:
        return None

    def channels_of(self, call_id: str) -> list[dict[str, str]]:
        return []
