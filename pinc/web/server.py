"""WebServer: the Quart-Trio app on Hypercorn's trio machinery, inside pinc's nursery.

Hypercorn's own ``serve()`` is not used as is, because of three traps
(stack-pitfalls.md, "HTTP and websockets"):

1. quart-trio cancels its request tasks while Hypercorn is still closing the
   connection inside the app's ``send()``, so ``Connection: close``, HTTP/1.0 and
   idle keep-alive connections were never closed. ``_asgi`` shields HTTP sends.
2. One malformed request (a websocket upgrade with trailing bytes) raised h11's
   LocalProtocolError out of the whole server. ``_serve_connection`` guards each
   connection: ``Exception`` is logged and that connection dropped (``Cancelled``
   still passes).
3. Hypercorn writes are shielded from cancellation, so a peer that stops reading
   would hold a task forever. ``_DeadlineStream`` gives every write a deadline.

Also: vtiger's ``webappurl`` with a trailing slash sends ``//makecall``; leading
slashes are collapsed before routing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from pinc.config import parse_listen
from pinc.runtime.timeslice import give_way
from pinc.services import Services
from pinc.web.access import REFRESH_SECONDS, needs_dns, resolve_peers
from pinc.web.app import WebState, create_app

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 10.0  # one write to a client must finish within this
SMALL_WRITE = 16 * 1024
WRITE_SLICE = 64 * 1024
KEEP_ALIVE = 5.0
BACKLOG = 4096
_SLASHES = re.compile(r"^/{2,}")

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class _DeadlineStream(trio.abc.HalfCloseableStream):
    """A socket stream whose writes fail (and close it) past a deadline."""

    def __init__(self, inner: trio.SocketStream, write_timeout: float) -> None:
        self.inner = inner
        self.socket = inner.socket  # hypercorn reads the peer address from it
        self.write_timeout = write_timeout

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with trio.move_on_after(self.write_timeout):
            # A big write (a snapshot, batched frames, a recording) goes in slices, each
            # giving way to the rest of the loop when its batch is spent
            # (pinc/runtime/timeslice.py): a send(2) of a megabyte to a loopback peer is
            # milliseconds of CPU. A small one (an HTTP answer, a few frames) goes at
            # once: were it to wait too, a /ping could wait behind 200 busy websockets.
            if len(data) <= SMALL_WRITE:
                await self.inner.send_all(data)
                return
            with memoryview(data) as view:
                for start in range(0, len(view), WRITE_SLICE):
                    await give_way()
                    await self.inner.send_all(view[start : start + WRITE_SLICE])
            return
        log.info("client stopped reading for %.0f s: connection dropped", self.write_timeout)
        await trio.aclose_forcefully(self.inner)
        raise trio.BrokenResourceError("write deadline passed")

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


def _asgi(app: Any) -> ASGIApp:
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope.get("path", "")
            if path.startswith("//"):
                scope = dict(scope, path=_SLASHES.sub("/", path))
                raw = scope.get("raw_path")
                if isinstance(raw, bytes):
                    scope["raw_path"] = re.sub(rb"^/{2,}", b"/", raw)
        if scope["type"] == "http":

            async def shielded_send(message: dict[str, Any]) -> None:
                with trio.CancelScope(shield=True):
                    await send(message)

            await app(scope, receive, shielded_send)
        else:
            await app(scope, receive, send)

    return asgi


class WebServer:
    """The HTTP surface. ``await nursery.start(server.run)`` returns the bound port."""

    def __init__(
        self, services: Services, *, host: str | None = None, port: int | None = None
    ) -> None:
        listen_host, listen_port = parse_listen(services.config.web.listen)
        self.services = services
        self.host = host if host is not None else listen_host
        self.port = port if port is not None else listen_port
        self.write_timeout = WRITE_TIMEOUT
        self.keep_alive = KEEP_ALIVE
        self.connections = 0

    def _hyper_config(self) -> HyperConfig:
        config = HyperConfig()
        config.keep_alive_timeout = self.keep_alive
        config.websocket_ping_interval = 20.0
        config.graceful_timeout = 2.0
        config.backlog = BACKLOG
        # A Logger object, not "-": hypercorn logs every line twice otherwise.
        config.errorlog = logging.getLogger("pinc.web.hypercorn")
        config.accesslog = None
        config.include_server_header = False
        return config

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._hyper_config()
        async with trio.open_nursery() as nursery:
            # Background work (Originate after /makecall answered) runs here, in pinc's tree.
            def spawn(fn: Callable[[], Awaitable[Any]]) -> None:
                nursery.start_soon(fn)

            quart_app = create_app(self.services, spawn=spawn)
            await self._resolve_crm_peers(quart_app.extensions["pinc"])
            crm = self.services.config.crm
            if needs_dns(crm.allow_from, crm.url):
                nursery.start_soon(self._refresh_crm_peers, quart_app.extensions["pinc"])
            asgi: Any = _asgi(quart_app)
            app = wrap_app(asgi, config.wsgi_max_body_size, "asgi")
            lifespan = Lifespan(app, config, {})
            await nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            listeners = await trio.open_tcp_listeners(self.port, host=self.host, backlog=BACKLOG)
            port = listeners[0].socket.getsockname()[1]
            context = WorkerContext(None)
            handler = partial(self._serve_connection, app, config, context)
            nursery.start_soon(partial(trio.serve_listeners, handler, listeners))
            log.info("web server listening on %s:%d", self.host, port)
            self.bound_port = port
            task_status.started(port)

    async def _resolve_crm_peers(self, web: WebState, *, first: bool = True) -> None:
        crm = self.services.config.crm
        peers = await resolve_peers(crm.allow_from, crm.url)
        if first or peers != web.crm_peers:
            nets = ", ".join(map(str, peers.networks)) or "none"
            log.info("crm.allow_from (%s): the CRM secret is accepted from %s",
                     peers.described, nets)
        web.crm_peers = peers

    async def _refresh_crm_peers(self, web: WebState) -> None:
        """Host names in crm.allow_from (or crm.url's) may move: resolve them again."""
        while True:
            await trio.sleep(REFRESH_SECONDS)
            await self._resolve_crm_peers(web, first=False)

    async def _serve_connection(
        self, app: Any, config: HyperConfig, context: WorkerContext, stream: trio.SocketStream
    ) -> None:
        self.connections += 1
        guarded = _DeadlineStream(stream, self.write_timeout)
        try:
            await TCPServer(app, config, context, {}, guarded).run()  # type: ignore[arg-type]
        except Exception as exc:  # one bad connection must never take the server down
            log.warning("dropped a connection after a protocol error: %r", exc)
            await trio.aclose_forcefully(stream)
        finally:
            self.connections -= 1
