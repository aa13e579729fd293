"""CRM faults during a long stream of calls: vtiger slow (10 s answers), failing (500, 503),
answering garbage and HTML, refusing connections; then healthy. Every callback is
delivered, in order per call, none lost; the backlog waits in SQLite (the worker holds
at most ``crm.concurrency`` calls in memory).

The real journal (SQLite file) with the real outbox hook and DeliveryWorker, against the
CRM engineer's fake vtiger (a subclass here adds HTTP 500 and binary garbage).
"""

from __future__ import annotations

import resource
from pathlib import Path

import h11
import trio

from pinc.crm.delivery import DeliveryWorker
from pinc.crm.outbox import make_outbox_hook
from pinc.feed import FeedHub
from pinc.journal.store import Journal
from tests.crm.conftest import crm_config
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.scenarios import answered_inbound_changes
from tests.reliability.conftest import add, record
from tests.reliability.stack import db_rows, wait_for

KINDS = ["StartApp", "DialAnswer", "Hangup", "EndCall"]  # no recording file on disk


class HostileVtiger(FakeVtiger):
    """FakeVtiger plus two outage modes: ``500`` and ``garbage`` (a 200 with random bytes)."""

    async def _respond(self, request: h11.Request, body: bytes) -> tuple[int, str, bytes]:
        if self.mode == "500":
            return 500, "text/html", b"<b>Fatal error</b>: Allowed memory size exhausted"
        if self.mode == "garbage":
            return 200, "text/xml", bytes(range(256)) * 4
        return await super()._respond(request, body)


def per_call(vtiger: FakeVtiger) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in vtiger.accepted:
        out.setdefault(str(p["callUUID"]), []).append(str(p["callstatus"]))
    return out


def pending(db: Path) -> int:
    return int(db_rows(db, "SELECT COUNT(*) FROM outbox WHERE state='pending'")[0][0])


async def test_crm_outages_then_recovery(nursery: trio.Nursery, tmp_path: Path,
                                         run_slow: bool) -> None:
    calls = 2000 if run_slow else 150
    vtiger = HostileVtiger()
    await nursery.start(vtiger.run)
    config = crm_config(vtiger.port, tmp_path, timeout=12.0, concurrency=8,
                        retry_min=0.05, retry_max=0.5)
    feed = FeedHub()
    journal = Journal(config, feed)
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, feed)
    db = Path(config.journal.path)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    in_flight_max = 0
    backlog_max = 0

    async def watch() -> None:
        nonlocal in_flight_max, backlog_max
        while True:
            st = worker.status()
            in_flight_max = max(in_flight_max, st["in_flight"])
            backlog_max = max(backlog_max, st["backlog"])
            await trio.sleep(0.05)

    async def produce() -> None:
        for i in range(calls):
            await journal.submit(answered_inbound_changes(f"f{i:05d}"))
            if i % 50 == 0:
                await trio.sleep(0.01)

    phases: list[tuple[str, float]] = []
    with trio.fail_after(300 if run_slow else 90):
        await nursery.start(journal.run)
        await nursery.start(worker.run)
        nursery.start_soon(watch)
        vtiger.mode, vtiger.hang_seconds = "hang", 10.0  # slow: every answer takes 10 s
        nursery.start_soon(produce)
        await wait_for(lambda: vtiger.hanging >= 1)
        await trio.sleep(10.5)  # the first slow answers land
        phases.append(("slow 10 s", 10.5))
        for mode, seconds in (("500", 1.0), ("503", 1.0), ("garbage", 1.0), ("html", 1.0)):
            vtiger.mode = mode
            await trio.sleep(seconds)
            phases.append((mode, seconds))
        vtiger.mode = "ok"
        vtiger.refuse()
        await trio.sleep(1.5)
        phases.append(("refused", 1.5))
        assert pending(db) > 0  # the backlog is in SQLite
        vtiger.accept()
        await wait_for(lambda: db_rows(db, "SELECT COUNT(*) FROM outbox")[0][0] == calls * 4
                       and pending(db) == 0, poll=0.1)
        nursery.cancel_scope.cancel()
    got = per_call(vtiger)
    assert set(got) == {f"f{i:05d}" for i in range(calls)}, "a call was lost"
    repeats = 0
    for uuid, kinds in got.items():
        deduped = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
        assert deduped == KINDS, (uuid, kinds)  # all, in order
        repeats += len(kinds) - len(deduped)
    dead = db_rows(db, "SELECT COUNT(*) FROM outbox WHERE state != 'done'")[0][0]
    assert dead == 0
    assert in_flight_max <= config.crm.concurrency
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_start) / 1024
    add("faults.crm_survived", len(phases))
    add("crm.callbacks_delivered", calls * 4)
    add("crm.callbacks_lost", 0)
    record("crm.callbacks_repeated_after_timeouts", repeats)
    record("crm.backlog_max_rows", backlog_max)
    record("crm.in_flight_max", in_flight_max)
    record("crm.rss_growth_mb", round(rss_growth_mb, 1))
