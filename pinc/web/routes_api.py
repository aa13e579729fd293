"""The JSON API over the journal: /api/calls, one call, click-to-call, transfer.

Bearer-token auth (``web.token``); every error is ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from quart import Blueprint, Response, jsonify, request

from pinc import metrics
from pinc.calls.model import DIRECTIONS, FINAL_STATUSES, LIVE_STATUSES
from pinc.journal import queries
from pinc.web import actions, tickets, validate
from pinc.web.app import api_error, refuse_request, state
from pinc.web.auth import api_access, has_token, refused, why_refused
from pinc.web.dialpolicy import PolicyRefused
from pinc.web.routes_vtiger import _recording_response, admit_transfer, do_transfer

log = logging.getLogger(__name__)
blueprint = Blueprint("api", __name__, url_prefix="/api")
OPENAPI = Path(__file__).with_name("openapi.json")
_CURSOR = re.compile(r"[A-Za-z0-9_=:.+/-]{1,200}", re.ASCII)
MAX_LIMIT = 500
LINK_TTL = 3600  # seconds an on-demand recording link (recording_url) plays
STATUSES = (*LIVE_STATUSES, *FINAL_STATUSES, "live", "ended")


@blueprint.before_request
async def require_token() -> Response | None:
    if request.path == "/api/openapi.json":
        return None
    st = state()
    if api_access(request, st.token, st.sessions):
        return None
    route = request.path if request.url_rule is None else request.url_rule.rule
    refused(route, request, why_refused(request))
    response = api_error(401, "unauthorized", "a valid bearer token is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="pinc"'
    return response


@blueprint.before_request
async def require_json() -> Response | None:
    """A body must say it is JSON: a page may post text/plain to any origin without a
    CORS preflight, never application/json."""
    if request.method != "POST" or request.mimetype == "application/json":
        return None
    return refuse_request(request, "content_type",
                          f"Content-Type {request.mimetype or 'none'!r} on a JSON route", 415,
                          "the body must be JSON, sent as Content-Type: application/json")


@blueprint.route("/openapi.json", methods=["GET"])
async def openapi() -> Response:
    return Response(OPENAPI.read_bytes(), content_type="application/json")


def _iso(value: str | None, what: str) -> str | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise validate.InvalidInput(f"{what}: not an ISO 8601 time") from None


def _filters() -> dict[str, Any]:
    args = request.args
    pbx = state().services.config.pbx
    status = args.get("status") or None
    if status is not None and status not in STATUSES:
        raise validate.InvalidInput("status: one of " + ", ".join(STATUSES))
    direction = args.get("direction") or None
    if direction is not None and direction not in DIRECTIONS:
        raise validate.InvalidInput("direction: " + ", ".join(DIRECTIONS))
    cursor = args.get("cursor") or None
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise validate.InvalidInput("cursor: not a cursor this API returned")
    try:
        limit = int(args.get("limit", "50"))
    except ValueError:
        raise validate.InvalidInput("limit: an integer from 1 to 500") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise validate.InvalidInput("limit: an integer from 1 to 500")
    ext = args.get("ext")
    number = args.get("number")
    return {
        "since": _iso(args.get("since"), "since"),
        "until": _iso(args.get("until"), "until"),
        "status": status,
        "direction": direction,
        "ext": validate.extension(ext, pbx, what="ext") if ext else None,
        "number": validate.phone_number(number, what="number") if number else None,
        "cursor": cursor,
        "limit": limit,
    }


@blueprint.route("/calls", methods=["GET"])
async def list_calls() -> Response:
    try:
        filters = _filters()
    except validate.InvalidInput as exc:
        return api_error(400, "bad_request", str(exc))
    try:
        calls, next_cursor = await state().services.journal.read(
            partial(queries.list_calls, **filters)
        )
    except ValueError as exc:  # the journal rejects a cursor it did not issue
        return api_error(400, "bad_request", f"cursor: {exc}")
    return jsonify({"calls": calls, "next_cursor": next_cursor})


@blueprint.route("/live", methods=["GET"])
async def live() -> Response:
    calls = await state().services.journal.read(queries.live_calls)
    ext = request.args.get("ext")
    if ext:
        calls = [c for c in calls if actions.involves(c, ext)]
    return jsonify({"calls": calls})


def _call_id_or_400(call_id: str) -> str | Response:
    try:
        return validate.call_id(call_id)
    except validate.InvalidInput as exc:
        return api_error(400, "bad_request", str(exc))


@blueprint.route("/calls/<id>", methods=["GET"])
async def get_call(id: str) -> Response:
    checked = _call_id_or_400(id)
    if isinstance(checked, Response):
        return checked

    def read(conn: Any) -> dict[str, Any] | None:
        call = queries.get_call(conn, checked)
        if call is not None:
            call["changes"] = queries.call_changes(conn, checked)
        return call

    st = state()
    call = await st.services.journal.read(read)
    if call is None:
        return api_error(404, "not_found", "no such call")
    if call.get("recording"):
        # A link to hand to a browser or a colleague: this recording only, for an hour.
        query = tickets.recording_query(st.master, checked, int(time.time()) + LINK_TTL)
        call["recording_url"] = f"{st.services.config.web.public_url.rstrip('/')}/recording?{query}"
    return jsonify(call)


@blueprint.route("/calls/<id>/recording", methods=["GET"])
async def call_recording(id: str) -> Response:
    checked = _call_id_or_400(id)
    if isinstance(checked, Response):
        return checked
    return await _recording_response(checked, json_errors=True)


async def _json_body() -> dict[str, Any]:
    raw = await request.get_data(as_text=False)
    if not raw:
        raise validate.InvalidInput("a JSON object body is required")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise validate.InvalidInput("the body is not valid JSON") from None
    if not isinstance(body, dict) or not all(
        isinstance(v, (str, int, type(None))) or k == "variables" for k, v in body.items()
    ):
        raise validate.InvalidInput("the body must be a JSON object of strings")
    return body


def _str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    return str(value)


@blueprint.route("/calls/<id>/transfer", methods=["POST"])
async def call_transfer(id: str) -> Response:
    checked = _call_id_or_400(id)
    if isinstance(checked, Response):
        return checked
    pbx = state().services.config.pbx
    try:
        body = await _json_body()
        to = validate.destination(_str(body, "to"), pbx)
        mode = _str(body, "mode") or "blind"
        if mode not in ("blind", "attended"):
            raise validate.InvalidInput("mode: blind or attended")
        from_ext = _str(body, "from")
        if from_ext:
            validate.extension(from_ext, pbx)
    except validate.InvalidInput as exc:
        return api_error(400, "bad_request", str(exc))
    audit = partial(actions.audit, "transfer", who=_who(), address=request.remote_addr,
                    call=checked, ext=from_ext, to=to, mode=mode, context=pbx.originate_context)
    try:
        admit_transfer(checked, to=to, from_ext=from_ext or None)
        await do_transfer(checked, to=to, mode=mode, from_ext=from_ext)
    except PolicyRefused as exc:
        return _policy_refusal(exc, audit)
    except actions.TransferError as exc:
        audit(result=f"failed ({exc.status} {exc.message})")
        return api_error(exc.status, exc.code, exc.message)
    audit(result="sent")
    return jsonify({"call_id": checked, "to": to, "mode": mode, "status": "sent"})


def _who() -> str:
    """Who asked, for the audit line: a bearer token, or a signed-in dashboard."""
    return "api" if has_token(request, state().token) else "dashboard"


def _policy_refusal(exc: PolicyRefused, audit: Callable[..., None]) -> Response:
    metrics.REFUSED.labels(rule=exc.rule).inc()
    audit(result=f"refused ({exc.message})")
    if exc.rule == "rate":
        response = api_error(429, "rate_limited", exc.message)
        response.headers["Retry-After"] = "60"
        return response
    return api_error(403, "policy", exc.message)


@blueprint.route("/calls", methods=["POST"])
async def click_to_call() -> Response:
    st = state()
    pbx = st.services.config.pbx
    try:
        body = await _json_body()
        ext = validate.extension(_str(body, "from"), pbx)
        number = validate.phone_number(_str(body, "to"))
        asked = validate.context(_str(body, "context"), pbx.originate_context)
        record_id = validate.record_id(_str(body, "record"))
        raw_vars = body.get("variables") or {}
        if not isinstance(raw_vars, dict):
            raise validate.InvalidInput("variables: an object of strings")
        variables = validate.channel_variables({str(k): str(v) for k, v in raw_vars.items()})
        if variables.refused:
            raise validate.InvalidInput(f"variables refused: {', '.join(variables.refused)}")
    except validate.InvalidInput as exc:
        return api_error(400, "bad_request", str(exc))
    audit = partial(actions.audit, "originate", who=_who(), address=request.remote_addr,
                    ext=ext, to=number)
    try:
        decision = st.policy.originate(ext, number, asked, st.services.directory)
        if not actions.ami_connected(st.services):
            audit(context=decision.context, result="failed (not connected to Asterisk)")
            return api_error(503, "ami_unavailable", "not connected to Asterisk")
        st.policy.check_rate(ext, time.time())
    except PolicyRefused as exc:
        return _policy_refusal(exc, partial(audit, context=asked))
    audit(context=decision.context, asked_context=decision.asked_context, result="accepted")
    req = actions.OriginateRequest(ext, number, decision.context, record_id, variables.accepted)
    channel_id = actions.new_channel_id()
    st.spawn(partial(actions.originate, st.services, req, channel_id))
    response = jsonify(
        {"status": "originating", "channel_id": channel_id, "from": ext, "to": number}
    )
    response.status_code = 202
    return response
