"""The websocket fan-out: every committed change is encoded once, in one place, for all.

The journal publishes a batch after its commit; :class:`Fanout` listens on the feed
(synchronously, in the publish call) and, when websocket clients are connected, turns each
change into its JSON text once and into the bytes of one unmasked websocket text frame
once, then hands those same bytes to every client whose filter takes the change. Each
client's writer task (``WsClient.forward``) only joins what is queued for it and writes it
with one socket write: no JSON, no per-client framing, no per-client feed subscription.

A client's queue is bounded (``web.ws_queue``): a client that falls behind misses changes
and is closed with 4008 so it reconnects for a fresh snapshot; the others never wait.

The bytes go out through Hypercorn's own websocket stream (its send path holds its lock
and pinc's write deadline), reached through private attributes: hypercorn, quart,
quart-trio and wsproto are pinned to exact versions in pyproject.toml, and
tests/web/test_ws.py fails when this fast path falls back. A client that negotiated
permessage-deflate gets frames from its own wsproto connection (its compressor state).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import trio
from hypercorn.protocol.events import Data
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

from pinc import metrics
from pinc.calls.model import CallChange
from pinc.runtime.timeslice import give_way
from pinc.web import actions

log = logging.getLogger("pinc.web.ws")

# Written to one client at once, at most: enough to catch up quickly, small enough that
# joining them is one short scheduler step (pinc/runtime/timeslice.py).
BATCH_BYTES = 256 * 1024
STATS = {"fast_writes": 0, "slow_writes": 0, "encoded": 0}  # tests read these


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def text_frame(text: str) -> bytes:
    """One unmasked websocket text frame, as a server sends it (RFC 6455 5.2)."""
    payload = text.encode("utf-8")
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


class Customers(Protocol):
    """Who a call's customer is in the CRM (``pinc.crm.customers.CustomerNames``)."""

    def of(self, call: Mapping[str, Any]) -> dict[str, str] | None: ...


def message_of(change: CallChange, customers: Customers | None = None) -> dict[str, Any]:
    """A change as the websocket sends it: with its customer when pinc knows who it is."""
    message = change.to_dict()
    customer = customers.of(change.call) if customers is not None else None
    if customer:
        message["customer"] = customer
    return message


class _Encoded:
    __slots__ = ("call", "frame", "text")

    def __init__(self, change: CallChange, customers: Customers | None = None) -> None:
        self.call = change.call
        self.text = dumps(message_of(change, customers))
        self.frame = text_frame(self.text)


Writer = Callable[[list[_Encoded]], Awaitable[bool]]


class WsClient:
    """One websocket client of the fan-out: its filter and its bounded queue."""

    def __init__(self, fanout: Fanout, ext: str | None, maxsize: int) -> None:
        self._fanout = fanout
        self.ext = ext
        self.maxsize = max(1, maxsize)
        self._queue: deque[_Encoded] = deque()
        self._wakeup = trio.Event()
        self._closed = False
        self.dropped = 0

    def offer(self, item: _Encoded) -> None:
        if self.ext is not None and not actions.involves(item.call, self.ext):
            return
        if len(self._queue) >= self.maxsize:
            self.dropped += 1
            metrics.FEED_DROPPED.inc()
            self._wakeup.set()
            return
        self._queue.append(item)
        self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def leave(self) -> None:
        self._fanout.remove(self)

    async def forward(self, websocket: Any) -> str:
        """Write what is queued until the feed ends ("shutdown") or this client fell
        behind ("too slow")."""
        write = hypercorn_writer(websocket)
        if write is None:
            STATS["slow_writes"] += 1
            log.warning("websocket fast path unavailable (hypercorn moved): frame by frame")
        while True:
            while not self._queue and not self.dropped:
                if self._closed:
                    return "shutdown"
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            if self.dropped:
                log.warning("websocket client fell behind by %d changes: closing it", self.dropped)
                return "too slow"
            # When the loop is busy, wait for a young scheduler batch before writing
            # (pinc/runtime/timeslice.py); changes queue meanwhile and go out together.
            await give_way()
            batch: list[_Encoded] = []
            size = 0
            while self._queue and size < BATCH_BYTES:
                item = self._queue.popleft()
                batch.append(item)
                size += len(item.frame)
            if write is None or not await write(batch):
                for item in batch:
                    await websocket.send(item.text)


class Fanout:
    """Registered as a feed listener (``FeedHub.add_listener``) by the first client."""

    def __init__(self, customers: Customers | None = None) -> None:
        self._clients: list[WsClient] = []
        self._closed = False
        self._customers = customers

    def join(self, ext: str | None, maxsize: int) -> WsClient:
        client = WsClient(self, ext, maxsize)
        if self._closed:
            client.close()
        else:
            self._clients.append(client)
        return client

    def remove(self, client: WsClient) -> None:
        if client in self._clients:
            self._clients.remove(client)

    def clients(self) -> int:
        return len(self._clients)

    def publish(self, changes: Sequence[CallChange]) -> None:
        """The feed listener: runs in the journal's publish, after the commit. Never waits."""
        if not self._clients:
            return
        clients = list(self._clients)
        for change in changes:
            item = _Encoded(change, self._customers)
            STATS["encoded"] += 1
            for client in clients:
                client.offer(item)

    def close(self) -> None:
        """The feed closed (shutdown): every client ends once its queue is written."""
        self._closed = True
        for client in self._clients:
            client.close()
        self._clients.clear()


def hypercorn_writer(websocket: Any) -> Writer | None:
    """A writer of several frames with one socket write, on Hypercorn's websocket stream;
    None when the server is not the Hypercorn this was written against."""
    try:
        asgi_send = websocket._get_current_object()._send.args[0]
        stream = asgi_send.__self__
        connected = type(stream.state).CONNECTED
        stream_id = stream.stream_id
        send = stream.send
        connection = stream.connection
        compressed = bool(connection._proto.extensions)
        if not callable(send):
            return None
    except Exception:
        return None

    async def write(batch: list[_Encoded]) -> bool:
        if stream.closed:
            return True  # what Hypercorn does with a send after the close
        if stream.state is not connected:
            return False
        if compressed:  # permessage-deflate: this connection's own compressor, in order
            try:
                data = b"".join(connection.send(TextMessage(data=i.text)) for i in batch)
            except LocalProtocolError:
                return True  # closing: Hypercorn drops the frames too
        else:
            data = b"".join(i.frame for i in batch)
        STATS["fast_writes"] += 1
        await send(Data(stream_id=stream_id, data=data))
        return True

    return write
