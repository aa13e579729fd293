"""The ``salesplatform`` profile: SalesPlatform vtiger's "Звонки", one row per (call, user).

What the real SalesPlatform 7.2 does with each callback is in reference/vtiger.md's
Addendum. The rules this profile keeps:

- a row exists only for a CRM user: ``DialBegin`` per ringing employee who is a CRM
  user (SalesPlatform ignores other destinations), and every later per-user callback
  names that user, because ``EndCall`` / ``Record`` for a number that is no user's
  overwrite *every* row of the call;
- each row gets its user's own outcome: ``Hangup`` with the leg's own cause
  (``Answered elsewhere`` is a status SalesPlatform shows), ``EndCall`` with the
  seconds that user talked, ``Record`` for each user who talked;
- ``StartApp`` fails for inbound calls there (no row, an error text in a 200), so a
  call that rang no CRM user, or that someone without a CRM user answered, gets a row
  of its owner (:data:`~pinc.crm.callbacks.OWNER`: the responsible manager, else
  crm.default_user) as ``DialBegin`` -> [``DialAnswer``] -> ``Hangup`` -> ``EndCall``
  [-> ``Record``], checked live to leave an ``inbound`` ``no-answer`` (or
  ``completed``) row owned by that manager;
- the recording link is pinc's, without the secret: SalesPlatform's ListenRecord
  appends ``&secret=`` server-side.
"""

from __future__ import annotations

from pinc.calls.model import CallChange
from pinc.config import Config
from pinc.crm.callbacks import (
    NO_ANSWER,
    NORMAL,
    OWNER,
    Callback,
    History,
    Parties,
    Plan,
    View,
    hangup_cause,
    leg_cause,
    talk_by_person,
    view,
)
from pinc.crm.numbers import extension
from pinc.crm.vtiger import recording_link


def _rung(v: View, change: CallChange, parties: Parties) -> list[str]:
    """CRM users whose phone rang on an inbound call, in the order they rang."""
    exts = [leg.get("ext") for leg in v.legs]
    if change.kind == "call.ringing":
        exts.append(change.data.get("ext"))
    users: list[str] = []
    for raw in exts:
        ext = extension(raw)
        if ext and parties.is_ext(ext) and parties.mapped(ext) and ext not in users:
            users.append(ext)
    return users


def _dial_begin(v: View, user: str, outbound: bool) -> Callback:
    if outbound:
        params = {"callerIdNumber": user, "dialString": f"SIP/{v.customer}"}
    else:
        params = {"callerIdNumber": v.customer, "dialString": f"SIP/{user}"}
    return Callback(
        "DialBegin",
        {
            "callUUID": v.call_id,
            "event": "DialBegin",
            **params,
            "connectedLineName": v.customer,
            "StartTime": v.started,
            "_user": user,
        },
    )


def _row_end(
    v: View, user: str, cause: tuple[str, str | None], billable: int, link: str | None
) -> list[Callback]:
    """Hangup, EndCall and (when they talked) Record of one user's row."""
    causetxt, hangup_cause_ = cause
    hangup = {"callUUID": v.call_id, "causetxt": causetxt, "callerIdNum": user}
    if hangup_cause_:
        hangup["HangupCause"] = hangup_cause_
    hangup |= {"EndTime": v.ended, "Duration": str(v.duration), "_user": user}
    out = [
        Callback("Hangup", hangup),
        Callback(
            "EndCall",
            {
                "callUUID": v.call_id,
                "callerNumber": user,
                "starttime": v.started,
                "endtime": v.ended,
                "duration": str(v.duration),
                "billableseconds": str(billable),
                "_user": user,
            },
        ),
    ]
    if link and billable > 0:
        out.append(
            Callback(
                "Record",
                {"callUUID": v.call_id, "callerNumber": user, "recordinglink": link,
                 "_user": user},
            )
        )
    return out


def _with_owner(callbacks: list[Callback], customer: str) -> list[Callback]:
    return [Callback(cb.kind, {**cb.params, "_owner": customer}) for cb in callbacks]


def plan(
    change: CallChange, history: History, config: Config, parties: Parties, recording_ok: bool
) -> Plan:
    v = view(change, config)
    ended = change.kind == "call.ended"
    outbound = v.direction == "outbound"
    if not v.customer and not ended:
        return Plan()
    hold = ""
    if outbound:
        employee = v.employee
        if employee and not parties.mapped(employee):
            employee, hold = (parties.fallback, "") if parties.fallback else (employee, employee)
        users = [employee] if employee else []
    else:
        users = _rung(v, change, parties)
        if change.kind == "call.ringing":
            ringing = extension(change.data.get("ext"))
            users = [u for u in users if u == ringing] or users
        answerer = extension(v.employee) if v.status in ("answered", "completed") else ""
        if answerer and parties.is_ext(answerer) and parties.mapped(answerer):
            if answerer not in users:  # picked up a call that never rang that phone
                users.append(answerer)
    begun = [str(cb.params.get("_user", "")) for cb in history if cb.kind == "DialBegin"]
    out: list[Callback] = []
    for user in users:
        if user not in begun:
            out.append(_dial_begin(v, user, outbound))
            begun.append(user)
    answered = {str(cb.params.get("_user")) for cb in history if cb.kind == "DialAnswer"}
    answerer = (users[0] if users else "") if outbound else extension(v.employee)
    if v.status in ("answered", "completed") and answerer in begun and answerer not in answered:
        a, b = (answerer, v.customer) if outbound else (v.customer, answerer)
        out.append(Callback("DialAnswer", {"callUUID": v.call_id, "callerid1": a,
                                           "callerid2": b, "_user": answerer}))
    if not ended:
        return Plan(out, hold)
    link = recording_link(config, v.call_id) if recording_ok and v.completed else None
    hung = {str(cb.params.get("_user")) for cb in history if cb.kind == "Hangup"}
    rows = [u for u in begun if u != OWNER and u not in hung]
    if outbound:
        for user in rows:
            out += _row_end(v, user, hangup_cause(v.status), v.talk, link)
        return Plan(out, hold)
    talk = talk_by_person(v, parties.is_ext)
    answers = [v.answered_at, *(leg.get("answered_at") for leg in v.legs)]
    for user in rows:
        legs = [leg for leg in v.legs if extension(leg.get("ext")) == user]
        own = talk.get(user, 0)
        cause = leg_cause(legs, own > 0 or _last_talker(v, user), answers)
        out += _row_end(v, user, cause, own, link)
    if OWNER not in begun and _needs_owner(v, parties):
        out += _owner_row(v, talk, parties, link)
    return Plan(out, hold)


def _last_talker(v: View, user: str) -> bool:
    return v.completed and user == extension(v.employee)


def _needs_owner(v: View, parties: Parties) -> bool:
    """Missed, or talked to by nobody with a CRM user: the owner gets a row."""
    if not v.completed:
        return True
    answerer = extension(v.employee)
    return not (answerer and parties.is_ext(answerer) and parties.mapped(answerer))


def _owner_row(
    v: View, talk: dict[str, int], parties: Parties, link: str | None
) -> list[Callback]:
    """The owner's own row: ringing -> [talking ->] completed / no-answer."""
    block = [_dial_begin(v, OWNER, outbound=False)]
    if v.completed:
        block.append(Callback("DialAnswer", {"callUUID": v.call_id, "callerid1": v.customer,
                                             "callerid2": OWNER, "_user": OWNER}))
        mapped = sum(s for person, s in talk.items()
                     if parties.is_ext(person) and parties.mapped(person))
        billable = max(min(1, v.talk), v.talk - mapped)  # someone without a user talked
        block += _row_end(v, OWNER, (NORMAL, None), billable, link)
    else:
        block += _row_end(v, OWNER, (NORMAL, NO_ANSWER), 0, None)
    return _with_owner(block, v.raw_customer)

