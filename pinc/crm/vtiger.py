"""vtiger's PBXManager callbacks, in two profiles, as pure functions of CallChanges.

``plan_callbacks`` turns one committed change (plus what was already queued for its
call) into the ordered callbacks vtiger expects; ``make_outbox_hook`` runs it inside
the journal's batch transaction and writes the outbox rows. The formats follow
docs/crm.md and reference/vtiger.md: what vtiger's PHP reads, not what looks tidy.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from pinc.calls.model import CallChange
from pinc.config import Config, CrmConfig, RoutingConfig
from pinc.web import tickets

log = logging.getLogger(__name__)

CALLBACK_PATH = "/modules/PBXManager/callbacks/PBXManager.php"
SPAGI_PATH = "/modules/PBXManager/callbacks/SPAgi.php"
RECORDING_URL_MAX = 200  # vtiger_pbxmanager.recordingurl is varchar(200)
EMPTY_WAV_BYTES = 44  # MixMonitor's header-only file for a call nobody answered
# pinc 0.1.0 queued recording links ending in this placeholder and filled in crm.secret at
# send time, so every stored link held the master secret. Rows it left in an outbox are
# sent with the signed link instead (form_params); nothing fills the placeholder any more.
SECRET_SUFFIX = "&secret="

NORMAL = "Normal Clearing"
BUSY = "User busy"
REJECTED = "Call Rejected"
NO_ANSWER = "NO ANSWER"


@dataclass(frozen=True)
class Callback:
    """One form-encoded request to vtiger (without ``vtigersignature``)."""

    kind: str  # the callstatus: StartApp, DialBegin, DialAnswer, Hangup, EndCall, Record
    params: dict[str, str]


# --- value normalisation -------------------------------------------------------------


def digits(raw: object) -> str:
    """Digits only: caller ids reach vtiger's string-built SQL and its JSON decoding."""
    return re.sub(r"\D", "", str(raw or ""))


def crm_number(raw: object, number_format: str, routing: RoutingConfig) -> str:
    """A customer number in the form vtiger's lookup matches (crm.number_format)."""
    d = digits(raw)
    cc, prefix, n = routing.country_code, routing.trunk_prefix, routing.national_length
    national = d
    if len(d) == len(cc) + n and cc and d.startswith(cc):
        national = d[len(cc) :]
    elif len(d) == len(prefix) + n and prefix and d.startswith(prefix):
        national = d[len(prefix) :]
    if number_format == "national":
        return national
    if number_format == "plus":
        return "+" + cc + national if len(national) == n else d
    return d


def extension(raw: object) -> str:
    """An employee extension as vtiger stores phone_crm_extension: no channel syntax."""
    return re.sub(r"[^0-9A-Za-z]", "", str(raw or ""))


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


def channel_suffix(call_id: str) -> str:
    """A stable ``-xxxxxxxx`` for the fake ``SIP/<peer>-…`` channel vtiger parses."""
    return f"{zlib.crc32(call_id.encode()) & 0xFFFFFFFF:08x}"


def recording_link(config: Config, call_id: str) -> str | None:
    """The permanent link pinc stores in the CRM's call row, or None when it cannot be made.

    ``<public_url>/recording?id=<call id>&sig=<signature>``: signed for that one call
    (pinc.web.tickets, purpose ``recording``), with no secret in it. Stock vtiger shows it
    to the browser and plays it months later, so it does not expire; rotating
    ``crm.secret`` revokes every stored link at once. SalesPlatform's ListenRecord fetches
    it server-side and appends ``&secret=``, which pinc accepts only from the CRM's
    addresses (docs/security.md). None without ``web.public_url`` or ``crm.secret``, or
    when the link would not fit vtiger's column.
    """
    base = config.web.public_url.rstrip("/")
    if not base or not config.crm.secret:
        return None
    try:
        link = f"{base}/recording?{tickets.recording_query(config.crm.secret, call_id)}"
    except ValueError:  # not a call id a ticket can name
        return None
    return link if len(link) <= RECORDING_URL_MAX else None


def recording_exists(config: Config, relative: object) -> bool:
    """The call's recording is a real file inside pbx.recordings_dir (no ``../``)."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        return False
    try:
        root = Path(config.pbx.recordings_dir).resolve()
        path = (root / relative).resolve()
        path.relative_to(root)
        return path.is_file() and path.stat().st_size > EMPTY_WAV_BYTES
    except (OSError, ValueError):
        return False


# --- the two profiles ----------------------------------------------------------------


History = Sequence[Callback]


@dataclass(frozen=True)
class _View:
    """The facts of a call snapshot both profiles need, normalised once."""

    call_id: str
    direction: str
    status: str
    customer: str
    employee: str  # outbound: who placed it; inbound: who answered last ("" if nobody)
    started: str
    ended: str
    duration: int
    talk: int
    legs: list[dict[str, Any]]
    cause: int | None


def _view(change: CallChange, crm: CrmConfig, routing: RoutingConfig) -> _View:
    call = change.call
    direction = str(call.get("direction") or "")
    raw_customer = call.get("from") if direction == "inbound" else call.get("to")
    employee = call.get("from") if direction == "outbound" else call.get("answered_by")
    cause = call.get("cause")
    return _View(
        call_id=change.call_id,
        direction=direction,
        status=str(call.get("status") or ""),
        customer=crm_number(raw_customer, crm.number_format, routing),
        employee=extension(employee),
        started=crm_time(call.get("started_at") or change.at, crm.timezone),
        ended=crm_time(call.get("ended_at") or change.at, crm.timezone),
        duration=_int(call.get("duration")),
        talk=_int(call.get("talk")),
        legs=[leg for leg in call.get("legs") or [] if isinstance(leg, dict)],
        cause=cause if isinstance(cause, int) and not isinstance(cause, bool) else None,
    )


def _hangup_cause(status: str) -> tuple[str, str | None]:
    """(causetxt, HangupCause) keeping vtiger's callstatus within its known words."""
    if status == "completed":
        return NORMAL, None
    if status == "busy":
        return BUSY, None
    if status == "failed":
        return REJECTED, None
    return NORMAL, NO_ANSWER  # missed, no-answer, anything unforeseen


def _vtiger_plan(
    change: CallChange, history: History, config: Config, recording_ok: bool
) -> list[Callback]:
    v = _view(change, config.crm, config.routing)
    sent = {cb.kind for cb in history}
    out: list[Callback] = []
    ended = change.kind == "call.ended"
    if "StartApp" not in sent:
        if not (v.customer and (v.direction == "inbound" or v.employee)) and not ended:
            return []  # too early to tell vtiger who is calling whom; a later change will
        if v.direction == "outbound":
            # vtiger finds the user from callerIdNumber / the channel's peer, and the
            # customer from callerIdName when callerIdNumber equals that peer
            params = {
                "callerIdNumber": v.employee,
                "callerIdName": v.customer,
                "callerId": v.customer,
                "channel": f"SIP/{v.employee}-{channel_suffix(v.call_id)}",
            }
        else:
            params = {
                "callerIdNumber": v.customer,
                "callerIdName": v.customer,
                "callerId": v.customer,
                "channel": f"SIP/trunk-{channel_suffix(v.call_id)}",
            }
        out.append(
            Callback("StartApp", {"callUUID": v.call_id, **params, "StartTime": v.started})
        )
    answerer = v.employee if v.status in ("answered", "completed") else ""
    if answerer and change.kind in ("call.answered", "call.transferred", "call.ended"):
        last = [cb for cb in (*history, *out) if cb.kind == "DialAnswer"]
        key = "callerid1" if v.direction == "outbound" else "callerid2"
        if not last or last[-1].params.get(key) != answerer:
            a, b = (answerer, v.customer) if v.direction == "outbound" else (v.customer, answerer)
            params = {"callUUID": v.call_id, "callerid1": a, "callerid2": b}
            out.append(Callback("DialAnswer", params))
    if ended and "Hangup" not in sent:
        causetxt, hangup_cause = _hangup_cause(v.status)
        hangup = {"callUUID": v.call_id, "causetxt": causetxt}
        if hangup_cause:
            hangup["HangupCause"] = hangup_cause
        elif v.cause is not None:
            hangup["HangupCause"] = str(v.cause)
        hangup |= {"EndTime": v.ended, "Duration": str(v.duration)}
        out.append(Callback("Hangup", hangup))
        out.append(
            Callback(
                "EndCall",
                {
                    "callUUID": v.call_id,
                    "starttime": v.started,
                    "endtime": v.ended,
                    "duration": str(v.duration),
                    "billableseconds": str(v.talk),
                },
            )
        )
        link = recording_link(config, v.call_id) if recording_ok else None
        if link and v.status == "completed":
            out.append(Callback("Record", {"callUUID": v.call_id, "recordinglink": link}))
    return out


def _sp_users(v: _View, change: CallChange, pattern: re.Pattern[str]) -> list[str]:
    """Employees with a row of their own in SalesPlatform's per-user call list."""
    if v.direction == "outbound":
        return [v.employee] if v.employee else []
    users: list[str] = []
    exts = [leg.get("ext") for leg in v.legs]
    exts.append(change.data.get("ext"))
    if v.employee:
        exts.append(v.employee)
    for raw in exts:
        ext = extension(raw)
        if ext and pattern.match(ext) and ext not in users:
            users.append(ext)
    return users


def _sp_leg_outcome(v: _View, ext: str) -> tuple[str, str | None, int]:
    """(causetxt, HangupCause, billable seconds) of one employee's row."""
    if v.direction == "outbound":
        causetxt, hc = _hangup_cause(v.status)
        return causetxt, hc, v.talk
    if ext == v.employee and v.status == "completed":
        return NORMAL, None, v.talk
    results = [leg for leg in v.legs if extension(leg.get("ext")) == ext]
    result = results[-1].get("result") if results else None
    if result == "answered":
        return NORMAL, None, 0
    if result == "busy":
        return BUSY, None, 0
    if result == "failed":
        return REJECTED, None, 0
    return NORMAL, NO_ANSWER, 0


def _sp_plan(
    change: CallChange, history: History, config: Config, recording_ok: bool
) -> list[Callback]:
    v = _view(change, config.crm, config.routing)
    pattern = re.compile(config.pbx.extension_pattern)
    out: list[Callback] = []
    ended = change.kind == "call.ended"
    begun = {cb.params.get("_user", "") for cb in history if cb.kind == "DialBegin"}
    if not v.customer and not ended:
        return []
    users = _sp_users(v, change, pattern)
    if change.kind == "call.ringing" and v.direction == "inbound":
        users = [u for u in users if u == extension(change.data.get("ext"))] or users
    for ext in users:
        if ext in begun:
            continue
        if v.direction == "outbound":
            params = {"callerIdNumber": ext, "dialString": f"SIP/{v.customer}"}
        else:
            params = {"callerIdNumber": v.customer, "dialString": f"SIP/{ext}"}
        out.append(
            Callback(
                "DialBegin",
                {
                    "callUUID": v.call_id,
                    "event": "DialBegin",
                    **params,
                    "connectedLineName": v.customer,
                    "StartTime": v.started,
                    "_user": ext,
                },
            )
        )
        begun.add(ext)
    if ended and not begun and v.direction == "inbound":
        if not any(cb.kind == "StartApp" for cb in history):
            # nobody was rung (abandoned in a queue or IVR): SalesPlatform has no user to
            # file it under, so it gets the user-less StartApp row stock vtiger would keep
            out.append(
                Callback(
                    "StartApp",
                    {
                        "callUUID": v.call_id,
                        "callerIdNumber": v.customer,
                        "callerIdName": v.customer,
                        "callerId": v.customer,
                        "channel": f"SIP/trunk-{channel_suffix(v.call_id)}",
                        "StartTime": v.started,
                    },
                )
            )
        return out
    answerer = v.employee if v.status in ("answered", "completed") else ""
    if answerer and answerer in begun:
        answered = {cb.params.get("_user") for cb in (*history, *out) if cb.kind == "DialAnswer"}
        if answerer not in answered:
            a, b = (answerer, v.customer) if v.direction == "outbound" else (v.customer, answerer)
            out.append(
                Callback(
                    "DialAnswer",
                    {"callUUID": v.call_id, "callerid1": a, "callerid2": b, "_user": answerer},
                )
            )
    if ended:
        hung = {cb.params.get("_user") for cb in history if cb.kind == "Hangup"}
        link = recording_link(config, v.call_id) if recording_ok else None
        for ext in [u for u in sorted(begun) if u not in hung]:
            causetxt, hc, billable = _sp_leg_outcome(v, ext)
            hangup = {"callUUID": v.call_id, "causetxt": causetxt, "callerIdNum": ext}
            if hc:
                hangup["HangupCause"] = hc
            hangup |= {"EndTime": v.ended, "Duration": str(v.duration), "_user": ext}
            out.append(Callback("Hangup", hangup))
            out.append(
                Callback(
                    "EndCall",
                    {
                        "callUUID": v.call_id,
                        "callerNumber": ext,
                        "starttime": v.started,
                        "endtime": v.ended,
                        "duration": str(v.duration),
                        "billableseconds": str(billable),
                        "_user": ext,
                    },
                )
            )
            if link and v.status == "completed" and ext == v.employee:
                out.append(
                    Callback(
                        "Record",
                        {
                            "callUUID": v.call_id,
                            "callerNumber": ext,
                            "recordinglink": link,
                            "_user": ext,
                        },
                    )
                )
    return out


PROFILES: dict[str, Callable[[CallChange, History, Config, bool], list[Callback]]] = {
    "vtiger": _vtiger_plan,
    "salesplatform": _sp_plan,
}


def plan_callbacks(
    change: CallChange, history: History, config: Config, *, recording_ok: bool = False
) -> list[Callback]:
    """The callbacks one change adds for its call, in the order they must be sent.

    ``history``: the callbacks already queued for this call (any state), oldest first.
    Internal calls are not customer calls: vtiger's PBXManager gets none of them.
    Keys starting with ``_`` are bookkeeping, never sent.
    """
    if str(change.call.get("direction") or "") not in ("inbound", "outbound"):
        return []
    return PROFILES[config.crm.profile](change, history, config, recording_ok)


def form_params(kind: str, payload: Mapping[str, Any], crm: CrmConfig) -> dict[str, str]:
    """An outbox row's payload as the form vtiger receives: the signature added."""
    params = {"vtigersignature": crm.secret, "callstatus": kind}
    for key, value in payload.items():
        if key.startswith("_"):
            continue
        text = str(value)
        if key == "recordinglink":
            text = _signed_legacy_link(text, crm)
        params[key] = text
    return params


def _signed_legacy_link(link: str, crm: CrmConfig) -> str:
    """A recording link queued by pinc 0.1.0 (``/recording?id=X`` with or without the
    ``&secret=`` placeholder), made the signed link; any other link is left as it is."""
    head, sep, query = link.partition("/recording?")
    if not sep or "sig=" in query:
        return link
    if query.endswith(SECRET_SUFFIX):
        query = query[: -len(SECRET_SUFFIX)]
    ids = parse_qs(query).get("id")
    if not ids or not crm.secret:
        return f"{head}/recording?{query}"
    try:
        return f"{head}/recording?{tickets.recording_query(crm.secret, ids[0])}"
    except ValueError:
        return f"{head}/recording?{query}"


# --- the journal batch hook ----------------------------------------------------------


def _history(conn: sqlite3.Connection, call_id: str) -> list[Callback]:
    rows = conn.execute(
        "SELECT kind, payload FROM outbox WHERE call_id = ? ORDER BY id", (call_id,)
    ).fetchall()
    out = []
    for kind, payload in rows:
        try:
            params = json.loads(payload)
        except ValueError:
            params = {}
        out.append(Callback(str(kind), params if isinstance(params, dict) else {}))
    return out


def make_outbox_hook(
    config: Config,
) -> Callable[[sqlite3.Connection, Sequence[CallChange]], None]:
    """The journal batch hook: the outbox rows of a batch commit with the batch itself."""

    def hook(conn: sqlite3.Connection, changes: Sequence[CallChange]) -> None:
        if not config.crm.url:
            return
        now = time.time()
        for change in changes:
            history = _history(conn, change.call_id)
            ok = change.kind == "call.ended" and recording_exists(
                config, change.call.get("recording")
            )
            for cb in plan_callbacks(change, history, config, recording_ok=ok):
                conn.execute(
                    "INSERT INTO outbox (call_id, kind, payload, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, 0)",
                    (change.call_id, cb.kind, json.dumps(cb.params, ensure_ascii=False), now),
                )

    return hook


def __getattr__(name: str) -> Any:
    # app.py looks for VtigerWebservice here; it lives in webservice.py (imported lazily
    # because webservice.py itself uses this module's helpers)
    if name == "VtigerWebservice":
        from pinc.crm.webservice import VtigerWebservice

        return VtigerWebservice
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
