"""WS /ws: a snapshot of the live calls, then every committed CallChange as JSON.

Each change is encoded once for every client (pinc/web/fanout.py); each client has a
bounded queue there (``web.ws_queue``). The feed never waits for a client; a client that
falls behind misses changes, and then it is closed with code 4008 so it reconnects and
gets a fresh snapshot instead of a silently wrong picture. A client that stops reading
altogether is cut by the server's write deadline (see server.py), never slowing the others.

Messages (server -> client): ``{"type": "snapshot", "calls": [...]}`` first, then
``{"type": "call.started" | ..., "call_id", "at", "data", "call"[, "customer"]}``, and
``{"type": "pong"}`` for a client's ``{"type": "ping"}``. ``customer`` (also on each call
of a snapshot) is the CRM record of the call's customer when pinc knows it
(``pinc.crm.customers``).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import trio
from quart import Blueprint, Response, websocket

from pinc import metrics
from pinc.journal import queries
from pinc.web import actions, tickets, validate
from pinc.web.app import front_door, state
from pinc.web.auth import api_access, refused, why_refused
from pinc.web.fanout import Fanout, dumps

log = logging.getLogger(__name__)
blueprint = Blueprint("ws", __name__)

CLOSE_TOO_SLOW = 4008
CLOSE_SHUTDOWN = 1001


def _fanout(services: Any) -> Fanout:
    """The one fan-out of this app, listening on the feed from its first client on."""
    found = services.extras.get("ws_fanout")
    if not isinstance(found, Fanout):
        found = services.extras["ws_fanout"] = Fanout(getattr(services, "customers", None))
        services.feed.add_listener(found)
    return found


class _Snapshots:
    """One live-calls snapshot shared by the clients that connect while nothing changes.

    Each snapshot of 2,000 live calls is about 1 MB of JSON: built per client, a burst
    of 200 connecting clients held 1.7 GB. Here one is built at a time (the lock) and
    reused as long as the feed has published nothing since its query began, so a client
    that subscribed first still misses no change between the snapshot and its feed.
    """

    def __init__(self) -> None:
        self._lock = trio.Lock()
        self._published = -1
        self._calls: list[dict[str, Any]] = []
        self._text = ""

    async def get(self, services: Any) -> tuple[list[dict[str, Any]], str]:
        async with self._lock:
            published = services.feed.statistics().get("published", -2)
            if published != self._published or published < 0:
                calls = await services.journal.read(queries.live_calls)
                self._calls = [_with_customer(c, services) for c in calls]
                self._text = dumps({"type": "snapshot", "calls": self._calls})
                self._published = published
            return self._calls, self._text


def _with_customer(call: dict[str, Any], services: Any) -> dict[str, Any]:
    customers = getattr(services, "customers", None)
    customer = customers.of(call) if customers is not None else None
    return {**call, "customer": customer} if customer else call


def _snapshots(services: Any) -> _Snapshots:
    found = services.extras.get("ws_snapshots")
    if not isinstance(found, _Snapshots):
        found = services.extras["ws_snapshots"] = _Snapshots()
    return found


@blueprint.websocket("/ws")
async def feed() -> Response | None:
    st = state()
    ext = websocket.args.get("ext") or None
    ticket = websocket.args.get("ticket")
    # A page of another site (another port of 127.0.0.1 included) must not read the feed
    # with the dashboard's cookie; the CRM's pages may, with the module's ticket.
    refusal = front_door(websocket, origin_rule=True, ticket=ticket is not None)
    if refusal is not None:
        return refusal
    if ticket is not None:
        # pinc's vtiger module mints a short-lived ticket for the signed-in user's
        # extension (pinc/web/tickets.py): it shows that extension's calls and nothing else.
        try:
            granted = tickets.parse(st.master, tickets.WS, ticket, now=time.time())
        except tickets.TicketError as exc:
            refused("/ws", websocket, f"ticket: {exc}")
            return Response("a valid ticket is required\n", status=401, content_type="text/plain")
        if ext is not None and ext != granted.subject:
            refused("/ws", websocket, "ticket: for another extension")
            return Response("a valid ticket is required\n", status=401, content_type="text/plain")
        ext = granted.subject
    elif not api_access(websocket, st.token, st.sessions):
        refused("/ws", websocket, why_refused(websocket))
        return Response("a valid token is required\n", status=401, content_type="text/plain")
    if ext is not None:
        try:
            validate.extension(ext, st.services.config.pbx, what="ext")
        except validate.InvalidInput as exc:
            return Response(f"{exc}\n", status=400, content_type="text/plain")
    await websocket.accept()
    metrics.WS_CLIENTS.inc()
    # Join the fan-out before the snapshot, so no change falls between the two (a change
    # may show up in both: clients apply changes by call id, so that is harmless).
    client = _fanout(st.services).join(ext, st.services.config.web.ws_queue)
    try:
        calls, text = await _snapshots(st.services).get(st.services)
        if ext is not None:
            mine = [c for c in calls if actions.involves(c, ext)]
            text = dumps({"type": "snapshot", "calls": mine})
        await websocket.send(text)  # a big snapshot gives way per slice (server.py)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_answer_pings)
            ended = await client.forward(websocket)
            nursery.cancel_scope.cancel()
        if ended == "too slow":
            await websocket.close(CLOSE_TOO_SLOW, "too slow: reconnect for a fresh snapshot")
        else:
            await websocket.close(CLOSE_SHUTDOWN, "pinc is shutting down")
    finally:
        metrics.WS_CLIENTS.dec()
        client.leave()
    return None


async def _answer_pings() -> None:
    while True:
        raw = await websocket.receive()
        try:
            message = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if isinstance(message, dict) and message.get("type") == "ping":
            await websocket.send(dumps({"type": "pong"}))
