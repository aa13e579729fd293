"""For the AGI and routing tests: a CRM double, the real journal, an AGI client (Asterisk's
side)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from pinc.agi.server import AgiServer
from pinc.calls.model import CallChange, iso
from pinc.config import Config, replace
from pinc.feed import FeedHub
from pinc.journal.store import Journal
from pinc.routing import Customer, Router

T = TypeVar("T")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


class FakeCrm:
    """A CRM that knows ``customers``; it can be slow, silent (``never``) or broken (``error``)."""

    def __init__(self, customers: dict[str, Customer] | None = None) -> None:
        self.customers = customers or {}
        self.calls: list[str] = []
        self.delay = 0.0
        self.never = False
        self.error: Exception | None = None
        self.called = trio.Event()  # replaced after each call; wait on it to see the next one

    async def find_customer(self, number: str) -> Customer | None:
        self.calls.append(number)
        self.called.set()
        self.called = trio.Event()
        if self.never:
            await trio.sleep_forever()
        if self.delay:
            await trio.sleep(self.delay)
        else:
            await trio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        return self.customers.get(number)


class RoutingJournal:
    """The real journal (pinc.journal.store.Journal on a tmp file), with calls added the
    way pinc adds them (a committed call.ended) and its reads counted."""

    def __init__(self, inner: Journal) -> None:
        self.inner = inner
        self.reads = 0
        self.added = 0

    async def add(self, number: str, ext: str, at: float) -> None:
        self.added += 1
        call = {
            "id": f"r{self.added}", "linkedid": f"{int(at)}.{self.added}",
            "direction": "inbound", "status": "completed", "from": number,
            "to": "74951230000", "started_at": iso(at), "answered_at": iso(at + 2),
            "ended_at": iso(at + 30), "duration": 30, "talk": 28, "answered_by": ext,
            "legs": [{"ext": ext, "result": "answered"}], "transfers": [], "recording": None,
        }
        await self.inner.submit([CallChange("call.ended", call["id"], iso(at + 30) or "", call)])
        while self.inner.pending():  # noqa: ASYNC110 (the journal's own batch loop)
            await trio.sleep(0.005)

    async def read(
        self, fn: Callable[[sqlite3.Connection], T], *, abandon_on_cancel: bool = False
    ) -> T:
        self.reads += 1
        return await self.inner.read(fn, abandon_on_cancel=abandon_on_cancel)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.inner.write(fn)

    def add_batch_hook(self, hook: Callable[[sqlite3.Connection, Sequence[Any]], None]) -> None:
        self.inner.add_batch_hook(hook)

    def status(self) -> dict[str, Any]:
        return self.inner.status()


@pytest.fixture
async def journal(nursery: trio.Nursery, tmp_path: Path) -> RoutingJournal:
    inner = Journal(replace(Config(), journal={"path": str(tmp_path / "pinc.db")}), FeedHub())
    await nursery.start(inner.run)
    return RoutingJournal(inner)


def make_config(**sections: dict[str, Any]) -> Config:
    agi = {"listen": "127.0.0.1:0", **sections.pop("agi", {})}
    return replace(Config(), agi=agi, **sections)


def fixture_environment(name: str = "asterisk-local/agi_responsible.agi") -> bytes:
    data = (FIXTURES / name).read_bytes()
    return data[: data.index(b"\n\n") + 2]


def environment(script: str = "responsible", callerid: str = "79161234567", *args: str) -> bytes:
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}",
        "agi_channel: PJSIP/trunk-00000001",
        f"agi_callerid: {callerid}",
        *(f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)),
    ]
    return ("\n".join(lines) + "\n\n").encode()


async def agi_client(
    port: int, env: bytes, *, replies: Sequence[bytes] | None = None, answer: bytes = b""
) -> list[bytes]:
    """Play Asterisk: send ``env``, answer each command line (``200 result=1``), until EOF.

    ``replies`` replaces the default answer for the first commands (e.g. ``HANGUP``).
    Returns the command lines pinc sent.
    """
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    got: list[bytes] = []
    pending = list(replies or [])
    buf = b""
    async with stream:
        await stream.send_all(env)
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return got
            if not data:
                return got
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                got.append(line + b"\n")
                reply = pending.pop(0) if pending else (answer or b"200 result=1\n")
                try:
                    await stream.send_all(reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return got


@dataclass
class Running:
    server: AgiServer
    router: Router
    port: int


async def start(
    nursery: trio.Nursery, config: Config, crm: FakeCrm | None,
    journal: RoutingJournal | None,
) -> Running:
    router = Router(config, crm=crm, journal=journal)
    await nursery.start(router.run)
    server = AgiServer(config, router)
    port = await nursery.start(server.run)
    return Running(server, router, port)
