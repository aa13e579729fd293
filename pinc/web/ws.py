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
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.protocol.events import Data
from quart import Blueprint, Response, websocket
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

from pinc import metrics
from pinc.calls.model import CallChange
from pinc.journal import queries
from pinc.runtime.timeslice import give_way
from pinc.web import actions, tickets, validate
from pinc.web.app import front_door, state
from pinc.web.auth import api_access, refused, why_refused

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
                self._calls = await services.journal.read(queries.live_calls)
                self._text = _dumps({"type": "snapshot", "calls": self._calls})
                self._published = published
            return self._calls, self._text


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
    # Subscribe before the snapshot, so no change falls between the two (a change may
    # show up in both: clients apply changes by call id, so that is harmless).
    sub = st.services.feed.subscribe(maxsize=st.services.config.web.ws_queue)
    try:
        calls, text = await _snapshots(st.services).get(st.services)
        if ext is not None:
            mine = [c for c in calls if actions.involves(c, ext)]
            text = _dumps({"type": "snapshot", "calls": mine})
        await websocket.send(text)  # a big snapshot gives way per slice (server.py)
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
    write = _frame_writer()
    changes = aiter(sub)
    nowait = getattr(sub, "receive_nowait", None)  # FeedSubscription's; not in the Protocol
    while True:
        try:
            change = await anext(changes)
        except StopAsyncIteration:
            break
        # When the loop is busy, wait for a young scheduler batch before doing any work
        # (pinc/runtime/timeslice.py): 200 clients woken by one change would otherwise all
        # write in one batch while a /ping waits. Changes queue meanwhile and go
        # out together.
        await give_way()
        # Take every change already queued: they go out in one write (see _frame_writer).
        texts: list[str] = []
        size = 0
        while change is not None:
            if ext is None or actions.involves(change.call, ext):
                texts.append(encode_change(change))
                size += len(texts[-1])
            if len(texts) >= BATCH_MAX or size >= BATCH_BYTES:
                break
            change = nowait() if nowait is not None else None
        if sub.dropped:
            log.warning("websocket client fell behind by %d changes: closing it", sub.dropped)
            await websocket.close(CLOSE_TOO_SLOW, "too slow: reconnect for a fresh snapshot")
            return
        if not texts:
            continue
        if write is None or not await write(texts):
            for text in texts:
                await websocket.send(text)
    # The feed closed (shutdown).
    await websocket.close(CLOSE_SHUTDOWN, "pinc is shutting down")


# Changes written to one client at once, at most: enough to catch up quickly, small
# enough that encoding them is one short scheduler step (pinc/runtime/timeslice.py).
BATCH_MAX = 64
BATCH_BYTES = 64 * 1024


def _frame_writer() -> Callable[[list[str]], Awaitable[bool]] | None:
    """Write several text frames with one socket write, on Hypercorn's websocket stream.

    Through Quart each frame costs an ASGI message, a wsproto event and a send(2): with
    50 clients, one batch of changes was hundreds of writes, the last client served tens
    of ms after the first (bench/ws_latency.py). Here the frames of the changes queued
    for a client are encoded by that connection's own wsproto (so its compression, if
    any, stays in order) and written through Hypercorn's own send path (its lock, the
    server's write deadline) at once. Returns None when the server is not the Hypercorn
    this was written against; the writer returns False when it cannot send, and the
    caller then sends frame by frame as before.
    """
    try:
        asgi_send = websocket._get_current_object()._send.args[0]  # type: ignore[attr-defined]
        stream = asgi_send.__self__
        connected = type(stream.state).CONNECTED
        stream_id = stream.stream_id
        send = stream.send
        if not callable(send) or not hasattr(stream, "connection"):
            return None
    except Exception:
        return None

    async def write(texts: list[str]) -> bool:
        if stream.closed:
            return True  # what Hypercorn does with a send after the close
        if stream.state is not connected:
            return False
        try:
            data = b"".join(stream.connection.send(TextMessage(data=t)) for t in texts)
        except LocalProtocolError:
            return True  # closing: Hypercorn drops the frames too
        await send(Data(stream_id=stream_id, data=data))
        return True

    return write


async def _answer_pings() -> None:
    while True:
        raw = await websocket.receive()
        try:
            message = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if isinstance(message, dict) and message.get("type") == "ping":
            await websocket.send(_dumps({"type": "pong"}))
