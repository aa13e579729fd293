"""WS /ws: a snapshot of the live calls, then every committed CallChange as JSON.

Each client has its own bounded feed subscription (``web.ws_queue``). The feed
never waits for a client; a client that falls behind misses changes, and then it
is closed with code 4008 so it reconnects and gets a fresh snapshot instead of a
silently wrong picture. A client that stops reading altogether is cut by the
server's write deadline (see server.py), never slowing the others.

Messages (server -> client): ``{"type": "snapshot", "calls": [...]}`` first, then
``{"type": "call.started" | ..., "call_id", "at", "data", "call"}``, and
``{"type": "pong"}`` for a client's ``{"type": "ping"}``.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any

import trio
from quart import Blueprint, Response, websocket

from pinc import metrics
from pinc.calls.model import CallChange
from pinc.journal import queries
from pinc.web import actions, validate
from pinc.web.app import state
from pinc.web.auth import has_token, refused

log = logging.getLogger(__name__)
blueprint = Blueprint("ws", __name__)

CLOSE_TOO_SLOW = 4008
CLOSE_SHUTDOWN = 1001


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


# Every client gets the same text for a change: serialise it once, not once per client.
_ENCODED: OrderedDict[int, tuple[CallChange, str]] = OrderedDict()
_ENCODED_MAX = 4096


def encode_change(change: CallChange) -> str:
    key = id(change)
    hit = _ENCODED.get(key)
    if hit is not None and hit[0] is change:  # the change is kept, so its id is not reused
        return hit[1]
    text = _dumps(change.to_dict())
    _ENCODED[key] = (change, text)
    if len(_ENCODED) > _ENCODED_MAX:
        _ENCODED.popitem(last=False)
    return text


@blueprint.websocket("/ws")
async def feed() -> Response | None:
    st = state()
    if not has_token(websocket, st.token):
        refused("/ws", websocket, "token")
        return Response("a valid token is required\n", status=401, content_type="text/plain")
    ext = websocket.args.get("ext") or None
    if ext is not None:
        try:
            validate.extension(ext, st.services.config.pbx, what="ext")
        except validate.InvalidInput as exc:
            return Response(f"{exc}\n", status=400, content_type="text/plain")
    await websocket.accept()
    metrics.WS_CLIENTS.inc()
    # Subscribe before the snapshot, so no change falls between the two (a change may
    # show up in both: clients apply changes by call id, so that is harmless).
    sub = st.services.feed.subscribe(maxsize=st.services.config.web.ws_queue)
    try:
        calls = await st.services.journal.read(queries.live_calls)
        if ext is not None:
            calls = [c for c in calls if actions.involves(c, ext)]
        await websocket.send(_dumps({"type": "snapshot", "calls": calls}))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_answer_pings)
            await _forward(sub, ext)
            nursery.cancel_scope.cancel()
    finally:
        metrics.WS_CLIENTS.dec()
        with trio.CancelScope(shield=True):
            await sub.aclose()
    return None


async def _forward(sub: Any, ext: str | None) -> None:
    async for change in sub:
        if sub.dropped:
            log.warning("websocket client fell behind by %d changes: closing it", sub.dropped)
            await websocket.close(CLOSE_TOO_SLOW, "too slow: reconnect for a fresh snapshot")
            return
        if ext is not None and not actions.involves(change.call, ext):
            continue
        await websocket.send(encode_change(change))
    # The feed closed (shutdown).
    await websocket.close(CLOSE_SHUTDOWN, "pinc is shutting down")


async def _answer_pings() -> None:
    while True:
        raw = await websocket.receive()
        try:
            message = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if isinstance(message, dict) and message.get("type") == "ping":
            await websocket.send(_dumps({"type": "pong"}))
