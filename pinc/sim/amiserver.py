"""A fake Asterisk: a real TCP AMI server that replays recorded events.

Used by the tests of every service that talks to AMI and by ``pinc demo``. It speaks
the banner, plain and MD5 login, ``Ping``, ``CoreShowChannels`` (built from the live
channels of what it replayed), ``Logoff``, and answers ``Success`` to the actions pinc
sends (Originate, Redirect, BlindTransfer, Atxfer, Setvar, Filter, Events, Command).

Replay model: the server holds one event log (the constructor's ``events`` plus every
``feed()``) and one broadcast cursor. Each event is written to every logged-in client,
once, in order, honouring ``(delay_seconds, bytes)`` items and ``rate``. With
``replay_on_login=True`` (the default) the cursor only moves while at least one client is
logged in, so a client that reconnects resumes where it stopped and loses nothing; with
``replay_on_login=False`` the server plays on whether anyone listens, like a real PBX
(a disconnected client misses what happened meanwhile).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import trio

from pinc.ami.protocol import (
    NEED_DATA,
    AMIConnection,
    Message,
    ProtocolError,
    encode_headers,
)
from pinc.sim.amisession import (
    AMI_VERSION,
    ASTERISK_VERSION,
    SIMPLE_SUCCESS,
    SNAPSHOT_KEYS,
    Event,
    EventItem,
    Reply,
    Session,
    add_filter,
    command_output,
    core_show_channels,
    parse_event,
    set_events,
)
from pinc.sim.mastercsv import MasterCsv

log = logging.getLogger(__name__)

_BATCH_EVENTS = 256  # events written to a client in one send, at most
_BATCH_BYTES = 64 * 1024
class AmiSimServer:
    """A fake Asterisk on a real TCP socket. Start it with ``await nursery.start(server.run)``,
    which returns the bound port."""

    def __init__(
        self,
        events: Iterable[EventItem] = (),
        *,
        username: str = "pinc",
        secret: str = "pincsecret",
        host: str = "127.0.0.1",
        port: int = 0,
        replay_on_login: bool = True,
        rate: float | None = None,
        master_csv: Path | None = None,
    ) -> None:
        self.username = username
        self.secret = secret
        self.host = host
        self.port = port
        self.replay_on_login = replay_on_login
        self.rate = rate
        # the CDR a real Asterisk writes meanwhile (pinc/sim/mastercsv.py): tests of the
        # recovery of calls made while pinc was down
        self.master_csv = master_csv
        self._cdr = MasterCsv()
        self.actions: list[tuple[Message, bytes]] = []
        self.logins = 0  # successful logins
        self.auth_types: list[str] = []  # "plain" or "md5", per successful login
        self.failed_logins = 0
        self.replayed = 0  # events of the log written so far
        self.connections = 0  # TCP connections accepted
        self.fail_auth = False
        self._stall = False
        self._log: list[Event] = []
        self._sessions: list[Session] = []
        self._changed = trio.Event()
        self._channels: dict[str, dict[str, str]] = {}  # Uniqueid -> snapshot fields
        self._channel_seen: dict[str, float] = {}
        self.feed(events)

    # -- control, from tests ------------------------------------------------------------

    @property
    def stall(self) -> bool:
        """While True the server reads but answers nothing and replays nothing."""
        return self._stall

    @stall.setter
    def stall(self, value: bool) -> None:
        self._stall = value
        self._wake()

    def feed(self, events: Iterable[EventItem]) -> None:
        """Append events to the replay log."""
        self._log.extend(parse_event(item) for item in events)
        self._wake()

    async def wait_replayed(self) -> None:
        """Return once every event fed so far has been written to the clients."""
        while self.replayed < len(self._log):
            await self._wait_change()

    async def wait_logins(self, count: int) -> None:
        """Return once ``count`` successful logins happened in total."""
        await self.wait_for(lambda: self.logins >= count)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is checked after every change the server
        sees (a connection, an action, a login, an event replayed)."""
        while not predicate():
            await self._wait_change()

    async def drop_clients(self) -> None:
        """Close every client connection now (events already written stay delivered)."""
        for session in list(self._sessions):
            session.cancel.cancel()
        while self._sessions:
            await self._wait_change()

    @property
    def clients(self) -> int:
        """Clients logged in now."""
        return sum(1 for s in self._sessions if s.logged_in)

    def live_channels(self) -> list[dict[str, str]]:
        return list(self._channels.values())

    # -- running --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump)
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def _pump(self) -> None:
        # Events are due on an absolute schedule (each one ``delay`` + 1/rate after the
        # previous one) and every event that is due is written in one send per client:
        # one sleep and one write per event could not go past ~700 events/s paced, nor
        # ~20,000 events/s unpaced (bench/ingest.py).
        due: float | None = None  # when the last event written was due (trio clock)
        while True:
            if (
                self.replayed >= len(self._log)
                or self._stall
                or (self.replay_on_login and not any(s.logged_in for s in self._sessions))
            ):
                due = None  # after a pause the schedule starts again from now
                await self._wait_change()
                continue
            now = trio.current_time()
            due = now if due is None else due
            first_due = due + self._log[self.replayed].delay + self._gap()
            if first_due > now:
                await trio.sleep_until(first_due)
                continue  # look again: the server may have stalled or lost its client
            now = trio.current_time()
            batch: list[Event] = []
            size = 0
            end = len(self._log)
            i = self.replayed
            while i < end and len(batch) < _BATCH_EVENTS and size < _BATCH_BYTES:
                ev = self._log[i]
                next_due = due + ev.delay + self._gap()
                if next_due > now and batch:
                    break
                due = next_due
                batch.append(ev)
                size += len(ev.raw)
                i += 1
            for ev in batch:
                self._track(ev.message)
            if self.master_csv is not None:
                self._write_cdr(batch)
            for session in list(self._sessions):
                if session.logged_in:
                    data = b"".join(ev.raw for ev in batch if session.wants(ev))
                    if data:
                        await session.send(data)
            self.replayed += len(batch)
            self._wake()
            await trio.lowlevel.checkpoint()

    def _write_cdr(self, batch: list[Event]) -> None:
        lines = []
        for ev in batch:
            self._cdr.track(ev.message)
            if ev.message.name == "Cdr":
                lines.append(self._cdr.row(ev.message) + "\n")
        if lines and self.master_csv is not None:
            with self.master_csv.open("a", encoding="utf-8") as f:
                f.writelines(lines)

    def _gap(self) -> float:
        return 1.0 / self.rate if self.rate else 0.0

    def _track(self, msg: Message) -> None:
        """Keep the live channels' snapshots for CoreShowChannels."""
        uniqueid = msg.get("Uniqueid")
        if not uniqueid or "Channel" not in msg:
            return
        if msg.name == "Hangup":
            self._channels.pop(uniqueid, None)
            self._channel_seen.pop(uniqueid, None)
            return
        if msg.name != "Newchannel" and uniqueid not in self._channels:
            return
        snap = self._channels.setdefault(uniqueid, {})
        self._channel_seen.setdefault(uniqueid, time.monotonic())
        for key in SNAPSHOT_KEYS:
            if key in msg:
                snap[key] = msg[key]
        if msg.name == "Newexten":
            snap["Application"] = msg.get("Application")
            snap["ApplicationData"] = msg.get("AppData")
        elif msg.name == "BridgeEnter":
            snap["BridgeId"] = msg.get("BridgeUniqueid")
        elif msg.name == "BridgeLeave":
            snap["BridgeId"] = ""

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self._wake()
        with trio.CancelScope() as scope:
            session = Session(stream, scope)
            self._sessions.append(session)
            try:
                if await session.send(f"Asterisk Call Manager/{AMI_VERSION}\r\n".encode()):
                    await self._serve(session)
            except Exception as exc:  # one broken client must not stop the server
                log.debug("sim AMI client ended: %r", exc)
            finally:
                self._sessions.remove(session)
                self._wake()
        with trio.move_on_after(1) as cleanup:
            cleanup.shield = True
            await stream.aclose()

    async def _serve(self, session: Session) -> None:
        conn = AMIConnection(expect_banner=False)
        raw = bytearray()
        base = 0  # stream offset of raw[0]
        while True:
            data = await session.stream.receive_some(65536)
            if not data:
                return
            conn.feed(data)
            raw += data
            while True:
                try:
                    msg = conn.next_message()
                except ProtocolError as exc:
                    log.warning("sim AMI: bad action stream: %s", exc)
                    return
                if msg is NEED_DATA:
                    break
                assert isinstance(msg, Message)
                self.actions.append((msg, bytes(raw[msg.offset - base : conn.offset - base])))
                if not await self._answer(session, msg):
                    return
            del raw[: conn.offset - base]
            base = conn.offset

    async def _answer(self, session: Session, msg: Message) -> bool:
        """Answer one action; False ends the session."""
        self._wake()
        if self._stall:
            return True
        name = msg.get("Action").lower()
        aid = msg.action_id

        def reply(*headers: tuple[str, str], response: str = "Success") -> bytes:
            head = [("Response", response)] + ([("ActionID", aid)] if aid else [])
            return encode_headers([*head, *headers])

        if name == "challenge":
            session.challenge = str(random.randrange(10**8, 10**9))
            return await session.send(reply(("Challenge", session.challenge)))
        if name == "login":
            return await self._login(session, msg, reply)
        if not session.logged_in:
            return await session.send(reply(("Message", "Permission denied"), response="Error"))
        if name == "logoff":
            await session.send(reply(("Message", "Thanks for all the fish."), response="Goodbye"))
            return False
        if name == "ping":
            stamp = f"{time.time():.6f}"
            return await session.send(reply(("Ping", "Pong"), ("Timestamp", stamp)))
        if name == "coreshowchannels":
            live = core_show_channels(self._channels, self._channel_seen, aid, reply)
            return await session.send(live)
        if name == "coresettings":
            return await session.send(
                reply(
                    ("AMIversion", AMI_VERSION),
                    ("AsteriskVersion", ASTERISK_VERSION.split()[1]),
                    ("SystemName", ""),
                    ("CoreMaxCalls", "0"),
                )
            )
        if name == "command":
            lines = command_output(msg.get("Command"))
            return await session.send(
                reply(("Message", "Command output follows"), *(("Output", ln) for ln in lines))
            )
        if name == "events":
            set_events(session, msg.get("EventMask"))
            mask = "Events on" if session.events_on else "Events off"
            return await session.send(reply(("Message", mask)))
        if name == "filter":
            return await session.send(add_filter(session, msg, reply))
        if name in SIMPLE_SUCCESS:
            return await session.send(reply(("Message", SIMPLE_SUCCESS[name])))
        return await session.send(reply(("Message", "Invalid/unknown command"), response="Error"))

    async def _login(self, session: Session, msg: Message, reply: Reply) -> bool:
        auth_type = msg.get("AuthType").lower()
        if auth_type == "md5":
            expected = hashlib.md5((session.challenge + self.secret).encode()).hexdigest()
            ok = bool(session.challenge) and msg.get("Key").lower() == expected
        else:
            ok = msg.get("Secret") == self.secret
        ok = ok and msg.get("Username") == self.username and not self.fail_auth
        if not ok:
            self.failed_logins += 1
            self._wake()
            await session.send(reply(("Message", "Authentication failed"), response="Error"))
            return False
        if "Events" in msg:
            set_events(session, msg.get("Events"))
        sent = await session.send(reply(("Message", "Authentication accepted")))
        session.logged_in = True
        self.logins += 1
        self.auth_types.append("md5" if auth_type == "md5" else "plain")
        self._wake()
        return sent
