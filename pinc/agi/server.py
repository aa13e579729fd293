"""The FastAGI server: Asterisk's dialplan asks pinc who should take a call.

Each connection is one task of the server's handler nursery. A lookup that cannot be
answered from the cache runs in a nursery of its own next to a watcher of the socket,
so a ``HANGUP``, a closed socket or garbage ends the session at once, even mid-lookup;
a cache hit needs no extra task (the hot path). The session has one overall deadline
(``agi.session_timeout``) and every wait for Asterisk has its own
(``agi.read_timeout``); the socket is always closed, and Asterisk then continues the
dialplan (AGISTATUS=SUCCESS).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, Protocol, runtime_checkable

import trio

from pinc import metrics
from pinc.agi.protocol import (
    NEED_DATA,
    AgiConnection,
    AgiProtocolError,
    Closed,
    Environment,
    Hangup,
    Reply,
)
from pinc.config import Config, parse_listen
from pinc.services import Responsible, Router

log = logging.getLogger(__name__)

RECEIVE_SIZE: Final = 16 * 1024
MAX_VALUE: Final = 200  # characters of a value set in the dialplan (a name, an extension)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class SessionEnded(Exception):
    """The dialogue cannot go on; ``result`` is the metrics label."""

    def __init__(self, result: str, message: str = "") -> None:
        super().__init__(message or result)
        self.result = result


_SESSION_COUNTERS: dict[str, Any] = {}


def _count(result: str) -> None:
    # labels() takes a lock and builds a key each time; the hot path keeps the children
    counter = _SESSION_COUNTERS.get(result)
    if counter is None:
        counter = _SESSION_COUNTERS[result] = metrics.AGI_SESSIONS.labels(result)
    counter.inc()


@runtime_checkable
class CachedRouter(Protocol):
    """A router that can answer from its cache without waiting (pinc.routing.Router)."""

    def cached(self, number: str) -> Responsible | None: ...


def clean_value(value: str) -> str:
    """A CRM value made safe for a dialplan variable: no control characters, bounded."""
    return _CONTROL.sub(" ", value).strip()[:MAX_VALUE]


class _Session:
    """One connection: the protocol state and the reads from Asterisk."""

    def __init__(self, stream: trio.SocketStream, read_timeout: float) -> None:
        self.stream = stream
        self.conn = AgiConnection()
        self.read_timeout = read_timeout
        # One cancel scope for the session deadline and the read deadlines: before each
        # read its deadline becomes the nearer of the two. A scope per read, and moving
        # deadlines back and forth, cost more than the rest of a cached session.
        self.scope = trio.CancelScope()
        self.session_end = math.inf
        self.read_slack = read_timeout / 20
        self.waiting_for = ""
        self.result = "ok"
        self.ip = ""  # the peer's address, for the per-peer limit
        self.evicted = False  # its slot was given to a newer connection

    @property
    def peer(self) -> str:
        """host:port of Asterisk, for log lines (looked up only when one is written)."""
        try:
            host, port = self.stream.socket.getpeername()[:2]
        except (OSError, ValueError, TypeError):
            return "?"
        return f"{host}:{port}"

    async def _event(self) -> Environment | Reply:
        """The next environment or reply; HANGUP, EOF and garbage end the session."""
        try:
            while True:
                event = self.conn.next_event()
                if event is NEED_DATA:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                    if data:
                        self.conn.feed(data)
                    else:
                        self.conn.feed_eof()
                elif isinstance(event, Hangup):
                    raise SessionEnded("hangup", "Asterisk sent HANGUP")
                elif isinstance(event, Closed):
                    raise SessionEnded("closed", "Asterisk closed the connection")
                else:
                    return event
        except AgiProtocolError as exc:
            log.warning("agi %s: not FastAGI: %s", self.peer, exc)
            raise SessionEnded("error", f"not FastAGI: {exc}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise SessionEnded("closed", f"connection lost: {exc}") from None

    async def receive(self, what: str) -> Environment | Reply:
        self.waiting_for = what
        target = min(self.session_end, trio.current_time() + self.read_timeout)
        # Reads follow each other within a millisecond: a deadline set for the previous
        # one is still (nearly) right, so it is moved only when off by more than the slack.
        if not target - self.read_slack <= self.scope.deadline <= target:
            self.scope.deadline = target
        return await self._event()

    async def watch(self, done: trio.CancelScope) -> SessionEnded:
        """While pinc looks up (Asterisk has nothing to say), any line ends the session."""
        try:
            event = await self._event()
        except SessionEnded as end:
            done.cancel()
            return end
        log.warning("agi %s: unexpected %r before any command", self.peer, event)
        done.cancel()
        return SessionEnded("error", "unexpected data before any command")

    async def environment(self) -> Environment:
        event = await self.receive("environment")
        assert isinstance(event, Environment)  # the protocol yields it first, and only once
        return event

    async def command(self, verb: str, *args: str) -> Reply:
        await self.stream.send_all(self.conn.send_command(verb, *args))
        reply = await self.receive(f"reply to {verb}")
        assert isinstance(reply, Reply)
        if not reply.ok:
            log.warning("agi %s: %s got %d %s", self.peer, verb, reply.code, reply.text)
        return reply


Handler = Callable[[_Session, Environment], Awaitable[None]]


class AgiServer:
    """FastAGI on ``agi.listen``; scripts ``responsible`` and ``callerid``."""

    def __init__(self, config: Config, router: Router) -> None:
        self.config = config
        self.router = router
        self.port: int | None = None
        self.active = 0
        self._per_peer: dict[str, int] = {}
        # Sessions that have not sent their environment yet, oldest first: the ones a new
        # connection may displace when the server or its peer is full. Asterisk sends the
        # environment at once, so only an idle (or hostile) socket stays here for long.
        self._waiting: dict[_Session, None] = {}
        self._cached = router.cached if isinstance(router, CachedRouter) else None
        self._extension = re.compile(config.pbx.extension_pattern)
        self._routes: dict[str, Handler] = {
            "responsible": self._responsible,
            "callerid": self._callerid,
        }

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        host, port = parse_listen(self.config.agi.listen, where="agi.listen")
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, self._handle, port, host=host))
            self.port = int(listeners[0].socket.getsockname()[1])
            log.info("agi: listening on %s:%d", host, self.port)
            task_status.started(self.port)

    def statistics(self) -> dict[str, int | None]:
        return {"port": self.port, "active": self.active}

    def _admit(self, session: _Session) -> bool:
        """Take a slot for ``session``, displacing an idle one if the server or the peer is
        full; False when there is no slot to give (then the session is refused)."""
        agi = self.config.agi
        peer_full = self._per_peer.get(session.ip, 0) >= agi.max_sessions_per_peer
        if self.active >= agi.max_sessions or peer_full:
            idle = next((s for s in self._waiting if not peer_full or s.ip == session.ip), None)
            if idle is None:
                return False
            self._release(idle)
            idle.evicted = True
            idle.scope.cancel()
            _count("evicted")
            log.warning("agi %s: no environment yet and the %s is full: dropped for a new one",
                        idle.peer, "peer" if peer_full else "server")
        self.active += 1
        self._per_peer[session.ip] = self._per_peer.get(session.ip, 0) + 1
        self._waiting[session] = None
        return True

    def _release(self, session: _Session) -> None:
        self._waiting.pop(session, None)
        self.active -= 1
        left = self._per_peer.get(session.ip, 1) - 1
        if left > 0:
            self._per_peer[session.ip] = left
        else:
            self._per_peer.pop(session.ip, None)

    async def _handle(self, stream: trio.SocketStream) -> None:
        session = _Session(stream, self.config.agi.read_timeout)
        try:
            session.ip = str(stream.socket.getpeername()[0])
        except (OSError, IndexError):
            session.ip = "?"
        if not self._admit(session):
            # Refused at once: the dialplan falls back now rather than after a wait in line.
            _count("refused")
            log.warning("agi %s: %d sessions open (%d from this address), refusing",
                        session.peer, self.active, self._per_peer.get(session.ip, 0))
            return  # trio.serve_tcp closes the stream when the handler returns
        try:
            await self._session(session)
        except Exception:
            session.result = "error"
            log.exception("agi %s: session failed", session.peer)
        finally:
            # No close here: trio.serve_tcp closes the stream (aclose_forcefully) after us.
            if session.evicted:
                session.result = "evicted"  # counted when it was displaced
            else:
                self._release(session)
                _count(session.result)

    async def _session(self, session: _Session) -> None:
        session.session_end = trio.current_time() + self.config.agi.session_timeout
        session.scope.deadline = session.session_end
        with session.scope:
            try:
                await self._dialogue(session)
            except SessionEnded as end:
                session.result = end.result
                log.info("agi %s: %s", session.peer, end)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                session.result = "closed"
                log.info("agi %s: connection lost: %s", session.peer, exc)
        if session.scope.cancelled_caught and not session.evicted:
            session.result = "timeout"
            if trio.current_time() >= session.session_end:
                log.info(
                    "agi %s: session deadline (%ss) passed",
                    session.peer,
                    self.config.agi.session_timeout,
                )
            else:
                log.info(
                    "agi %s: no %s within %ss",
                    session.peer,
                    session.waiting_for,
                    session.read_timeout,
                )

    async def _lookup(self, session: _Session, number: str) -> Responsible:
        """The router's answer; a cache hit at once, else in a nursery that also watches
        the connection, so a caller who hangs up during the lookup ends the session."""
        if self._cached is not None:
            cached = self._cached(number)
            if cached is not None:
                return cached
        answers: list[Responsible] = []
        ends: list[SessionEnded] = []
        session.scope.deadline = session.session_end  # the router keeps its own deadline

        async def ask(done: trio.CancelScope) -> None:
            answers.append(await self.router.responsible(number))
            done.cancel()

        async def watch(done: trio.CancelScope) -> None:
            ends.append(await session.watch(done))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, nursery.cancel_scope)
            nursery.start_soon(watch, nursery.cancel_scope)
        if answers:
            return answers[0]
        raise ends[0] if ends else SessionEnded("error", "lookup ended without an answer")

    async def _dialogue(self, session: _Session) -> None:
        env = await session.environment()
        self._waiting.pop(session, None)  # a real dialogue now: no longer displaceable
        handler = self._routes.get(env.script)
        if handler is None:
            session.result = "unknown"
            log.warning(
                "agi %s: unknown script %r (channel %s); closing",
                session.peer,
                env.script,
                env.get("channel"),
            )
            return
        await handler(session, env)

    @staticmethod
    def _number(env: Environment) -> str:
        if env.args and env.args[0].strip():
            return env.args[0]
        return env.get("callerid")

    async def _responsible(self, session: _Session, env: Environment) -> None:
        answer = await self._lookup(session, self._number(env))
        agi = self.config.agi
        ext = clean_value(answer.ext or "")
        if ext and not self._extension.search(ext):
            # The dialplan dials this value: only an employee extension may get through.
            log.warning(
                "agi %s: responsible %r does not match pbx.extension_pattern; not set",
                session.peer,
                ext,
            )
            ext = ""
        for name, value in (
            (agi.var_responsible, ext),
            (agi.var_user, answer.user),
            (agi.var_customer, answer.customer_name),
        ):
            value = clean_value(value or "")
            if name and value:
                await session.command("SET VARIABLE", name, value)
        if log.isEnabledFor(logging.DEBUG):  # session.peer costs a system call
            log.debug(
                "agi %s: %s -> %s (%s)",
                session.peer,
                env.get("callerid"),
                answer.ext,
                answer.source,
            )

    async def _callerid(self, session: _Session, env: Environment) -> None:
        answer = await self._lookup(session, self._number(env))
        name = clean_value(answer.customer_name or "")
        if name:
            await session.command("SET VARIABLE", "CALLERID(name)", name)
