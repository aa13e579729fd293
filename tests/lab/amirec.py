"""The recorder's own AMI session: every byte Asterisk sends kept exactly as received.

Stdlib framing on purpose (not pinc's parser): the recorder is an independent witness, so a
bug in pinc's parser cannot hide in what it records. One session per scenario, logged in as
``pinc`` with ``Events: on``; the driver's actions go through the same session, so the
transcript shows their responses too (``*.ami.client`` keeps what we sent).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import trio


@dataclass
class Msg:
    """One AMI message: its headers in order (repeated keys kept) and when it arrived."""

    headers: list[tuple[str, str]]
    at: float  # time.time() when its last byte arrived
    first: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes, at: float) -> Msg:
        headers: list[tuple[str, str]] = []
        for line in raw.split(b"\r\n"):
            text = line.decode("utf-8", "replace")
            key, sep, value = text.partition(":")
            if sep:
                headers.append((key.strip(), value.strip()))
        first: dict[str, str] = {}
        for k, v in headers:
            first.setdefault(k.lower(), v)
        return cls(headers, at, first)

    def get(self, key: str, default: str = "") -> str:
        return self.first.get(key.lower(), default)

    @property
    def event(self) -> str:
        return self.get("Event")


Pred = Callable[[Msg], bool]


class AmiRecorder:
    """A logged-in AMI session that records, and lets a driver act and wait on events."""

    def __init__(self, host: str, port: int, transcript: Path, client_log: Path) -> None:
        self.host, self.port = host, port
        self.transcript, self.client_log = transcript, client_log
        self.banner = ""
        self.events: list[Msg] = []
        self.live: dict[str, str] = {}  # Uniqueid -> channel name, while the channel lives
        self.seen: set[str] = set()
        self._responses: dict[str, Msg] = {}
        self._changed = trio.Event()
        self._n = 0
        self._stream: trio.SocketStream | None = None
        self._closed = trio.Event()

    # --- the session -------------------------------------------------------------------

    async def run(self, user: str, secret: str, *, task_status: trio.TaskStatus[None]) -> None:
        """Connect, read until Asterisk closes; started once logged in."""
        with trio.fail_after(10):
            self._stream = await trio.open_tcp_stream(self.host, self.port)
        with self.transcript.open("wb") as raw, self.client_log.open("wb") as sent:
            self._sent = sent
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, raw)
                r = await self.action("Login", [("Username", user), ("Secret", secret),
                                                 ("Events", "on")], action_id="login")
                if r.get("Response") != "Success":
                    raise RuntimeError(f"AMI login failed: {r.headers}")
                task_status.started()
                await self._closed.wait()

    async def _read(self, raw: BinaryIO) -> None:
        assert self._stream is not None
        buf = b""
        try:
            while True:
                data = await self._stream.receive_some(65536)
                if not data:
                    break
                raw.write(data)
                buf += data
                if not self.banner:
                    if b"\r\n" not in buf:
                        continue
                    line, buf = buf.split(b"\r\n", 1)
                    self.banner = line.decode()
                while b"\r\n\r\n" in buf:
                    one, buf = buf.split(b"\r\n\r\n", 1)
                    self._dispatch(Msg.parse(one, time.time()))
        finally:
            raw.flush()
            self._closed.set()
            self._wake()

    def _dispatch(self, msg: Msg) -> None:
        if not msg.event:
            if msg.get("ActionID"):
                self._responses[msg.get("ActionID")] = msg
            self._wake()
            return
        self.events.append(msg)
        uid = msg.get("Uniqueid")
        if msg.event == "Newchannel" and uid:
            self.live[uid] = msg.get("Channel")
            self.seen.add(uid)
        elif msg.event == "Hangup" and uid:
            self.live.pop(uid, None)
        elif uid in self.live and msg.get("Channel"):
            self.live[uid] = msg.get("Channel")
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def action(self, name: str, headers: list[tuple[str, str]] | None = None, *,
                     action_id: str = "", timeout: float = 10) -> Msg:
        """Send an action, return its response."""
        assert self._stream is not None
        self._n += 1
        aid = action_id or f"{name.lower()}-{self._n}"
        lines = [f"Action: {name}", f"ActionID: {aid}"]
        lines += [f"{k}: {v}" for k, v in headers or []]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self._sent.write(data)
        self._sent.flush()
        await self._stream.send_all(data)
        with trio.fail_after(timeout):
            while aid not in self._responses:
                if self._closed.is_set():
                    raise ConnectionError("AMI closed")
                await self._changed.wait()
        return self._responses.pop(aid)

    async def logoff(self) -> None:
        if self._stream is None or self._closed.is_set():
            return
        try:
            with trio.move_on_after(5):
                await self.action("Logoff", action_id="logoff")
                await self._closed.wait()
        except (ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self._stream.aclose()
        self._closed.set()

    # --- waiting ------------------------------------------------------------------------

    async def wait_for(self, pred: Pred, timeout: float, since: int = 0) -> Msg:
        """The first event from index ``since`` that matches, waiting up to ``timeout``."""
        i = since
        with trio.fail_after(timeout):
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                if self._closed.is_set():
                    raise ConnectionError("AMI closed while waiting")
                await self._changed.wait()

    async def wait_idle(self, timeout: float, linger: float = 2.0) -> None:
        """Until every channel seen has hung up, then ``linger`` more for the Cdr events."""
        with trio.fail_after(timeout):
            while True:
                if self.seen and not self.live:
                    await trio.sleep(linger)
                    if not self.live:
                        return
                else:
                    await self._wait_change(0.5)

    async def _wait_change(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            await self._changed.wait()

    def channel(self, prefix: str) -> str:
        """The live channel whose name starts with ``prefix`` (the newest one)."""
        found = [name for name in self.live.values() if name.startswith(prefix)]
        if not found:
            raise LookupError(f"no live channel {prefix}*: {sorted(self.live.values())}")
        return found[-1]


def match(msg: Msg, event: str, **want: str) -> bool:
    """``event`` with each header equal to its value; a value ending in ``*`` is a prefix."""
    if msg.event != event:
        return False
    for key, value in want.items():
        have = msg.get(key)
        if value.endswith("*"):
            if not have.startswith(value[:-1]):
                return False
        elif have != value:
            return False
    return True


def count(events: list[Msg], event: str, **want: str) -> int:
    return sum(1 for e in events if match(e, event, **want))
