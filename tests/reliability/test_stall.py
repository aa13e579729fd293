"""The journal stops writing under a busy ingest: nothing is lost, nothing stalls silently.

The whole of pinc (``serve()``) against the fake Asterisk playing 50 overlapping calls. The
journal's writer refuses every write (SQLite's own refusal) while the calls come in: the
pending changes fill ``journal.max_pending``, both submitters (the AMI consumer and the
expiry loop) block, the AMI channel fills, and the watchdog must say so on ``/ping``. When
the disk is back every call reaches the journal and ``/ping`` is ok again.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import httpx
import pytest
import trio

from pinc import metrics
from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript
from tests.reliability.conftest import record
from tests.reliability.stack import (
    AMI_SECRET,
    FIXTURES,
    TOKEN,
    db_rows,
    stack_config,
    start_stack,
    wait_for,
)

LOAD = FIXTURES / "asterisk-local" / "concurrent_load.ami"


def refuse_writes(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = 1")


def accept_writes(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = 0")


async def test_watchdog_shows_a_stalled_ingest_on_ping(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    events = load_transcript(LOAD)
    sim = AmiSimServer([], secret=AMI_SECRET)
    port = await nursery.start(sim.run)
    config = stack_config(
        tmp_path, port,
        journal={"max_pending": 20, "batch_max": 10, "stall_seconds": 1.0},
        ami={"queue_size": 50},
    )
    handle = await start_stack(nursery, config)
    journal = handle.journal
    db = config.journal_path()
    url = f"http://127.0.0.1:{handle.web_port}"
    async with httpx.AsyncClient(base_url=url, timeout=5,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        with trio.fail_after(60):
            assert (await http.get("/ping")).json()["status"] == "ok"
            await wait_for(lambda: sim.logins >= 1)
            await journal.with_writer(refuse_writes)
            sim.feed(events)
            await wait_for(lambda: handle.ingest.watchdog.stalled)
            ping = (await http.get("/ping")).json()
            assert ping["status"] == "degraded"
            assert ping["ingest"]["ok"] is False
            reason = ping["ingest"]["reason"]
            assert "journal" in reason and "readonly" in reason, reason
            assert metrics.INGEST_STALLED._value.get() == 1
            stalled_pending = journal.pending()
            # the disk is back: everything arrives, the watchdog clears
            await journal.with_writer(accept_writes)
            await sim.wait_replayed()
            await wait_for(lambda: not handle.ingest.watchdog.stalled)
            await wait_for(lambda: db_rows(
                db, "SELECT COUNT(*) FROM calls WHERE live = 0")[0][0] == 50, poll=0.1)
            ping = (await http.get("/ping")).json()
    assert ping["status"] == "ok" and ping["ingest"] == {"ok": True, "reason": None}
    assert metrics.INGEST_STALLED._value.get() == 0
    lines = [r.getMessage() for r in caplog.records if "WATCHDOG" in r.getMessage()]
    assert len(lines) == 1 and "journal" in lines[0], lines
    assert stalled_pending >= 20
    record("stall.pending_when_stalled", stalled_pending)
