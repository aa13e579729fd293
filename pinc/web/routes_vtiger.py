"""The endpoints vtiger (and dialplans) call, with vtiger's plain-text answers.

vtiger's connector reads only the body of /makecall (``Success``, ``Error``,
``Authentication Failure``), blocks its UI until it gets one, and sends every
parameter in the query string of a POST with an empty body. YetiForce's client
also looks at the status, so failures are non-2xx as well.
"""

from __future__ import annotations

import json
import logging
import re
import time
from functools import partial

import trio
from quart import Blueprint, Response, request

from pinc import metrics
from pinc.journal import queries
from pinc.services import Responsible
from pinc.web import actions, recordings, tickets, validate
from pinc.web.app import state, text
from pinc.web.auth import crm_secret_ok, refused, secret_of
from pinc.web.dialpolicy import PolicyRefused

log = logging.getLogger(__name__)
blueprint = Blueprint("vtiger", __name__)


def _param(name: str) -> str | None:
    """A parameter from the query string, else the form body (vtiger uses the query)."""
    return request.args.get(name)


async def _all_params() -> dict[str, str]:
    params: dict[str, str] = {}
    if request.method == "POST" and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.form
        params.update({k: form[k] for k in form})
    params.update({k: request.args[k] for k in request.args})
    return params


def _secret_ok(route: str, params: dict[str, str]) -> bool:
    st = state()
    given = secret_of(request, params)
    return crm_secret_ok(route, request, given, st.services.config.crm.secret, st.crm_peers)


@blueprint.route("/makecall", methods=["GET", "POST"])
async def makecall() -> Response:
    st = state()
    params = await _all_params()
    if not _secret_ok("/makecall", params):
        return text("Authentication Failure", 403)
    pbx = st.services.config.pbx
    try:
        ext = validate.extension(params.get("from"), pbx)
        number = validate.phone_number(params.get("to"))
        asked = validate.context(params.get("context"), pbx.originate_context)
        record_id = validate.record_id(params.get("record"))
    except validate.InvalidInput as exc:
        log.warning("/makecall refused: %s", exc)
        return text("Error", 400)
    variables = validate.channel_variables(params)
    if variables.refused:
        log.warning("/makecall: parameters not passed as channel variables: %s", variables.refused)
    audit = partial(actions.audit, "originate", who="crm", address=request.remote_addr,
                    ext=ext, to=number)
    try:
        decision = st.policy.originate(ext, number, asked, st.services.directory)
        if not actions.ami_connected(st.services):
            audit(context=decision.context, result="failed (not connected to Asterisk)")
            return text("Error", 503)
        st.policy.check_rate(ext, time.time())
    except PolicyRefused as exc:
        metrics.REFUSED.labels(rule=exc.rule).inc()
        audit(context=asked, result=f"refused ({exc.message})")
        return text("Error", 429 if exc.rule == "rate" else 403)
    audit(context=decision.context, asked_context=decision.asked_context, result="accepted")
    req = actions.OriginateRequest(ext, number, decision.context, record_id, variables.accepted)
    channel_id = actions.new_channel_id()
    st.spawn(partial(actions.originate, st.services, req, channel_id))
    return text("Success")


async def _recording_response(call_id: str, *, json_errors: bool) -> Response:
    from pinc.web.app import api_error

    st = state()
    call = await st.services.journal.read(lambda conn: queries.get_call(conn, call_id))
    if call is None:
        if json_errors:
            return api_error(404, "not_found", "no such call")
        return text("Not Found", 404)
    try:
        rec = recordings.locate(st.services.config.pbx.recordings_dir, call.get("recording"))
    except recordings.NotFound as exc:
        log.info("recording of %s: %s", call_id, exc)
        if json_errors:
            return api_error(404, "no_recording", "this call has no playable recording")
        return text("Not Found", 404)
    name = recordings.safe_download_name(str(call.get("recording")))
    return recordings.respond(request, rec, download_name=name)


@blueprint.route("/recording", methods=["GET"])
async def recording() -> Response:
    """One call's recording: with the signed link pinc stored in the CRM (``sig``, plus
    ``exp`` when minted on demand), or server to server with the CRM secret."""
    params = {k: request.args[k] for k in request.args}
    call_param = params.get("id") or ""
    if secret_of(request, params) is not None:
        # SalesPlatform's ListenRecord appends &secret= to the stored (signed) link: the
        # secret decides, and only from the CRM's servers (a link signed before a key
        # rotation still plays there).
        if not _secret_ok("/recording", params):
            return text("Authentication Failure", 403)
    elif "sig" in params:
        try:
            tickets.check(
                state().master, tickets.RECORDING, call_param, params.get("exp", "0"),
                params["sig"], now=time.time(),
            )
        except tickets.TicketError as exc:
            # Unknown call and another call's link answer alike: nothing to enumerate.
            refused("/recording", request, f"link: {exc}")
            return text("Forbidden", 403)
    else:
        refused("/recording", request, "no link signature")
        return text("Forbidden", 403)
    try:
        call_id = validate.call_id(call_param)
    except validate.InvalidInput:
        return text("Bad Request", 400)
    return await _recording_response(call_id, json_errors=False)


@blueprint.route("/transfer", methods=["POST"])
async def transfer() -> Response:
    st = state()
    params = await _all_params()
    if not _secret_ok("/transfer", params):
        return text("Authentication Failure", 403)
    pbx = st.services.config.pbx
    try:
        to = validate.destination(params.get("to"), pbx)
        mode = params.get("mode", "blind")
        if mode not in ("blind", "attended"):
            raise validate.InvalidInput("mode: blind or attended")
        call_param, ext_param = params.get("call"), params.get("ext")
        call_id = validate.call_id(call_param) if call_param else None
        ext = validate.extension(ext_param, pbx, what="ext") if ext_param else None
        if call_id is None and ext is None:
            raise validate.InvalidInput("call or ext is required")
    except validate.InvalidInput as exc:
        log.warning("/transfer refused: %s", exc)
        # Only pinc's vtiger module calls /transfer (no stock vtiger does): its card shows
        # the reason, so the body names the field (never an echo of the value).
        return text(f"Error: {exc}", 400)
    audit = partial(actions.audit, "transfer", who="crm", address=request.remote_addr,
                    call=call_id, ext=ext, to=to, mode=mode, context=pbx.originate_context)
    if call_id is None:
        assert ext is not None
        found = st.services.ingest.call_of_extension(ext)
        if found is None:
            audit(result="refused (no live call)")
            return text("Error: no live call", 404)
        call_id = found
    try:
        admit_transfer(call_id, to=to, from_ext=ext)
        await do_transfer(call_id, to=to, mode=mode, from_ext=ext)
    except PolicyRefused as exc:
        metrics.REFUSED.labels(rule=exc.rule).inc()
        audit(call=call_id, result=f"refused ({exc.message})")
        return text(f"Error: {exc.message}", 429 if exc.rule == "rate" else 403)
    except actions.TransferError as exc:
        audit(call=call_id, result=f"failed ({exc.status} {exc.message})")
        return text(f"Error: {exc.message}", exc.status)
    audit(call=call_id, result="sent")
    return text("Success")


def admit_transfer(call_id: str, *, to: str, from_ext: str | None) -> None:
    """pinc's rules around a transfer (do_transfer is the transfer itself): the employee
    named must be on that call (else it answers as an unknown call: nothing to learn by
    probing ids), the destination is an extension or an allowed number, and the rate.
    Raises TransferError or PolicyRefused."""
    st = state()
    pbx = st.services.config.pbx
    if from_ext is not None and not any(
        c.get("ext") == from_ext for c in st.services.ingest.channels_of(call_id)
    ):
        raise actions.TransferError(404, "not_found", "no such call")
    to_is_ext = bool(re.fullmatch(pbx.extension_pattern, to))
    st.policy.transfer(to, to_is_extension=to_is_ext)
    st.policy.check_rate(from_ext, time.time())


async def do_transfer(call_id: str, *, to: str, mode: str, from_ext: str | None = None) -> None:
    """Shared by /transfer and /api/calls/{id}/transfer; raises TransferError.

    The tracker hears of the request before Asterisk does (its events may come before
    the action's answer) and of Asterisk's answer after: only an accepted transfer is
    recorded with kind ``crm``."""
    st = state()
    channels = st.services.ingest.channels_of(call_id)
    if not channels:
        call = await st.services.journal.read(lambda conn: queries.get_call(conn, call_id))
        if call is None:
            raise actions.TransferError(404, "not_found", "no such call")
        raise actions.TransferError(409, "not_live", "the call is not live")
    steps = actions.transfer_plan(
        channels, to=to, mode=mode, context=st.services.config.pbx.originate_context,
        from_ext=from_ext,
    )
    st.services.ingest.note_transfer(call_id, to)
    try:
        action = await actions.run_transfer(st.services, steps)
    except actions.TransferError:
        st.services.ingest.transfer_result(call_id, to, False)
        raise
    st.services.ingest.transfer_result(call_id, to, True)
    log.info("%s of call %s to %s", action, call_id, to)


@blueprint.route("/responsible", methods=["GET"])
async def responsible() -> Response:
    st = state()
    params = {k: request.args[k] for k in request.args}
    if not _secret_ok("/responsible", params):
        return text("Authentication Failure", 403)
    try:
        number = validate.phone_number(params.get("number"), what="number")
    except validate.InvalidInput:
        return text("Error", 400)
    answer = Responsible()
    with trio.move_on_after(st.services.config.routing.deadline + 1.0):
        try:
            answer = await st.services.router.responsible(number)
        except Exception as exc:  # the dialplan must get an answer: nobody responsible
            log.error("responsible lookup for a number failed: %s", exc)
    if params.get("format") == "json":
        body = {
            "number": number,
            "ext": answer.ext,
            "user": answer.user,
            "customer_name": answer.customer_name,
            "source": answer.source,
        }
        return Response(json.dumps(body), content_type="application/json")
    # CURL() in a dialplan wants the bare extension (empty: nobody responsible).
    return text(answer.ext or "")
