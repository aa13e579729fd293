"""CDR rows grouped by linkedid into calls, with what CDR can tell. Pure.

CDR knows who dialled whom, which dial was answered and for how long, and the recording;
it does not know rings that never reached a Dial, hold, or transfers as such. So a call
recovered here has: direction, from/to, status, legs (one per employee phone a Dial,
Queue or FollowMe rang, with its disposition), answered_by (the employee answered last),
talk (the caller's billable seconds), times to the second and the recording;
``transfers`` stay empty. It is marked ``"source": "cdr"`` (docs/recovery.md lists what
is less precise).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pinc.calls.model import Call, CallIdFactory, Leg
from pinc.calls.names import Office, digits, parse_name
from pinc.cdr.rows import CdrRow

_LEG_RESULT = {
    "ANSWERED": "answered",
    "NO ANSWER": "no-answer",
    "BUSY": "busy",
    "FAILED": "failed",
    "CONGESTION": "failed",
}
# one leg per phone: of several rows for one phone, the strongest result wins
_RANK = {"answered": 5, "busy": 4, "no-answer": 3, "cancelled": 2, "failed": 1}
NEAR = 1.0  # seconds: a ring that ended this close to another's answer was cancelled by it


def group(rows: Iterable[CdrRow]) -> dict[str, list[CdrRow]]:
    """Rows by call (linkedid), each call's rows in the order they started."""
    calls: dict[str, list[CdrRow]] = defaultdict(list)
    for row in rows:
        calls[row.key].append(row)
    for rows_ in calls.values():
        rows_.sort(key=lambda r: (r.start, r.sequence))
    return dict(calls)


def _phone(office: Office, channel: str) -> str | None:
    return office.phone_ext(parse_name(channel)) if channel else None


def _entry(rows: list[CdrRow], office: Office) -> tuple[CdrRow | None, str]:
    """The row where an outside call came in, and the company number it dialled."""
    for row in rows:
        if row.dcontext in office.trunk_contexts:
            return row, digits(row.dst)
    for row in sorted(rows, key=lambda r: not r.dstchannel):
        # a blind transfer rewrites dcontext: the caller's channel tells
        name = parse_name(row.channel)
        if name.tech == "Local" and name.context in office.trunk_contexts:
            return row, digits(name.exten)
    first = rows[0]
    if not _phone(office, first.channel) and not office.is_ext(first.src) and len(
        digits(first.src)
    ) >= 5 and first.dstchannel:
        return first, ""
    return None, ""


def _leg_of(row: CdrRow, office: Office, followme: str | None) -> Leg | None:
    ext = _phone(office, row.dstchannel)
    if not ext and followme:  # FollowMe's outside step: the leg is the number it rang
        name = parse_name(row.dstchannel)
        if name.tech == "Local" and digits(name.exten) == name.exten and name.exten:
            ext = name.exten
    if not ext:
        return None
    result = _LEG_RESULT.get(row.disposition, "failed")
    return Leg(
        ext=ext, rang_at=row.start, answered_at=row.answer if result == "answered" else None,
        ended_at=row.end, result=result, channel=row.dstchannel,
    )


def _legs(rows: list[CdrRow], office: Office, employee: str | None,
          followme: str | None) -> list[Leg]:
    legs: dict[str, Leg] = {}
    queue_rows: set[str] = set()
    for row in rows:
        if not row.dstchannel:
            continue
        leg = _leg_of(row, office, followme)
        if leg is None or leg.ext == employee:
            continue
        if row.lastapp == "Queue":
            queue_rows.add(leg.ext)
        if followme and leg.ext == followme and leg.result == "failed":
            leg.result = "no-answer"  # FollowMe's own record of a desk step that timed out
        have = legs.get(leg.ext)
        if have is None:
            legs[leg.ext] = leg
        elif _RANK[leg.result or "failed"] > _RANK[have.result or "failed"]:
            leg.rang_at = min(have.rang_at or leg.rang_at or 0.0, leg.rang_at or 0.0)
            legs[leg.ext] = leg
    answers = [leg.answered_at for leg in legs.values() if leg.answered_at is not None]
    ended = max(r.end for r in rows)
    for leg in legs.values():
        if leg.result != "no-answer" or leg.ended_at is None:
            continue
        lost = any(abs(leg.ended_at - at) <= NEAR for at in answers)
        gave_up = leg.ext in queue_rows and abs(leg.ended_at - ended) <= NEAR
        if lost or gave_up:
            leg.result = "cancelled"
    return sorted(legs.values(), key=lambda leg: leg.rang_at or 0.0)


def build_call(key: str, rows: list[CdrRow], office: Office, new_id: CallIdFactory) -> Call | None:
    """One call from its rows; None when no employee and no trunk took part."""
    entry, did = _entry(rows, office)
    employee: str | None = None
    if entry is not None:
        direction, from_number, to_number = "inbound", digits(entry.src), did
    else:
        caller = next((r for r in rows if office.is_ext(r.src) and digits(r.dst)), None)
        if caller is None:
            return None
        employee = caller.src
        direction = "internal" if office.is_ext(caller.dst) else "outbound"
        from_number = employee
        to_number = caller.dst if direction == "internal" else digits(caller.dst)
    started = min(r.start for r in rows)
    ended = max(r.end for r in rows)
    call = Call(
        id=new_id(key, started), linkedid=key, direction=direction, from_number=from_number,
        to_number=to_number, started_at=started, ended_at=ended,
        duration=max(0, round(ended - started)), linkedids=[key],
    )
    followme = next(
        (r.lastdata.split(",", 1)[0] for r in rows if r.lastapp == "FollowMe"), None
    )
    call.legs = _legs(rows, office, employee, followme)
    answered = [leg for leg in call.legs if leg.result == "answered"]
    if entry is not None:
        talk = sum(r.billsec for r in rows if r.channel == entry.channel and r.dstchannel
                   and r.disposition == "ANSWERED")
        if answered and talk > 0:
            call.status = "completed"
            last = max(answered, key=lambda leg: leg.answered_at or 0.0).ext
            call.answered_by = last if office.is_ext(last) else (followme or last)
            call.answered_at = min(leg.answered_at or ended for leg in answered)
        else:
            call.status = "missed"
    else:
        picked = [r for r in rows if r.dstchannel and r.disposition == "ANSWERED" and r.billsec]
        talk = max((r.billsec for r in picked), default=0)
        if picked:
            call.status = "completed"
            call.answered_at = min(r.answer or r.start for r in picked)
            call.answered_by = employee if direction == "outbound" else (
                answered[-1].ext if answered else to_number)
        else:
            call.status = _unanswered(rows)
    call.talk = talk
    if call.status == "completed":
        call.recording = next(
            (p for r in rows if r.recording and (p := office.recording_path(r.recording))), None
        )
    return call


def _unanswered(rows: list[CdrRow]) -> str:
    dialled = [r for r in rows if r.dstchannel]
    if any(r.disposition == "BUSY" or r.lastapp == "Busy" for r in rows):
        return "busy"
    if any(r.disposition in ("FAILED", "CONGESTION") for r in dialled) and not any(
        r.disposition in ("NO ANSWER", "ANSWERED") for r in dialled
    ):
        return "failed"
    return "no-answer"


def calls_from_rows(rows: Iterable[CdrRow], office: Office, new_id: CallIdFactory) -> list[Call]:
    """Every call the rows tell of, in the order they started."""
    out = []
    for key, rows_ in group(rows).items():
        call = build_call(key, rows_, office, new_id)
        if call is not None:
            out.append(call)
    out.sort(key=lambda c: (c.started_at or 0.0, c.linkedid))
    return out
