"""The AMI client on trio: one long-lived connection to Asterisk, kept up forever.

``AmiClient.run`` connects (with a deadline), logs in (MD5 challenge or plain), asks for
the configured event classes and server-side filters, then hands every event to the
single consumer through ``client.events`` (bounded: when it is full the client stops
reading, it never drops an event). A ``Ping`` every ``ping_interval`` seconds proves the
link alive; no pong within ``ping_timeout`` drops the link. Any drop -> reconnect with
exponential backoff and jitter, and a ``Connected`` notice after every login so the
consumer can resync with ``CoreShowChannels``.

The bytes are parsed by the sans-IO :mod:`pinc.ami.protocol`; this module only moves them.
The secret never reaches a log line: only the username is ever logged.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import trio

from pinc import metrics
from pinc.ami.events import (
    ClientEvent,
    Connected,
    Disconnected,
    Received,
)
from pinc.ami.link import (
    CONNECTION_ERRORS,
    AmiAuthError,
    AmiNotConnected,
    Link,
    LinkLost,
    OpenStream,
    connect,
    describe,
    open_tcp,
)
from pinc.ami.pending import Pending
from pinc.ami.protocol import (
    NEED_DATA,
    Kind,
    LocalProtocolError,
    Message,
    RemoteProtocolError,
    encode_action,
)
from pinc.config import AmiConfig
from pinc.runtime.timeslice import give_way
from pinc.services import ActionResult

log = logging.getLogger(__name__)


class AmiClient:
    """The AMI connection as the rest of pinc sees it (``pinc.services.AmiActions``)."""

    def __init__(self, config: AmiConfig, *, open_stream: OpenStream = open_tcp) -> None:
        self.config = config
        self._open_stream = open_stream  # tests: a trio memory stream instead of TCP
        self._send_events, self.events = trio.open_memory_channel[ClientEvent](
            max(1, config.queue_size)
        )
        self._link: Link | None = None
        self._logged_in = False
        self._pending: dict[str, Pending] = {}
        self._ids = itertools.count(1)
        self._since: float | None = None
        self._asterisk_version = ""
        self._ami_version = ""
        self._logins = 0
        self._last_error: str | None = None
        self._consumer_blocked = False
        self._consumer_unblocked_at = 0.0  # trio clock
        self._pong_at = 0.0  # trio clock
        self._rng = random.Random()

    # -- public API -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        since = (
            datetime.fromtimestamp(self._since, UTC).isoformat().replace("+00:00", "Z")
            if self._since is not None
            else None
        )
        return {
            "connected": self._logged_in,
            "since": since,
            "asterisk_version": self._asterisk_version,
            "ami_version": self._ami_version,
            "reconnects": max(0, self._logins - 1),
            "last_error": self._last_error,
            "host": f"{self.config.host}:{self.config.port}",
            "queued_events": self._send_events.statistics().current_buffer_used,
        }

    async def action(
        self,
        name: str,
        fields: Mapping[str, str | int | Iterable[str]] | Iterable[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
        in_stream: bool = False,
    ) -> ActionResult:
        """Send an action and return its response (with its list events), by ActionID.

        With ``in_stream`` a completed list reply is also delivered on ``events`` as a
        :class:`ListCompleted`, at its place among the events: a consumer that applies
        a snapshot (CoreShowChannels) there sees exactly the state Asterisk described.

        Raises AmiNotConnected when not logged in (or when the link drops while waiting),
        trio.TooSlowError past the deadline (``ami.action_timeout`` by default), and
        LocalProtocolError for a key or value that holds CR or LF.
        """
        link = self._link
        if link is None or not self._logged_in:
            raise AmiNotConnected("not connected to Asterisk AMI")
        action_id = f"pinc-{next(self._ids)}"
        data = encode_action(name, fields, action_id=action_id)
        pending = Pending(action=name, in_stream=in_stream)
        self._pending[action_id] = pending
        try:
            with trio.fail_after(self.config.action_timeout if timeout is None else timeout):
                try:
                    await link.send(data)
                except CONNECTION_ERRORS as exc:
                    raise AmiNotConnected(f"AMI link lost: {describe(exc)}") from exc
                await pending.done.wait()
        finally:
            self._pending.pop(action_id, None)
        if pending.error is not None or pending.response is None:
            raise AmiNotConnected(pending.error or "AMI link lost")
        return ActionResult(pending.response, tuple(pending.events))

    # -- the service ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect and stay connected until cancelled. ``started`` fires after the first
        attempt, whether it logged in or failed."""
        cfg = self.config
        delay = cfg.reconnect_min
        started = False
        last_complaint = ""

        def attempt_done() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        try:
            while True:
                was_up = False
                try:
                    was_up = await self._connection(attempt_done)
                    reason = "Asterisk closed the connection"
                except AmiAuthError as exc:
                    reason = f"AMI login refused for user {cfg.username!r}: {exc}"
                    if last_complaint != "auth":
                        log.error(
                            "%s; check [ami] username/secret and manager.conf; "
                            "retrying with backoff (logged once)",
                            reason,
                        )
                    last_complaint = "auth"
                except LocalProtocolError as exc:
                    reason = f"AMI login cannot be sent: {exc}"
                    if last_complaint != "local":
                        log.error("%s; check the [ami] settings (logged once)", reason)
                    last_complaint = "local"
                except RemoteProtocolError as exc:
                    metrics.AMI_PROTOCOL_ERRORS.inc()
                    reason = f"AMI protocol error: {exc}"
                    log.error("%s; dropping the connection, reconnecting with backoff", reason)
                    last_complaint = ""
                except (LinkLost, trio.TooSlowError, *CONNECTION_ERRORS) as exc:
                    reason = exc.args[0] if isinstance(exc, LinkLost) else describe(exc)
                    reason = f"AMI {cfg.host}:{cfg.port}: {reason}"
                    if last_complaint != "connect" or self._logged_in:
                        log.warning("%s; reconnecting with backoff", reason)
                    last_complaint = "connect"
                except Exception as exc:
                    reason = f"AMI client error: {describe(exc)}"
                    log.exception("AMI client failed unexpectedly; reconnecting")
                    last_complaint = ""
                was_up = was_up or self._logged_in
                await self._lost(reason)
                attempt_done()
                if was_up:
                    delay = cfg.reconnect_min
                    last_complaint = ""
                pause = delay * self._rng.uniform(0.5, 1.0)
                log.debug("next AMI attempt in %.2f s", pause)
                await trio.sleep(pause)
                delay = min(cfg.reconnect_max, max(delay * 2, 0.01))
        finally:
            self._logged_in = False
            metrics.AMI_CONNECTED.set(0)

    async def _connection(self, attempt_done: Callable[[], None]) -> bool:
        """One connection, from connect to its end. Returns True if it ever logged in;
        raises what ended it (unwrapped: the tasks store it rather than raise it)."""
        cfg = self.config
        link = await connect(cfg, self._open_stream)
        ended: list[Exception] = []
        try:
            await link.open(cfg.username, cfg.secret, cfg.auth.lower(), cfg.events)
            self._link = link
            self._ami_version = link.banner.version if link.banner else ""
            try:
                await self._handshake(link)
            except Exception as exc:
                ended.append(exc)
                if link.early:  # logged in, and events came: deliver them, then the drop
                    await self._on_login(link, attempt_done)
                raise
            await self._on_login(link, attempt_done)
            async with trio.open_nursery() as nursery:

                async def guarded(fn: Callable[[Link], Awaitable[None]]) -> None:
                    try:
                        await fn(link)
                    except Exception as exc:
                        ended.append(exc)
                        nursery.cancel_scope.cancel()

                nursery.start_soon(guarded, self._read_loop)
                nursery.start_soon(guarded, self._ping_loop)
            if ended:
                raise ended[0]
            return True
        finally:
            await self._logoff(link, polite=self._logged_in and not ended)
            attempt_done()

    async def _handshake(self, link: Link) -> None:
        """After the login, before anyone else may use the link: server-side filters and
        the Asterisk version, read inline (events meanwhile wait in ``link.early``)."""
        for n, regex in enumerate(self.config.filters):
            reply = await link.request(
                "Filter", {"Operation": "Add", "Filter": regex}, f"pinc-filter-{n}"
            )
            if reply.name != "Success":
                log.warning("AMI Filter %r refused: %s", regex, reply.get("Message"))
        self._asterisk_version = ""
        try:
            reply = await link.request("CoreSettings", {}, "pinc-version")
            if reply.name == "Success" and reply.get("AsteriskVersion"):
                self._asterisk_version = reply.get("AsteriskVersion")
                return
            # No "system" read permission: the CLI may still tell (needs "command").
            reply = await link.request("Command", {"Command": "core show version"}, "pinc-cli")
            for line in reply.output:
                if line.startswith("Asterisk "):
                    self._asterisk_version = line.split()[1]
        except trio.TooSlowError:
            log.warning("AMI: no answer to CoreSettings; Asterisk version unknown")

    async def _on_login(self, link: Link, attempt_done: Callable[[], None]) -> None:
        reconnect = self._logins > 0
        self._logins += 1
        now = time.time()
        self._since = now
        self._last_error = None
        if reconnect:
            metrics.AMI_RECONNECTS.inc()
        metrics.AMI_CONNECTED.set(1)
        log.info(
            "AMI logged in to %s:%s as %r (Asterisk %s, AMI %s)%s",
            self.config.host,
            self.config.port,
            self.config.username,
            self._asterisk_version or "?",
            self._ami_version or "?",
            " after a reconnect" if reconnect else "",
        )
        self._logged_in = True
        await self._deliver(Connected(self._asterisk_version, now, reconnect))
        # Started before the early events go out: when more came during login than the
        # channel holds, they wait for a consumer that ``nursery.start`` has not returned to.
        attempt_done()
        # Events that came during the login go out after Connected, in order.
        early, link.early = link.early, []
        for msg in early:
            await self._deliver(Received(msg, now))
        metrics.AMI_EVENTS.inc(len(early))

    async def _lost(self, reason: str) -> None:
        """After any end of a connection: fail waiting actions, tell the consumer."""
        was_up = self._logged_in
        self._logged_in = False
        self._link = None
        self._last_error = reason
        for pending in self._pending.values():
            pending.error = f"AMI link lost: {reason}"
            pending.done.set()
        if was_up:
            metrics.AMI_CONNECTED.set(0)
            await self._deliver(Disconnected(reason, time.time()))

    async def _logoff(self, link: Link, *, polite: bool) -> None:
        """Say goodbye (best effort, also while being cancelled), then close."""
        with trio.CancelScope(shield=True):
            if polite:
                with trio.move_on_after(1):
                    try:
                        await link.send(encode_action("Logoff", (), action_id="pinc-logoff"))
                    except (*CONNECTION_ERRORS, trio.TooSlowError):
                        pass
            await link.aclose()

    async def _deliver(self, item: ClientEvent) -> None:
        """Hand one item to the consumer, waiting while the channel is full."""
        try:
            self._send_events.send_nowait(item)
            return
        except trio.WouldBlock:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the consumer closed its end: nobody left to tell
        self._consumer_blocked = True
        try:
            await self._send_events.send(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self._consumer_blocked = False
            self._consumer_unblocked_at = trio.current_time()

    async def _read_loop(self, link: Link) -> None:
        cfg = self.config
        # A backstop behind the pings: a link silent for this long is dead.
        idle = cfg.ping_interval + 2 * cfg.ping_timeout
        parser = link.parser
        pending = self._pending
        at = time.time()
        while True:
            # Parse first: bytes that came with the login response are already buffered.
            count = 0
            while True:
                msg = parser.next_message()
                if msg is NEED_DATA:
                    break
                if not isinstance(msg, Message):
                    continue
                waiting = pending.get(msg.action_id) if msg.action_id else None
                if msg.kind is Kind.EVENT:
                    if waiting is not None and waiting.listing:
                        listed = waiting.take_event(msg, at)
                        if listed is not None:
                            await self._deliver(listed)
                        continue
                    count += 1
                    await self._deliver(Received(msg, at))
                elif msg.kind is Kind.RESPONSE:
                    if msg.action_id.startswith("pinc-ping"):
                        self._pong_at = trio.current_time()
                    if waiting is not None:
                        waiting.take_response(msg)
                else:
                    log.debug("AMI message neither event nor response at byte %d", msg.offset)
            if count:
                metrics.AMI_EVENTS.inc(count)
            # Flat out (a backlog after a reconnect, a soak), reading is bulk work: it
            # waits for room in a scheduler batch, so a /ping or an AGI answer is not
            # held behind it (pinc/runtime/timeslice.py); free when the loop is not busy. The
            # reader, not the ingest, gives way: the backlog then waits in the socket,
            # not as parsed events in memory (up to ami.queue_size of them).
            await give_way()
            try:
                alive = await link.receive(idle)
            except trio.TooSlowError:
                raise LinkLost(f"no data from Asterisk for {idle:g} s") from None
            if not alive:
                parser.end_of_stream()  # a cut-off message is a protocol error
                raise LinkLost("Asterisk closed the connection")
            at = time.time()

    async def _ping_loop(self, link: Link) -> None:
        cfg = self.config
        for n in itertools.count(1):
            await trio.sleep(cfg.ping_interval)
            sent_at = trio.current_time()
            await link.send(encode_action("Ping", (), action_id=f"pinc-ping-{n}"))
            while self._pong_at < sent_at:
                await trio.sleep(min(cfg.ping_timeout, 0.05))
                if trio.current_time() - sent_at < cfg.ping_timeout:
                    continue
                # A reader held up by a slow consumer is not a dead link.
                if self._consumer_blocked or self._consumer_unblocked_at > sent_at:
                    sent_at = trio.current_time()
                    continue
                raise LinkLost(f"no pong within {cfg.ping_timeout:g} s")
