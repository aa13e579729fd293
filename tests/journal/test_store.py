"""The journal store: batching, hooks in the transaction, publish after commit, errors."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from pinc.calls.model import CallChange
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.journal import queries
from pinc.journal.store import LATENCY_WINDOW, Journal, JournalError

from .conftest import call, change, lifecycle, make_config


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def get(path: Path) -> bytes:
    return path.read_bytes()


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def events_of(path: Path, call_id: str | None = None) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT call_id, kind FROM events"
        rows = conn.execute(
            sql + (" WHERE call_id = ?" if call_id else "") + " ORDER BY seq",
            (call_id,) if call_id else (),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]
    finally:
        conn.close()


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 (polls state)
            await trio.sleep(0.01)


async def test_publishes_only_what_is_committed(config: Config, db_path: Path) -> None:
    feed = FeedHub()
    journal = Journal(config, feed)
    sub = feed.subscribe(100)
    seen: list[CallChange] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.submit(lifecycle(1))
            async for ch in sub:
                # a separate connection already sees the row: it was committed before
                assert (ch.call_id, ch.kind) in events_of(db_path, ch.call_id)
                seen.append(ch)
                if len(seen) == 4:
                    break
            final = await journal.read(lambda c: queries.get_call(c, "c00001"))
            nursery.cancel_scope.cancel()
    assert [c.kind for c in seen] == ["call.started", "call.ringing", "call.answered", "call.ended"]
    assert final is not None and final["status"] == "completed" and final["talk"] == 7
    assert final["legs"][0]["result"] == "answered"


async def test_status_is_cheap_and_the_latency_window_is_bounded(
    config: Config, db_path: Path
) -> None:
    # /ping calls status() on every request: with 200,000 latencies kept and sorted
    # there, each /ping cost 20-30 ms and 6 MB stayed in memory (docs/performance.md).
    feed = FeedHub()
    journal = Journal(config, feed)
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await journal.submit(lifecycle(1), arrived_at=time.time())
        with trio.fail_after(10):
            while not journal.latencies:  # noqa: ASYNC110 (no event for a commit here)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    percentiles = journal.latency_percentiles()
    assert percentiles["latency_ms_p50"] is not None and percentiles["latency_ms_p99"] is not None
    assert not any(key.startswith("latency") for key in journal.status())
    journal.latencies.extend([0.001] * (LATENCY_WINDOW + 5_000))
    assert len(journal.latencies) == LATENCY_WINDOW


async def test_batches_close_at_batch_max(db_path: Path) -> None:
    config = make_config(db_path, batch_max=50, batch_ms=1000)
    feed = FeedHub()
    journal = Journal(config, feed)
    changes = [ch for n in range(125) for ch in lifecycle(n)]  # 500 changes
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.submit(changes)
            await wait_for(lambda: journal.committed == 500)
            nursery.cancel_scope.cancel()
    assert journal.max_batch_seen <= 50
    assert journal.batches >= 10
    assert len(events_of(db_path)) == 500


async def test_hooks_run_inside_the_batch_transaction(config: Config, db_path: Path) -> None:
    feed = FeedHub()
    journal = Journal(config, feed)
    failures = [1]  # the first batch's hook fails once
    outside_saw: list[int] = []

    def hook(conn: sqlite3.Connection, changes: Sequence[CallChange]) -> None:
        for ch in changes:
            conn.execute(
                "INSERT INTO outbox (call_id, kind, payload, created_at) VALUES (?, ?, '{}', 0)",
                (ch.call_id, ch.kind),
            )
        # the batch's events are visible here, in the transaction, but not outside it
        inside = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        other = sqlite3.connect(db_path)
        outside_saw.append(inside - other.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        other.close()
        if failures:
            failures.pop()
            raise RuntimeError("CRM plan failed")

    journal.add_batch_hook(hook)
    sub = feed.subscribe(100)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.submit(lifecycle(1))
            got = [await sub.receive() for _ in range(4)]
            nursery.cancel_scope.cancel()
    assert all(g is not None for g in got)
    assert journal.write_errors == 1
    assert all(n > 0 for n in outside_saw)
    conn = sqlite3.connect(db_path)
    outbox = conn.execute("SELECT call_id, kind FROM outbox ORDER BY id").fetchall()
    assert [k for _, k in outbox] == [c.kind for c in lifecycle(1)]  # once each, no duplicates
    assert len(events_of(db_path)) == 4


async def test_write_errors_are_retried_and_nothing_is_lost(db_path: Path) -> None:
    config = make_config(db_path, max_pending=40, batch_max=10)
    feed = FeedHub()
    journal = Journal(config, feed)
    sub = feed.subscribe(1000)
    done = trio.Event()

    async def producer() -> None:
        for n in range(30):  # 120 changes: more than max_pending
            await journal.submit(lifecycle(n))
        done.set()

    def fill_up(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is "full" now

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.write(fill_up)
            nursery.start_soon(producer)
            await wait_for(lambda: journal.write_errors >= 2 and journal.pending() >= 40)
            assert not done.is_set()  # backpressure: the producer waits, nothing is dropped
            assert journal.status()["last_error"] and not journal.status()["ok"]
            assert sub.pending() == 0  # nothing published while nothing committed
            await journal.write(lambda c: c.execute("PRAGMA max_page_count = 1000000"))
            await done.wait()
            await wait_for(lambda: journal.committed == 120)
            nursery.cancel_scope.cancel()
    assert journal.status()["last_error"] is None
    rows = events_of(db_path)
    assert len(rows) == 120 and len(set(rows)) == 120
    assert sub.pending() == 120


async def test_shutdown_drains_the_pending_batch(db_path: Path) -> None:
    config = make_config(db_path, batch_ms=1000, batch_max=100000)
    journal = Journal(config, FeedHub())
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.submit([ch for n in range(50) for ch in lifecycle(n)])
            nursery.cancel_scope.cancel()  # before the batch closed
    assert len(events_of(db_path)) == 200


async def test_restart_restores_live_calls(config: Config, db_path: Path) -> None:
    live = call(2)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            await journal.submit([*lifecycle(1), change("call.started", live)])
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            restored = await journal.read(queries.live_calls)
            nursery.cancel_scope.cancel()
    assert [c["id"] for c in restored] == ["c00002"]


async def test_a_call_ends_once(config: Config, db_path: Path) -> None:
    changes = lifecycle(1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            await journal.submit(changes)
            await journal.submit([changes[-1], changes[-1]])
            await wait_for(lambda: journal.pending() == 0)
            nursery.cancel_scope.cancel()
    assert [k for _, k in events_of(db_path)].count("call.ended") == 1
    assert journal.duplicates_ignored == 2


async def test_files_are_owner_only(config: Config, db_path: Path) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(Journal(config, FeedHub()).run)
            nursery.cancel_scope.cancel()
    assert file_mode(db_path) == 0o600
    assert file_mode(db_path.parent) == 0o700
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def start_fails(config: Config, **kw: object) -> str:
    with trio.fail_after(10), pytest.raises(JournalError) as info:
        await Journal(config, FeedHub(), **kw).run()  # type: ignore[arg-type]
    return str(info.value)


async def test_not_a_sqlite_file(config: Config, db_path: Path) -> None:
    put(db_path, b"this is a text file, not a database\n" * 100)
    message = await start_fails(config)
    assert str(db_path) in message and "not a SQLite database" in message
    assert "journal.path" in message
    assert get(db_path).startswith(b"this is a text file")  # left untouched


async def test_damaged_sqlite_file(config: Config, db_path: Path) -> None:
    put(db_path, b"SQLite format 3\x00" + os.urandom(4080))
    message = await start_fails(config)
    assert str(db_path) in message and "journal.path" in message


async def test_locked_by_another_pinc(config: Config, db_path: Path) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(Journal(config, FeedHub()).run)
            message = await start_fails(config)
            nursery.cancel_scope.cancel()
    assert str(db_path) in message and "another pinc" in message and str(os.getpid()) in message
    # once the first one stopped, the file opens again
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(Journal(config, FeedHub()).run)
            nursery.cancel_scope.cancel()


async def test_read_only_database(config: Config, db_path: Path) -> None:
    message = await start_fails(config, on_connect=lambda c: c.execute("PRAGMA query_only = 1"))
    assert str(db_path) in message and "read-only" in message and "write access" in message


def _immutable(path: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


def _kernel_refuses_to_write(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError:
        return True
    return False


async def test_read_only_file(config: Config, db_path: Path) -> None:
    # Root writes a 0400 file anyway (CI runs as root): there the file is made immutable
    # (chattr +i), which the kernel refuses to write even for root.
    sqlite3.connect(put(db_path, b"")).execute("CREATE TABLE x (y)").connection.close()
    os.chmod(db_path, 0o400)
    immutable = os.geteuid() == 0
    if immutable:
        _immutable(db_path, True)
    try:
        assert _kernel_refuses_to_write(db_path)
        message = await start_fails(config)
    finally:
        if immutable:
            _immutable(db_path, False)
    assert str(db_path) in message and "read-only" in message


async def test_full_disk_at_start(config: Config, db_path: Path) -> None:
    message = await start_fails(config, on_connect=lambda c: c.execute("PRAGMA max_page_count = 2"))
    assert str(db_path) in message and "disk is full" in message and "free" in message


async def test_retention_prunes_old_events_and_keeps_calls(config: Config, db_path: Path) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            await journal.submit(lifecycle(1))
            await wait_for(lambda: journal.pending() == 0)
            await journal.write(lambda c: c.execute("UPDATE events SET recorded_at = 1000"))
            await journal.submit(lifecycle(2))
            await wait_for(lambda: journal.pending() == 0)
            removed = await journal.prune()
            nursery.cancel_scope.cancel()
    assert removed == {"events": 4, "calls": 0}
    assert {c for c, _ in events_of(db_path)} == {"c00002"}
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 2


def refuse_writes(conn: sqlite3.Connection) -> None:
    """SQLite itself refuses every write on the writer connection from now on."""
    conn.execute("PRAGMA query_only = 1")


def accept_writes(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = 0")


async def test_two_blocked_submitters_both_wake_when_the_disk_is_back(db_path: Path) -> None:
    # The AMI consumer and the expiry loop both submit. Each blocked submitter used to get
    # its own wake-up Event, replaced by the next one: a commit woke only the newest, the
    # older slept for good and the ingest stalled (issue #16).
    config = make_config(db_path, max_pending=4, batch_max=2)
    journal = Journal(config, FeedHub())
    woke: list[str] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await journal.with_writer(refuse_writes)
            await journal.submit(lifecycle(1))  # 4 pending: the queue is full
            await wait_for(lambda: journal.write_errors > 0)

            async def submitter(name: str, n: int) -> None:
                await journal.submit(lifecycle(n))
                woke.append(name)

            nursery.start_soon(submitter, "ami", 2)
            await wait_for(lambda: journal.blocked_submitters() == 1)
            nursery.start_soon(submitter, "expiry", 3)
            await wait_for(lambda: journal.blocked_submitters() == 2)
            assert woke == [] and journal.pending() == 4
            await journal.with_writer(accept_writes)
            await wait_for(lambda: len(woke) == 2 and journal.pending() == 0)
            nursery.cancel_scope.cancel()
    assert sorted(woke) == ["ami", "expiry"]
    assert {c for c, _ in events_of(db_path)} == {"c00001", "c00002", "c00003"}
    assert len(events_of(db_path)) == 12
