"""What both CRM profiles share: the callback, the facts of a call, the owner placeholder.

A profile (``vtiger.py``, ``salesplatform.py``) is a pure function of one committed
change, what was already queued for its call and :class:`Parties` (who the CRM knows):
it returns a :class:`Plan`, the callbacks to queue in order. Who owns a missed call, or
one answered by an extension with no CRM user, is decided later, when the callback is
sent (the responsible manager needs a lookup): such callbacks carry :data:`OWNER` where
the owner's extension goes and ``_owner`` = the customer number (``crm/owners.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from pinc.calls.model import CallChange
from pinc.config import Config
from pinc.crm.numbers import crm_number, extension

OWNER: Final = "@owner"  # the call's owner in the CRM: filled in by the delivery worker
NORMAL: Final = "Normal Clearing"
BUSY: Final = "User busy"
REJECTED: Final = "Call Rejected"
ELSEWHERE: Final = "Answered elsewhere"  # SalesPlatform shows it as a status of its own
NO_ANSWER: Final = "NO ANSWER"
ANONYMOUS: Final = "anonymous"  # the customer number of an inbound call with no caller id
CAUSE_ANSWERED_ELSEWHERE: Final = 26


@dataclass(frozen=True)
class Callback:
    """One form-encoded request to the CRM (without ``vtigersignature``).

    Keys starting with ``_`` are bookkeeping for pinc (never sent): ``_user`` the
    employee a SalesPlatform row belongs to, ``_owner`` the customer number whose
    responsible manager replaces :data:`OWNER`, ``_hold`` the extension a held call
    waits for.
    """

    kind: str  # the callstatus: StartApp, DialBegin, DialAnswer, Hangup, EndCall, Record
    params: dict[str, str]


@dataclass(frozen=True)
class Plan:
    callbacks: list[Callback] = field(default_factory=list)
    hold: str = ""  # an extension with no CRM user and no fallback: queue the call, held


History = Sequence[Callback]


@dataclass(frozen=True)
class Parties:
    """Who the CRM knows when a change is planned (from ``crm/directory.py``)."""

    mapped: Callable[[str], bool]  # this extension is a CRM user's
    fallback: str = ""  # extension of crm.fallback_user ("" = hold such calls back)
    is_ext: Callable[[str], bool] = lambda ext: bool(ext)  # matches pbx.extension_pattern


@dataclass(frozen=True)
class View:
    """The facts of a call snapshot both profiles need, normalised once."""

    call_id: str
    direction: str
    status: str
    customer: str  # in crm.number_format
    raw_customer: str  # as the journal has it (routing normalises it itself)
    employee: str  # outbound: who placed it; inbound: who answered last ("" if nobody)
    started: str
    ended: str
    duration: int
    talk: int
    legs: list[dict[str, Any]]
    transfers: list[dict[str, Any]]
    cause: int | None
    answered_at: str | None
    ended_at: str | None

    @property
    def completed(self) -> bool:
        return self.status == "completed"


def crm_time(iso_utc: str | None, tz: str) -> str:
    """ISO 8601 UTC from the journal -> ``YYYY-MM-DD HH:MM:SS`` in the CRM's time zone."""
    if not iso_utc:
        return ""
    try:
        at = datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return at.astimezone(ZoneInfo(tz or "UTC")).strftime("%Y-%m-%d %H:%M:%S")


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def view(change: CallChange, config: Config) -> View:
    call = change.call
    crm = config.crm
    direction = str(call.get("direction") or "")
    raw_customer = str((call.get("from") if direction == "inbound" else call.get("to")) or "")
    employee = call.get("from") if direction == "outbound" else call.get("answered_by")
    cause = call.get("cause")
    customer = crm_number(raw_customer, crm.number_format, config.routing)
    if not customer and direction == "inbound":
        # a withheld caller id: SalesPlatform ignores a DialBegin without a caller, so the
        # call would leave no row; vtiger shows the word as the customer's number
        customer = ANONYMOUS
    return View(
        call_id=change.call_id,
        direction=direction,
        status=str(call.get("status") or ""),
        customer=customer,
        raw_customer=raw_customer,
        employee=extension(employee),
        started=crm_time(call.get("started_at") or change.at, crm.timezone),
        ended=crm_time(call.get("ended_at") or change.at, crm.timezone),
        duration=_int(call.get("duration")),
        talk=_int(call.get("talk")),
        legs=[leg for leg in call.get("legs") or [] if isinstance(leg, dict)],
        transfers=[t for t in call.get("transfers") or [] if isinstance(t, dict)],
        cause=cause if isinstance(cause, int) and not isinstance(cause, bool) else None,
        answered_at=call.get("answered_at") or None,
        ended_at=call.get("ended_at") or None,
    )


def hangup_cause(status: str) -> tuple[str, str | None]:
    """(causetxt, HangupCause) of a whole call, within vtiger's known statuses."""
    if status == "completed":
        return NORMAL, None
    if status == "busy":
        return BUSY, None
    if status == "failed":
        return REJECTED, None
    return NORMAL, NO_ANSWER  # missed, no-answer, anything unforeseen


def leg_cause(legs: Sequence[dict[str, Any]], talked: bool,
              answers: Sequence[str | None] = ()) -> tuple[str, str | None]:
    """(causetxt, HangupCause) of one employee's own legs (SalesPlatform's per-user row).

    ``answers`` are the times anybody answered the call: a leg cancelled while one of them
    happened was answered elsewhere, whatever its cause (a pickup ends the ringing phone
    with Normal Clearing, not 26)."""
    if talked:
        return NORMAL, None
    results = [leg.get("result") for leg in legs]
    if "busy" in results:
        return BUSY, None
    last = legs[-1] if legs else {}
    if last.get("result") == "cancelled" and (
            last.get("cause") == CAUSE_ANSWERED_ELSEWHERE or _answered_during(last, answers)):
        return ELSEWHERE, None
    if results and all(r == "failed" for r in results):
        return REJECTED, None
    return NORMAL, NO_ANSWER


def _answered_during(leg: dict[str, Any], answers: Sequence[str | None]) -> bool:
    """Somebody answered while this leg rang (times have whole seconds: the leg may end
    in the second before the answer is stamped)."""
    rang, ended = _epoch(leg.get("rang_at")), _epoch(leg.get("ended_at"))
    if rang is None or ended is None:
        return False
    return any(at is not None and rang <= at <= ended + 1 for at in map(_epoch, answers))


def _epoch(iso_utc: object) -> float | None:
    if not isinstance(iso_utc, str) or not iso_utc:
        return None
    try:
        return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def talk_by_person(v: View, is_ext: Callable[[str], bool]) -> dict[str, int]:
    """Seconds each employee talked on an inbound call: from their answer to the next
    answer by someone else, their own blind transfer away, or the end of the call. A FollowMe
    mobile's talk belongs to the employee whose FollowMe it is. The times come from the
    legs; where they are missing the whole talk goes to who answered last."""
    answered = []
    for leg in v.legs:
        at = _epoch(leg.get("answered_at"))
        if at is not None:
            answered.append((at, extension(leg.get("ext"))))
    answered.sort(key=lambda item: item[0])
    end = _epoch(v.ended_at)
    out: dict[str, int] = {}
    if not answered or end is None:
        if v.employee and v.talk:
            out[v.employee] = v.talk
        return out
    followme = {extension(t.get("to")): extension(t.get("from"))
                for t in v.transfers if t.get("kind") == "followme"}
    for i, (start, ext) in enumerate(answered):
        stop = end
        for later, other in answered[i + 1 :]:
            if other != ext and later >= start:
                stop = min(stop, later)
                break
        for t in v.transfers:
            # blind, redirect, crm: they leave at once; attended: they stay on (consulting,
            # the customer on hold) until the target takes over, the next answer above
            if t.get("kind") == "attended" or extension(t.get("from")) != ext:
                continue
            at = _epoch(t.get("at"))
            if at is not None and start < at < stop:
                stop = at
        person = ext if is_ext(ext) else followme.get(ext) or v.employee or ext
        out[person] = out.get(person, 0) + max(0, round(stop - start))
    last = v.employee
    if v.completed and last and last not in out:
        # who talked last never rang (a call pickup, one taken from a parking lot): from
        # when the call came to them (the transfer to them, else the others' last answer)
        came = [a for t in v.transfers if extension(t.get("to")) == last
                and (a := _epoch(t.get("at"))) is not None]
        start = max(came) if came else answered[-1][0]
        out[last] = max(0, round(end - start))
    total = sum(out.values())
    if total > v.talk and total:
        # rounding and clock steps: never bill more than the call's own talk
        scale = v.talk / total
        out = {person: int(seconds * scale) for person, seconds in out.items()}
    return out

