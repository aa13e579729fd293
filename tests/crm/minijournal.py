"""A small JournalAccess + Feed over a real SQLite file, for the CRM tests and bench.

Same outbox DDL as the journal's migration (contracts.md); one writer connection behind
a CapacityLimiter(1), batch hooks inside the batch transaction, publish after commit.
Used when the real pinc.journal.store.Journal is not wanted (e.g. the benchmark) or
not importable yet.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

from pinc.calls.model import CallChange
from pinc.journal import schema

T = TypeVar("T")

# the journal's own table: the double must not drift from it
OUTBOX_DDL = schema.OUTBOX_DDL


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class MiniSubscription:
    def __init__(self, hub: MiniFeed, maxsize: int) -> None:
        self.dropped = 0
        self.hub = hub
        self.send, self.receive = trio.open_memory_channel[CallChange](maxsize)

    def __aiter__(self) -> AsyncIterator[CallChange]:
        return self.receive.__aiter__()

    async def aclose(self) -> None:
        self.hub.subs.discard(self)
        await self.receive.aclose()


class MiniFeed:
    def __init__(self) -> None:
        self.subs: set[MiniSubscription] = set()

    def subscribe(self, maxsize: int = 256) -> MiniSubscription:
        sub = MiniSubscription(self, maxsize)
        self.subs.add(sub)
        return sub

    def publish(self, changes: Sequence[CallChange]) -> None:
        for sub in list(self.subs):
            for change in changes:
                try:
                    sub.send.send_nowait(change)
                except trio.WouldBlock:
                    sub.dropped += 1
                except trio.ClosedResourceError:
                    self.subs.discard(sub)

    def statistics(self) -> dict[str, Any]:
        return {"subscribers": len(self.subs)}


class MiniJournal:
    def __init__(self, path: Path, feed: MiniFeed) -> None:
        self.path = path
        self.feed = feed
        self.conn = connect(path)
        self.conn.executescript(OUTBOX_DDL)
        if "sent_at" not in {r[1] for r in self.conn.execute("PRAGMA table_info(outbox)")}:
            self.conn.execute(schema.OUTBOX_V2_DDL)  # the outbox as schema 2 has it
        self.reader = connect(path)
        self.hooks: list[Callable[[sqlite3.Connection, Sequence[CallChange]], None]] = []
        self.wlock = trio.CapacityLimiter(1)
        self.rlock = trio.CapacityLimiter(1)
        self.writes = 0

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return result

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.writes += 1
        return await trio.to_thread.run_sync(self._tx, fn, limiter=self.wlock)

    async def read(
        self, fn: Callable[[sqlite3.Connection], T], *, abandon_on_cancel: bool = False
    ) -> T:
        return await trio.to_thread.run_sync(fn, self.reader, limiter=self.rlock)

    def add_batch_hook(
        self, hook: Callable[[sqlite3.Connection, Sequence[CallChange]], None]
    ) -> None:
        self.hooks.append(hook)

    async def submit(self, changes: Sequence[CallChange]) -> None:
        def batch(conn: sqlite3.Connection) -> None:
            for hook in self.hooks:
                hook(conn, changes)

        await self.write(batch)
        self.feed.publish(changes)

    def status(self) -> dict[str, Any]:
        return {"ok": True, "path": str(self.path), "pending": 0, "last_error": None}

    def close(self) -> None:
        self.conn.close()
        self.reader.close()


def rows(path: Path, sql: str = "SELECT * FROM outbox ORDER BY id") -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


INF = math.inf
