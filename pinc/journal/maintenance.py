"""Journal housekeeping beside the writer: WAL checkpoints and retention.

Both run as tasks of the journal's nursery (``Journal.run``). Neither holds the writer
for long: the checkpoint runs on a connection of its own, pruning goes in chunks.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Final

import trio

from pinc.calls.model import iso
from pinc.journal.opening import connect

if TYPE_CHECKING:
    from pinc.journal.store import Journal

log = logging.getLogger("pinc.journal.store")

PRUNE_EVERY: Final = 3600.0
PRUNE_CHUNK: Final = 5000
# WAL checkpoints run beside the writer (see checkpoint_loop), after this many changes
# or this long after the first change since the last one.
CHECKPOINT_CHANGES: Final = 2000
CHECKPOINT_SECONDS: Final = 1.0
CHECKPOINT_FORCE_PAGES: Final = 25_000  # a WAL this long is checkpointed by the writer


def checkpoint(conn: sqlite3.Connection) -> int:
    """PRAGMA wal_checkpoint(PASSIVE); the length of the WAL in pages (-1: none)."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[1]) if row else 0


class Checkpointer:
    """Copies the WAL back into the database from a connection of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses 1000 WAL pages,
    fsyncs included: it held one commit in a hundred for 5-20 ms, and every change
    queued behind it (bench/ingest.py p99). A PASSIVE checkpoint on another connection
    runs while the writer goes on committing. Should the WAL still grow (a writer that
    never pauses), the writer checkpoints it itself between two batches.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._conn: sqlite3.Connection | None = None
        self._due = trio.Event()
        self._uncheckpointed = 0  # changes committed since the last checkpoint
        self.checkpoints = 0

    def committed(self, n: int) -> None:
        self._uncheckpointed += n
        if self._uncheckpointed >= CHECKPOINT_CHANGES:
            self._due.set()

    async def run(self) -> None:
        while True:
            with trio.move_on_after(CHECKPOINT_SECONDS):
                await self._due.wait()
            self._due = trio.Event()
            if not self._uncheckpointed:
                continue
            self._uncheckpointed = 0
            try:
                pages = await trio.to_thread.run_sync(self._beside)
                if pages >= CHECKPOINT_FORCE_PAGES:  # no commit in between: the WAL restarts
                    await self.journal.with_writer(checkpoint)
                self.checkpoints += 1
            except Exception as exc:
                log.warning("journal %s: WAL checkpoint failed: %s", self.journal.path, exc)

    def _beside(self) -> int:
        """A PASSIVE checkpoint (worker thread); returns the length of the WAL in pages."""
        conn = self._conn
        if conn is None:
            conn = self._conn = connect(self.journal.path, synchronous=self.journal.synchronous)
        return checkpoint(conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def prune_loop(journal: Journal) -> None:
    await trio.sleep(5.0)
    while True:
        try:
            await prune(journal)
        except Exception as exc:
            log.warning("journal %s: pruning failed: %s", journal.path, exc)
        await trio.sleep(PRUNE_EVERY)


async def prune(journal: Journal, now: float | None = None) -> dict[str, int]:
    """Delete events (and, if configured, ended calls) older than the retention."""
    jc = journal.config.journal
    now = time.time() if now is None else now
    removed = {"events": 0, "calls": 0}
    if jc.events_retention_days > 0:
        cutoff = now - jc.events_retention_days * 86400
        while True:  # in chunks so the writer is never held long
            n = await journal.write(
                lambda c: (
                    c.execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events "
                        "WHERE recorded_at < ? LIMIT ?)",
                        (cutoff, PRUNE_CHUNK),
                    ).rowcount
                )
            )
            removed["events"] += n
            if n < PRUNE_CHUNK:
                break
    if jc.calls_retention_days > 0:
        before = iso(now - jc.calls_retention_days * 86400)
        removed["calls"] = await journal.write(lambda c: _prune_calls(c, str(before)))
    if removed["events"] or removed["calls"]:
        log.info("journal %s: pruned %s", journal.path, removed)
    return removed


def _prune_calls(conn: sqlite3.Connection, before: str) -> int:
    old = "SELECT id FROM calls WHERE live = 0 AND started_at < ?"
    conn.execute(f"DELETE FROM legs WHERE call_id IN ({old})", (before,))
    conn.execute(f"DELETE FROM transfers WHERE call_id IN ({old})", (before,))
    conn.execute(f"DELETE FROM outbox WHERE state != 'pending' AND call_id IN ({old})", (before,))
    return conn.execute("DELETE FROM calls WHERE live = 0 AND started_at < ?", (before,)).rowcount
