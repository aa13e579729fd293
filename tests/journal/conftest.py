"""Helpers for the journal tests: configs on tmp_path, calls and changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
