"""The call journal's single writer: submit, batch, commit, then publish.

Changes submitted by the ingest wait in memory (bounded by ``journal.max_pending``)
until a batch commits them; only then are they handed to the feed. A batch closes
when ``journal.batch_max`` changes are waiting, ``journal.batch_ms`` after it opened,
or as soon as no more changes arrived during one pass of the scheduler, so a lone
change is not held back for nothing. The batch hooks (the CRM outbox rows) run in
the batch's transaction: a change and its callbacks commit together or not at all.

The writer connection is used only through ``trio.to_thread`` with a limiter of
one (trio's worker threads are not pinned, hence ``check_same_thread=False``).
Readers (:mod:`pinc.journal.readers`), checkpoints and retention
(:mod:`pinc.journal.maintenance`) and opening the file (:mod:`pinc.journal.opening`)
live beside this module; the SQL of a batch is :mod:`pinc.journal.rows`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, Final, TypeVar

import trio
import trio.lowlevel

from pinc import metrics
from pinc.calls.model import CallChange, iso
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.journal import maintenance
from pinc.journal.opening import (
    JournalError,
    connect,
    describe_error,
    open_files,
    unlock,
)
from pinc.journal.readers import Readers
from pinc.journal.rows import store_changes
from pinc.journal.schema import SchemaTooNew, migrate

__all__ = ["LATENCY_WINDOW", "Journal", "JournalError"]

log = logging.getLogger(__name__)
T = TypeVar("T")

Hook = Callable[[sqlite3.Connection, Sequence[CallChange]], None]
DRAIN_SECONDS: Final = 4.0  # how long shutdown may spend committing what is pending
LATENCY_WINDOW: Final = 20_000  # changes whose latency is kept (was 200,000: a 6 MB list)
RETRY_MAX: Final = 5.0  # longest pause between attempts of a failing batch


class Journal:
    """The journal service (implements ``pinc.services.JournalAccess``)."""

    def __init__(
        self,
        config: Config,
        feed: FeedHub,
        *,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.config = config
        self.path = config.journal_path().absolute()
        self.feed = feed
        self._on_connect = on_connect  # tests: pragmas that simulate a full or read-only disk
        self._hooks: list[Hook] = []
        self._limiter = trio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None
        self._readers: Readers | None = None
        self._lock_fd: int | None = None
        self._pending: deque[tuple[CallChange, float | None]] = deque()
        self._wakeup = trio.Event()
        # Every submitter blocked on a full queue parks here and every commit wakes them
        # all: one Event per waiter, replaced by the next waiter, lost the older wake-ups.
        self._space = trio.lowlevel.ParkingLot()
        self._checkpointer = maintenance.Checkpointer(self)
        self._running = False
        self.synchronous = "NORMAL"
        self.last_error: str | None = None
        self.last_commit_at = 0.0  # trio clock of the last successful batch
        self.batches = 0
        self.committed = 0
        self.max_batch_seen = 0
        self.write_errors = 0
        self.duplicates_ignored = 0
        # arrival -> publication, seconds, of the last changes (benchmarks read it)
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    # ---- JournalAccess ----------------------------------------------------------------

    def add_batch_hook(self, hook: Hook) -> None:
        self._hooks.append(hook)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection inside one transaction."""
        return await trio.to_thread.run_sync(self._write_sync, fn, limiter=self._limiter)

    async def with_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection outside a transaction (a checkpoint)."""
        return await trio.to_thread.run_sync(lambda: fn(self._writer()), limiter=self._limiter)

    async def read(
        self, fn: Callable[[sqlite3.Connection], T], *, abandon_on_cancel: bool = False
    ) -> T:
        """Run ``fn`` on a reader connection in a worker thread.

        With ``abandon_on_cancel`` a cancelled caller returns at once (a deadline, such
        as the dialplan's), and the read finishes in its thread and is thrown away; it
        still holds its reader until then, so abandoned reads never pile up past the pool.
        """
        readers = self._readers
        if readers is None:
            raise RuntimeError("the journal is not open")
        return await trio.to_thread.run_sync(
            readers.run, fn, limiter=readers.limiter, abandon_on_cancel=abandon_on_cancel
        )

    def latency_percentiles(self) -> dict[str, float | None]:
        """Arrival -> publication p50/p99 in ms over the last ``LATENCY_WINDOW`` changes."""
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else None

        return {"latency_ms_p50": pct(0.50), "latency_ms_p99": pct(0.99)}

    def status(self) -> dict[str, Any]:
        # Cheap: /ping asks it on every request (percentiles, a sort, are separate).
        return {
            "ok": self._running and self.last_error is None,
            "path": str(self.path),
            "pending": len(self._pending),
            "last_error": self.last_error,
            "batches": self.batches,
            "committed": self.committed,
            "max_batch": self.max_batch_seen,
            "write_errors": self.write_errors,
        }

    @property
    def checkpoints(self) -> int:
        return self._checkpointer.checkpoints

    # ---- ingest side ------------------------------------------------------------------

    async def submit(
        self, changes: Sequence[CallChange], *, arrived_at: float | None = None
    ) -> None:
        """Queue changes for the next batch; waits only when ``max_pending`` are unwritten."""
        if not changes:
            return
        limit = max(1, self.config.journal.max_pending)
        if len(self._pending) >= limit:
            log.warning(
                "journal: %d changes wait for the disk (journal.max_pending); ingest paused",
                len(self._pending),
            )
            while len(self._pending) >= limit:
                await self._space.park()
        self._pending.extend((c, arrived_at) for c in changes)
        self._wakeup.set()

    def submit_nowait(
        self, changes: Sequence[CallChange], *, arrived_at: float | None = None
    ) -> None:
        """Queue changes past ``max_pending`` (shutdown only: the drain writes them)."""
        self._pending.extend((c, arrived_at) for c in changes)
        self._wakeup.set()

    def pending(self) -> int:
        return len(self._pending)

    def blocked_submitters(self) -> int:
        """Submitters waiting for room (the watchdog and the tests look)."""
        return len(self._space)

    # ---- service ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        jc = self.config.journal
        self.synchronous = "FULL" if jc.synchronous == "full" else "NORMAL"
        await trio.to_thread.run_sync(self._open, limiter=self._limiter)
        self._running = True
        self.last_commit_at = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(maintenance.prune_loop, self)
                nursery.start_soon(self._checkpointer.run)
                task_status.started()
                await self._write_loop()
        finally:
            self._running = False
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + DRAIN_SECONDS
                await self._drain()
            self.feed.close()
            self._close()

    async def _write_loop(self) -> None:
        jc = self.config.journal
        batch_max = max(1, jc.batch_max)
        backoff = 0.1
        while True:
            if not self._pending:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            # let the batch fill while changes keep arriving, up to batch_ms / batch_max
            deadline = trio.current_time() + jc.batch_ms / 1000
            seen = len(self._pending)
            while seen < batch_max and trio.current_time() < deadline:
                await trio.lowlevel.checkpoint()
                if len(self._pending) == seen:
                    break
                seen = len(self._pending)
            if await self._commit_some(batch_max):
                backoff = 0.1
            else:
                await trio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    async def _commit_some(self, batch_max: int) -> bool:
        """Commit the oldest pending changes, then publish them. False if the write failed."""
        batch = list(islice(self._pending, 0, batch_max))
        try:
            skipped = await trio.to_thread.run_sync(self._commit, batch, limiter=self._limiter)
        except Exception as exc:
            self.write_errors += 1
            metrics.JOURNAL_WRITE_ERRORS.inc()
            first = self.last_error is None
            self.last_error = f"{type(exc).__name__}: {exc}"
            (log.error if first else log.warning)(
                "journal %s: write failed (%s); %d changes held in memory, retrying",
                self.path,
                self.last_error,
                len(self._pending),
            )
            return False
        # no checkpoint from here on: a commit is always followed by its publication
        if self.last_error is not None:
            log.info("journal %s: writing again after an error", self.path)
            self.last_error = None
        for _ in batch:
            self._pending.popleft()
        self.duplicates_ignored += len(skipped)
        published = [c for i, (c, _) in enumerate(batch) if i not in skipped]
        self.feed.publish(published)
        now = time.time()
        self.latencies.extend(now - at for _, at in batch if at is not None)
        self.batches += 1
        self.committed += len(published)
        self.last_commit_at = trio.current_time()
        self._checkpointer.committed(len(batch))
        self.max_batch_seen = max(self.max_batch_seen, len(batch))
        metrics.CHANGES_COMMITTED.inc(len(published))
        for change in published:
            if change.kind == "call.ended":
                metrics.CALLS_ENDED.labels(str(change.call.get("status"))).inc()
        self._space.unpark_all()
        return True

    async def _drain(self) -> None:
        """At shutdown: commit what is pending, within the shielded deadline."""
        backoff = 0.05
        while self._pending:
            if await self._commit_some(max(1, self.config.journal.batch_max) * 10):
                continue
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
        if self._pending:  # the deadline passed with the disk still refusing
            log.error(
                "journal %s: %d changes could not be written before shutdown",
                self.path,
                len(self._pending),
            )

    async def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete events (and, if configured, ended calls) older than the retention."""
        return await maintenance.prune(self, now)

    # ---- worker-thread side -----------------------------------------------------------

    def _open(self) -> None:
        path = self.path
        try:
            self._lock_fd = open_files(path)
            conn = connect(path, synchronous=self.synchronous)
            try:
                if self._on_connect is not None:
                    self._on_connect(conn)
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise JournalError(f"journal {path}: could not switch to WAL mode ({mode})")
                migrate(conn)
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # see maintenance.Checkpointer
                # a real write now, so a read-only or full disk shows at start, not later
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_start', ?)",
                    (iso(time.time()),),
                )
            except BaseException:
                conn.close()
                raise
        except JournalError:
            self._unlock()
            raise
        except SchemaTooNew as exc:
            self._unlock()
            raise JournalError(f"journal {path}: {exc}; upgrade pinc") from None
        except (sqlite3.Error, OSError) as exc:
            self._unlock()
            raise JournalError(describe_error(path, exc)) from None
        self._conn = conn
        self._readers = Readers(path, self.synchronous)
        log.info("journal %s open (WAL, synchronous=%s)", path, self.synchronous)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            unlock(fd)

    def _close(self) -> None:
        self._checkpointer.close()
        if self._readers is not None:
            self._readers.close()
            self._readers = None
        if self._conn is not None:
            try:
                self._conn.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass
            self._conn.close()
            self._conn = None
        self._unlock()
        log.info("journal %s closed", self.path)

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the journal is not open")
        return self._conn

    def _write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _commit(self, batch: list[tuple[CallChange, float | None]]) -> set[int]:
        """One transaction: events, call rows, hooks. Returns the indexes left out."""
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            skipped = store_changes(conn, [c for c, _ in batch])
            kept = [c for i, (c, _) in enumerate(batch) if i not in skipped]
            for hook in self._hooks:
                hook(conn, kept)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return skipped
