"""Stock vtiger's PBXManager: the callback contract, the recording link, the ``vtiger`` profile.

``plan`` is the ``vtiger`` profile: one committed change (plus what was already queued
for its call) -> the callbacks stock vtiger 7.x/8.x expects, in order (reference/vtiger.md).
vtiger decides a call's direction by its users' extensions and leaves an unanswered
inbound call with admin, so the profile names a CRM user for every call: the employee,
crm.fallback_user for an extension with no CRM user (or the call is held back), and the
responsible manager (:data:`~pinc.crm.callbacks.OWNER`) for a missed call or one an
unmapped extension answered. The formats follow what vtiger's PHP reads.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pinc.calls.model import CallChange
from pinc.config import Config, CrmConfig
from pinc.crm.callbacks import (
    OWNER,
    Callback,
    History,
    Parties,
    Plan,
    crm_time,
    hangup_cause,
    view,
)
from pinc.crm.numbers import crm_number, digits, extension
from pinc.web import tickets

__all__ = ["crm_number", "crm_time", "digits", "extension", "plan"]

log = logging.getLogger(__name__)

CALLBACK_PATH = "/modules/PBXManager/callbacks/PBXManager.php"
SPAGI_PATH = "/modules/PBXManager/callbacks/SPAgi.php"
RECORDING_URL_MAX = 200  # vtiger_pbxmanager.recordingurl is varchar(200)
EMPTY_WAV_BYTES = 44  # MixMonitor's header-only file for a call nobody answered
# pinc 0.1.0 queued recording links ending in this placeholder and filled in crm.secret at
# send time, so every stored link held the master secret. Rows it left in an outbox are
# sent with the signed link instead (form_params); nothing fills the placeholder any more.
SECRET_SUFFIX = "&secret="


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


# --- the vtiger profile ----------------------------------------------------------------


def _employee(v_employee: str, parties: Parties) -> tuple[str, str]:
    """(the extension vtiger must see, the extension to hold the call for)."""
    if not v_employee or parties.mapped(v_employee):
        return v_employee, ""
    if parties.fallback:
        return parties.fallback, ""
    return v_employee, v_employee


def _answer(a: str, b: str, call_id: str, owner_of: str = "") -> Callback:
    params = {"callUUID": call_id, "callerid1": a, "callerid2": b}
    if OWNER in (a, b):
        params["_owner"] = owner_of
    return Callback("DialAnswer", params)


def plan(
    change: CallChange, history: History, config: Config, parties: Parties, recording_ok: bool
) -> Plan:
    v = view(change, config)
    sent = {cb.kind for cb in history}
    out: list[Callback] = []
    ended = change.kind == "call.ended"
    outbound = v.direction == "outbound"
    hold = ""
    if outbound:
        employee, hold = _employee(v.employee, parties)
    else:
        # the employee who answered last; the responsible manager when they have no CRM user
        employee = v.employee if v.status in ("answered", "completed") else ""
        if employee and not parties.mapped(employee):
            employee = OWNER
    if "StartApp" not in sent:
        if not (v.customer and (not outbound or employee)) and not ended:
            return Plan()  # too early to tell vtiger who is calling whom; a later change will
        if outbound:
            # vtiger finds the user from callerIdNumber / the channel's peer, and the
            # customer from callerIdName when callerIdNumber equals that peer
            params = {
                "callerIdNumber": employee,
                "callerIdName": v.customer,
                "callerId": v.customer,
                "channel": f"SIP/{employee}-{channel_suffix(v.call_id)}",
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
    answers = [cb for cb in (*history, *out) if cb.kind == "DialAnswer"]
    if outbound:
        # the user (callerid1) becomes the row's owner; unanswered calls too, or they
        # stay with admin where the employee cannot see them
        if employee and not answers and (v.status in ("answered", "completed") or ended):
            out.append(_answer(employee, v.customer, v.call_id))
    else:
        if ended and not v.completed:
            employee = OWNER  # missed: the manager who must call back owns it
        if employee and (ended or change.kind in ("call.answered", "call.transferred")):
            if not answers or answers[-1].params.get("callerid2") != employee:
                out.append(_answer(v.customer, employee, v.call_id, v.raw_customer))
    if ended and "Hangup" not in sent:
        causetxt, cause = hangup_cause(v.status)
        hangup = {"callUUID": v.call_id, "causetxt": causetxt}
        if cause:
            hangup["HangupCause"] = cause
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
        if link and v.completed:
            out.append(Callback("Record", {"callUUID": v.call_id, "recordinglink": link}))
    return Plan(out, hold)

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


def __getattr__(name: str) -> Any:
    # older imports: the outbox hook and the lookups moved to outbox.py / webservice.py
    # (imported lazily: both use this module)
    if name in ("make_outbox_hook", "plan_callbacks"):
        from pinc.crm import outbox

        return getattr(outbox, name)
    if name == "VtigerWebservice":
        from pinc.crm.webservice import VtigerWebservice

        return VtigerWebservice
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
