"""Synthetic call snapshots (the ``pinc replay`` shape) for delivery tests and the bench."""

from __future__ import annotations

from typing import Any

from pinc.calls.model import CallChange


def crm_form(number: str) -> str:
    """The customer number a CRM row shows for a number as Asterisk gave it (docs/crm.md,
    Russia's numbering: country 7, trunk prefix 8, 10 national digits): a withheld caller
    is "anonymous"; a national number gets the country code, so that 8 916 ... links the
    contact stored as +7 916 ..."""
    if not number:
        return "anonymous"
    if len(number) == 11 and number.startswith("8"):
        return "7" + number[1:]
    return "7" + number if len(number) == 10 else number


def call_snapshot(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "c1", "linkedid": "1795480926.22", "direction": "inbound", "status": "ringing",
        "from": "79161234567", "to": "74951230000", "started_at": "2026-11-24T00:42:06Z",
        "answered_at": None, "ended_at": None, "duration": 0, "talk": 0, "answered_by": None,
        "legs": [], "transfers": [], "recording": None, "cause": None, "cause_txt": None,
        "end_reason": None, "linkedids": [], "record_id": None, "origin": None,
    }
    base.update(fields)
    return base


def change(kind: str, call: dict[str, Any], at: str | None = None, **data: Any) -> CallChange:
    return CallChange(kind=kind, call_id=call["id"], at=at or call["started_at"], call=call,
                      data=data)


def answered_inbound_changes(call_id: str, number: str = "79161234567") -> list[CallChange]:
    """Ringing on 101 and 102, 101 answers, completed with a recording: 5 vtiger callbacks."""
    ringing = call_snapshot(id=call_id, linkedid=f"1795480926.{abs(hash(call_id)) % 10000}",
                            **{"from": number},
                            legs=[{"ext": "101", "result": None}, {"ext": "102", "result": None}])
    answered = {**ringing, "status": "answered", "answered_at": "2026-11-24T00:42:08Z",
                "answered_by": "101"}
    ended = {**answered, "status": "completed", "ended_at": "2026-11-24T00:42:48Z",
             "duration": 42, "talk": 35, "cause": 16, "recording": f"{call_id}.wav",
             "legs": [{"ext": "101", "result": "answered"}, {"ext": "102", "result": "cancelled"}]}
    return [
        change("call.started", ringing),
        change("call.ringing", ringing, ext="101"),
        change("call.ringing", ringing, ext="102"),
        change("call.answered", answered, at="2026-11-24T00:42:08Z"),
        change("call.ended", ended, at="2026-11-24T00:42:48Z"),
    ]
