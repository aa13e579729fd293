"""The call journal: one SQLite writer, batched commits, then publication.

Changes submitted by the ingest wait in memory (bounded by ``journal.max_pending``)
until a batch commits them; only then are they handed to the feed. A batch closes
when ``journal.batch_max`` changes are waiting, ``journal.batch_ms`` after it opened,
or as soon as no more changes arrived during one pass of the scheduler, so a lone
change is not held back for nothing. The batch hooks (the CRM outbox rows) run in
the batch's transaction: a change and its callbacks commit together or not at all.

The writer connection is used only through ``trio.to_thread`` with a limiter of
one (trio's worker threads are not pinned, hence ``check_same_thread=False``);
readers get their own connections.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Final, TypeVar

import trio
import trio.lowlevel

from pinc import metrics
from pinc.calls.model import FINAL_STATUSES, CallChange, iso
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.journal.schema import SchemaTooNew, migrate

log = logging.getLogger(__name__)
T = TypeVar("T")

Hook = Callable[[sqlite3.Connection, Sequence[CallChange]], None]
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
DRAIN_SECONDS: Final = 4.0  # how long shutdown may spend committing what is pending
LATENCY_WINDOW: Final = 20_000  # changes whose latency is kept (was 200,000: a 6 MB list)
RETRY_MAX: Final = 5.0  # longest pause between attempts of a failing batch
READERS: Final = 4
PRUNE_EVERY: Final = 3600.0
PRUNE_CHUNK: Final = 5000
# WAL checkpoints run beside the writer (see _checkpoint_loop), after this many changes
# or this long after the first change since the last one.
CHECKPOINT_CHANGES: Final = 2000
CHECKPOINT_SECONDS: Final = 1.0
CHECKPOINT_FORCE_PAGES: Final = 25_000  # a WAL this long is checkpointed by the writer


class JournalError(Exception):
    """The journal cannot be opened; the message names the file and what to do."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _connect(path: Path, *, synchronous: str, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
    else:
        conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=5.0
        )
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")  # per connection, not persisted
    return conn


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def describe_error(path: Path, exc: BaseException) -> str:
    """A start-up failure in words an administrator can act on."""
    text = str(exc)
    name = _error_name(exc) if isinstance(exc, sqlite3.Error) else ""
    if isinstance(exc, sqlite3.DatabaseError) and (
        name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text
    ):
        return (
            f"journal {path} is not a SQLite database (or is damaged): move it away or set "
            "journal.path to another file, and pinc will create a new journal"
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text or isinstance(exc, PermissionError):
        return (
            f"journal {path} is read-only for pinc ({text}): give the user running pinc write "
            "access to the file and its directory, or set journal.path to a writable place"
        )
    if (
        name == "SQLITE_FULL"
        or "disk is full" in text
        or getattr(exc, "errno", None) == errno.ENOSPC
    ):
        try:
            free = shutil.disk_usage(path.parent).free // (1024 * 1024)
            where = f" ({free} MB free on its file system)"
        except OSError:
            where = ""
        return (
            f"journal {path}: the disk is full{where}: free some space or move journal.path "
            "to a larger file system, then start pinc again"
        )
    if name == "SQLITE_BUSY" or "locked" in text:
        return (
            f"journal {path} is locked by another program: stop whatever holds it open for "
            "writing (another pinc, a sqlite3 shell) and start pinc again"
        )
    return f"journal {path} cannot be opened: {text}"


class _Readers:
    """A small pool of read-only connections, one in use per worker thread."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._free: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._mutex = threading.Lock()
        self.limiter = trio.CapacityLimiter(READERS)

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._mutex:
            conn = self._free.pop() if self._free else None
        if conn is None:
            conn = _connect(self.path, synchronous=self.synchronous)
            conn.execute("PRAGMA query_only = 1")
            with self._mutex:
                self._all.append(conn)
        try:
            conn.execute("BEGIN")  # one snapshot for everything fn reads
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")
        finally:
            with self._mutex:
                self._free.append(conn)

    def close(self) -> None:
        with self._mutex:
            for conn in self._all:
                conn.close()
            self._all.clear()
            self._free.clear()


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
        self._readers: _Readers | None = None
        self._lock_fd: int | None = None
        self._pending: deque[tuple[CallChange, float | None]] = deque()
        self._wakeup = trio.Event()
        self._space = trio.Event()
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint_due = trio.Event()
        self._uncheckpointed = 0  # changes committed since the last checkpoint
        self.checkpoints = 0
        self._running = False
        self.last_error: str | None = None
        self.batches = 0
        self.committed = 0
        self.max_batch_seen = 0
        self.write_errors = 0
        self.duplicates_ignored = 0
        # arrival -> publication, seconds, of the last changes (benchmarks read it)
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._synchronous = "NORMAL"

    # ---- JournalAccess ----------------------------------------------------------------

    def add_batch_hook(self, hook: Hook) -> None:
        self._hooks.append(hook)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await trio.to_thread.run_sync(self._write_sync, fn, limiter=self._limiter)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        readers = self._readers
        if readers is None:
            raise RuntimeError("the journal is not open")
        return await trio.to_thread.run_sync(readers.run, fn, limiter=readers.limiter)

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

    # ---- ingest side ------------------------------------------------------------------

    async def submit(
        self, changes: Sequence[CallChange], *, arrived_at: float | None = None
    ) -> None:
        """Queue changes for the next batch; waits only when ``max_pending`` are unwritten."""
        if not changes:
            return
        limit = max(1, self.config.journal.max_pending)
        while len(self._pending) >= limit:
            log.warning(
                "journal: %d changes wait for the disk (journal.max_pending); ingest paused",
                len(self._pending),
            )
            self._space = trio.Event()
            await self._space.wait()
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

    # ---- service ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        jc = self.config.journal
        self._synchronous = "FULL" if jc.synchronous == "full" else "NORMAL"
        await trio.to_thread.run_sync(self._open, limiter=self._limiter)
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._prune_loop)
                nursery.start_soon(self._checkpoint_loop)
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
        published = [c for i, (c, _) in enumerate(batch) if i not in skipped]
        self.feed.publish(published)
        now = time.time()
        self.latencies.extend(now - at for _, at in batch if at is not None)
        self.batches += 1
        self.committed += len(published)
        self._uncheckpointed += len(batch)
        if self._uncheckpointed >= CHECKPOINT_CHANGES:
            self._checkpoint_due.set()
        self.max_batch_seen = max(self.max_batch_seen, len(batch))
        metrics.CHANGES_COMMITTED.inc(len(published))
        for change in published:
            if change.kind == "call.ended":
                metrics.CALLS_ENDED.labels(str(change.call.get("status"))).inc()
        self._space.set()
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

    async def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database from a connection of its own.

        SQLite's automatic checkpoint runs inside the COMMIT that crosses 1000 WAL pages,
        fsyncs included: it held one commit in a hundred for 5-20 ms, and every change
        queued behind it (bench/ingest.py p99). A PASSIVE checkpoint on another connection
        runs while the writer goes on committing. Should the WAL still grow (a writer that
        never pauses), the writer checkpoints it itself between two batches.
        """
        while True:
            with trio.move_on_after(CHECKPOINT_SECONDS):
                await self._checkpoint_due.wait()
            self._checkpoint_due = trio.Event()
            if not self._uncheckpointed:
                continue
            self._uncheckpointed = 0
            try:
                pages = await trio.to_thread.run_sync(self._checkpoint_beside)
                if pages >= CHECKPOINT_FORCE_PAGES:  # no commit in between: the WAL restarts
                    await trio.to_thread.run_sync(
                        lambda: _checkpoint(self._writer()), limiter=self._limiter
                    )
                self.checkpoints += 1
            except Exception as exc:
                log.warning("journal %s: WAL checkpoint failed: %s", self.path, exc)

    def _checkpoint_beside(self) -> int:
        """A PASSIVE checkpoint (worker thread); returns the length of the WAL in pages."""
        conn = self._checkpointer
        if conn is None:
            conn = self._checkpointer = _connect(self.path, synchronous=self._synchronous)
        return _checkpoint(conn)

    async def _prune_loop(self) -> None:
        await trio.sleep(5.0)
        while True:
            try:
                await self.prune()
            except Exception as exc:
                log.warning("journal %s: pruning failed: %s", self.path, exc)
            await trio.sleep(PRUNE_EVERY)

    async def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete events (and, if configured, ended calls) older than the retention."""
        jc = self.config.journal
        now = time.time() if now is None else now
        removed = {"events": 0, "calls": 0}
        if jc.events_retention_days > 0:
            cutoff = now - jc.events_retention_days * 86400
            while True:  # in chunks so the writer is never held long
                n = await self.write(
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
            removed["calls"] = await self.write(lambda c: _prune_calls(c, str(before)))
        if removed["events"] or removed["calls"]:
            log.info("journal %s: pruned %s", self.path, removed)
        return removed

    # ---- worker-thread side -----------------------------------------------------------

    def _open(self) -> None:
        path = self.path
        try:
            self._open_files(path)
            conn = _connect(path, synchronous=self._synchronous)
            try:
                if self._on_connect is not None:
                    self._on_connect(conn)
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise JournalError(f"journal {path}: could not switch to WAL mode ({mode})")
                migrate(conn)
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # see _checkpoint_loop
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
        self._readers = _Readers(path, self._synchronous)
        log.info("journal %s open (WAL, synchronous=%s)", path, self._synchronous)

    def _open_files(self, path: Path) -> None:
        """Directory (0700) and file (0600), the lock beside it, and a quick look inside."""
        directory = path.parent
        if not directory.exists():
            try:
                directory.mkdir(parents=True, mode=0o700)
            except PermissionError:
                raise JournalError(
                    f"journal {path}: cannot create the directory {directory} (permission "
                    "denied): create it for the user running pinc, or set journal.path"
                ) from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise JournalError(
                f"journal {path}: the directory {directory} is read-only for pinc (SQLite "
                "writes its -wal file there): give pinc write access or set journal.path"
            )
        lock = Path(f"{path}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JournalError(
                f"journal {path} is in use by another pinc (pid {holder}, lock {lock}): stop "
                "that pinc first, or give this one its own journal.path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        elif not path.is_file():
            raise JournalError(f"journal {path} is not a regular file: set journal.path")
        else:
            with path.open("rb") as f:
                head = f.read(16)
            if head and head != SQLITE_MAGIC:
                raise JournalError(
                    f"journal {path} is not a SQLite database (it starts with {head[:8]!r}): "
                    "move it away or set journal.path to another file, and pinc will create "
                    "a new journal"
                )
            if not os.access(path, os.W_OK):
                raise JournalError(
                    f"journal {path} is read-only for pinc: give the user running pinc write "
                    "access (chmod 600, owned by that user), or set journal.path"
                )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
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
            skipped = self._store(conn, [c for c, _ in batch])
            kept = [c for i, (c, _) in enumerate(batch) if i not in skipped]
            for hook in self._hooks:
                hook(conn, kept)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return skipped

    def _store(self, conn: sqlite3.Connection, changes: list[CallChange]) -> set[int]:
        now = time.time()
        skipped: set[int] = set()
        ended_here: set[str] = set()
        ended = [c.call_id for c in changes if c.kind == "call.ended"]
        already: set[str] = set()
        if ended:  # a call ends once: a second end (e.g. after a restart) is not recorded
            marks = ",".join("?" * len(set(ended)))
            already = {
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM calls WHERE live = 0 AND id IN ({marks})", list(set(ended))
                )
            }
        rows = []
        latest: dict[str, tuple[dict[str, Any], str]] = {}
        for i, change in enumerate(changes):
            if change.kind == "call.ended":
                if change.call_id in already or change.call_id in ended_here:
                    skipped.add(i)
                    self.duplicates_ignored += 1
                    log.warning(
                        "journal: call %s ended twice; the second end is ignored", change.call_id
                    )
                    continue
                ended_here.add(change.call_id)
            snapshot = _dumps(change.call)
            rows.append(
                (change.call_id, change.kind, change.at, now, _dumps(change.data), snapshot)
            )
            latest[change.call_id] = (change.call, snapshot)
        conn.executemany(
            "INSERT INTO events (call_id, kind, at, recorded_at, data, call) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        call_rows = []
        leg_rows = []
        transfer_rows = []
        for call_id, (call, snapshot) in latest.items():
            status = str(call.get("status") or "")
            call_rows.append(
                (
                    call_id,
                    str(call.get("linkedid") or ""),
                    str(call.get("direction") or ""),
                    status,
                    call.get("from"),
                    call.get("to"),
                    call.get("started_at"),
                    call.get("answered_at"),
                    call.get("ended_at"),
                    int(call.get("duration") or 0),
                    int(call.get("talk") or 0),
                    call.get("answered_by"),
                    call.get("recording"),
                    call.get("end_reason"),
                    0 if status in FINAL_STATUSES else 1,
                    now,
                    snapshot,
                )
            )
            for idx, leg in enumerate(call.get("legs") or ()):
                leg_rows.append(
                    (
                        call_id,
                        idx,
                        leg.get("ext"),
                        leg.get("result"),
                        leg.get("rang_at"),
                        leg.get("answered_at"),
                        leg.get("ended_at"),
                    )
                )
            for idx, tr in enumerate(call.get("transfers") or ()):
                transfer_rows.append(
                    (call_id, idx, tr.get("kind"), tr.get("from"), tr.get("to"), tr.get("at"))
                )
        ids = [(k,) for k in latest]
        conn.executemany(
            "INSERT OR REPLACE INTO calls (id, linkedid, direction, status, from_number, "
            "to_number, started_at, answered_at, ended_at, duration, talk, answered_by, "
            "recording, end_reason, live, updated_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            call_rows,
        )
        conn.executemany("DELETE FROM legs WHERE call_id = ?", ids)
        conn.executemany("DELETE FROM transfers WHERE call_id = ?", ids)
        conn.executemany(
            "INSERT INTO legs (call_id, idx, ext, result, rang_at, answered_at, ended_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            leg_rows,
        )
        conn.executemany(
            "INSERT INTO transfers (call_id, idx, kind, from_ext, to_target, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            transfer_rows,
        )
        return skipped


def _checkpoint(conn: sqlite3.Connection) -> int:
    """PRAGMA wal_checkpoint(PASSIVE); the length of the WAL in pages (-1: none)."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[1]) if row else 0


def _prune_calls(conn: sqlite3.Connection, before: str) -> int:
    old = "SELECT id FROM calls WHERE live = 0 AND started_at < ?"
    conn.execute(f"DELETE FROM legs WHERE call_id IN ({old})", (before,))
    conn.execute(f"DELETE FROM transfers WHERE call_id IN ({old})", (before,))
    conn.execute(f"DELETE FROM outbox WHERE state != 'pending' AND call_id IN ({old})", (before,))
    return conn.execute("DELETE FROM calls WHERE live = 0 AND started_at < ?", (before,)).rowcount
