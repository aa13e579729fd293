"""CRM outages, restarts and kill -9: every callback arrives, in order per call, none twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

from pinc.config import Config
from pinc.crm.delivery import DeliveryWorker
from pinc.crm.outbox import make_outbox_hook
from pinc.crm.webservice import VtigerWebservice
from pinc.journal import schema
from tests.crm.conftest import crm_config, wait_until
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.minijournal import MiniJournal, rows
from tests.crm.scenarios import answered_inbound_changes

KINDS = ["StartApp", "DialAnswer", "Hangup", "EndCall", "Record"]
ROOT = Path(__file__).resolve().parents[2]


def per_call(vtiger: FakeVtiger) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in vtiger.accepted:
        out.setdefault(str(p["callUUID"]), []).append(str(p["callstatus"]))
    return out


def pending(path: Path) -> int:
    return len(rows(path, "SELECT id FROM outbox WHERE state = 'pending'"))


async def test_outage_then_recovery(vtiger: FakeVtiger, journal: MiniJournal,
                                    tmp_path: Path) -> None:
    config = crm_config(vtiger.port, tmp_path, timeout=0.3, concurrency=4)
    for i in range(9):
        (Path(config.pbx.recordings_dir) / f"o{i}.wav").write_bytes(b"x" * 100)
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, journal.feed)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            vtiger.mode = "503"
            for i in range(3):
                await journal.submit(answered_inbound_changes(f"o{i}"))
            await wait_until(lambda: "HTTP 503" in (worker.status()["last_error"] or ""))
            vtiger.mode = "hang"
            for i in range(3, 6):
                await journal.submit(answered_inbound_changes(f"o{i}"))
            await wait_until(lambda: "no answer" in (worker.status()["last_error"] or ""))
            vtiger.mode = "ok"
            vtiger.refuse()
            for i in range(6, 9):
                await journal.submit(answered_inbound_changes(f"o{i}"))
            await wait_until(lambda: "cannot reach" in (worker.status()["last_error"] or ""))
            assert worker.status()["state"] == "unreachable"
            await wait_until(lambda: worker.status()["backlog"] > 0)
            assert vtiger.accepted == []
            vtiger.accept()
            await wait_until(lambda: pending(journal.path) == 0)
            nursery.cancel_scope.cancel()
    assert worker.status()["state"] == "ok"
    calls = per_call(vtiger)
    assert calls == {f"o{i}": KINDS for i in range(9)}  # all, in order, none twice
    assert all(vtiger.row(f"o{i}")["callstatus"] == "completed" for i in range(9))  # type: ignore[index]


async def test_worker_restart_on_same_file(vtiger: FakeVtiger, tmp_path: Path) -> None:
    """Cancel the worker while requests hang, start a new one on the same database."""
    from tests.crm.minijournal import MiniFeed

    config = crm_config(vtiger.port, tmp_path, timeout=0.5, concurrency=3)
    journal = MiniJournal(tmp_path / "pinc.db", MiniFeed())
    journal.add_batch_hook(make_outbox_hook(config))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            worker = DeliveryWorker(config, journal, journal.feed)
            await nursery.start(worker.run)
            for i in range(6):
                await journal.submit(answered_inbound_changes(f"r{i}"))
            await wait_until(lambda: len(vtiger.accepted) >= 8)
            vtiger.mode = "hang"
            # every call in flight is stuck in a request vtiger has not processed
            await wait_until(lambda: 0 < worker.status()["in_flight"] == vtiger.hanging)
            nursery.cancel_scope.cancel()
    journal.close()
    vtiger.mode = "ok"
    journal = MiniJournal(tmp_path / "pinc.db", MiniFeed())
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            worker = DeliveryWorker(config, journal, journal.feed)
            await nursery.start(worker.run)
            await wait_until(lambda: pending(journal.path) == 0)
            nursery.cancel_scope.cancel()
    assert per_call(vtiger) == {f"r{i}": KINDS[:4] for i in range(6)}  # no recordings on disk


async def test_kill_9_mid_delivery_loses_nothing(vtiger: FakeVtiger, tmp_path: Path) -> None:
    """A real process (real journal + worker) is SIGKILLed while delivering, then restarted."""
    config = crm_config(vtiger.port, tmp_path, concurrency=4)
    for i in range(40):
        (Path(config.pbx.recordings_dir) / f"k{i:04d}.wav").write_bytes(b"x" * 100)
    overrides = {
        "crm": {k: getattr(config.crm, k) for k in
                ("url", "secret", "retry_min", "retry_max", "timeout", "concurrency")},
        "web": {"public_url": config.web.public_url},
        "pbx": {"recordings_dir": config.pbx.recordings_dir},
        "journal": {"path": config.journal.path},
        "log": {"level": "warning"},
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start(seed: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crm.worker_proc", json.dumps(overrides), str(seed)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )

    proc = start(40)
    try:
        with trio.fail_after(60):
            await wait_until(lambda: len(vtiger.accepted) >= 60, poll=0.001)
            proc.send_signal(signal.SIGKILL)
            await trio.to_thread.run_sync(proc.wait)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = len(vtiger.accepted)
    assert 60 <= before < 200  # killed mid-delivery
    proc = start(0)
    try:
        with trio.fail_after(60):
            db = Path(config.journal.path)
            await wait_until(lambda: len(rows(db, "SELECT id FROM outbox")) == 200
                             and pending(db) == 0, poll=0.05)
    finally:
        proc.kill()
        proc.wait()
    calls = per_call(vtiger)
    assert set(calls) == {f"k{i:04d}" for i in range(40)}
    for uuid, kinds in calls.items():
        # order kept; a callback can repeat only in the window between vtiger's answer and
        # the commit marking it done (at most one per call that was in flight at the kill)
        deduped = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
        assert deduped == KINDS, uuid
    repeats = sum(n - 1 for n in Counter(
        (str(p["callUUID"]), str(p["callstatus"])) for p in vtiger.accepted).values())
    assert repeats <= config.crm.concurrency
    assert len(vtiger.rows) == 40 + sum(1 for k in calls.values() if k.count("StartApp") > 1)


async def _deliver_through_a_late_answer(vtiger: FakeVtiger, journal: MiniJournal,
                                         config: Config) -> None:
    """vtiger does the first StartApp but answers after crm.timeout; then it recovers."""
    (Path(config.pbx.recordings_dir) / "late.wav").write_bytes(b"x" * 100)
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, journal.feed, lookup=VtigerWebservice(config))
    vtiger.mode, vtiger.hang_seconds = "slow", 1.0
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await journal.submit(answered_inbound_changes("late"))
            await wait_until(lambda: "no answer" in (worker.status()["last_error"] or ""))
            vtiger.mode = "ok"
            await wait_until(lambda: pending(config.journal.path) == 0)
            nursery.cancel_scope.cancel()


async def test_a_startapp_answered_too_late_is_not_sent_twice(
        vtiger: FakeVtiger, journal: MiniJournal, tmp_path: Path) -> None:
    # vtiger's StartApp inserts a row each time: pinc asks the webservice before a resend
    config = crm_config(vtiger.port, tmp_path, timeout=0.3)
    await _deliver_through_a_late_answer(vtiger, journal, config)
    assert per_call(vtiger)["late"] == KINDS
    assert len(vtiger.rows_of("late")) == 1
    assert any("PBXManager" in q.get("query", "") for _, q in vtiger.ws_log)


async def test_without_webservice_credentials_a_late_startapp_is_sent_again(
        vtiger: FakeVtiger, journal: MiniJournal, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # nothing to ask with: a second row rather than a lost call, and a warning says so
    config = crm_config(vtiger.port, tmp_path, timeout=0.3, username="", access_key="")
    await _deliver_through_a_late_answer(vtiger, journal, config)
    assert per_call(vtiger)["late"] == ["StartApp", *KINDS]
    assert "vtiger may list the call twice" in caplog.text


async def test_an_older_journal_gains_the_sent_mark(tmp_path: Path) -> None:
    # a 0.2.0 journal before the mark (schema 1) is migrated in place, its rows kept
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(schema.OUTBOX_DDL)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO outbox (call_id, kind, payload, created_at) "
                 "VALUES ('c1', 'StartApp', '{}', 1)")
    conn.commit()
    assert schema.migrate(conn) == 1
    assert conn.execute("SELECT call_id, sent_at FROM outbox").fetchall() == [("c1", None)]
    assert schema.schema_version(conn) == schema.SCHEMA_VERSION == 2
    conn.close()
