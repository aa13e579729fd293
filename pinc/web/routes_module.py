"""What pinc's vtiger module (packaging/vtiger) asks pinc from the CRM's server.

``GET /calls/live?ticket=<ws ticket>``: the live calls of the ticket's extension, the same
calls ``/ws?ticket=`` would show in its snapshot. The module's live call card falls back to
it (through the module, server to server) when the browser's websocket cannot connect.
The ticket is a short-lived ``ws`` ticket the module mints for the signed-in user's
extension (pinc/web/tickets.py); it cannot drive the PBX.
"""

from __future__ import annotations

import time

from quart import Blueprint, Response, jsonify, request

from pinc.journal import queries
from pinc.web import actions, tickets
from pinc.web.app import api_error, state
from pinc.web.auth import refused

blueprint = Blueprint("module", __name__)


@blueprint.route("/calls/live", methods=["GET"])
async def live_calls() -> Response:
    st = state()
    try:
        granted = tickets.parse(
            st.master, tickets.WS, request.args.get("ticket", ""), now=time.time()
        )
    except tickets.TicketError as exc:
        refused("/calls/live", request, f"ticket: {exc}")
        return api_error(401, "unauthorized", "a valid ticket is required")
    calls = await st.services.journal.read(queries.live_calls)
    mine = [call for call in calls if actions.involves(call, granted.subject)]
    response = jsonify({"ext": granted.subject, "calls": mine})
    response.headers["Cache-Control"] = "no-store"
    return response
