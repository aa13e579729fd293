"""CRM delivery throughput: callbacks/s to a fake vtiger, and the time to drain a backlog.

    /work/venv/bin/python bench/crm.py [--calls 2000] [--concurrency 8]

The fake vtiger (tests/crm/fakevtiger.py: real HTTP/1.1, vtiger's row logic) runs in a
separate process so it does not share pinc's event loop. Three figures, side by side:
  1. raw httpx, one keep-alive connection, sequential POSTs (the ceiling for one call);
  2. raw httpx, a new connection per POST (what a connector without keep-alive pays);
  3. pinc: a backlog of calls x 5 callbacks queued in the real journal's outbox, drained
     by DeliveryWorker (per call in order, each marked done in SQLite before the next).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pinc.config import Config, replace  # noqa: E402
from pinc.crm.delivery import DeliveryWorker  # noqa: E402
from pinc.crm.outbox import make_outbox_hook  # noqa: E402
from pinc.crm.vtiger import CALLBACK_PATH  # noqa: E402
from pinc.feed import FeedHub  # noqa: E402
from pinc.journal.store import Journal  # noqa: E402
from tests.crm.scenarios import answered_inbound_changes  # noqa: E402

SECRET = "pinc-lab-secret-42"


async def serve() -> None:
    from tests.crm.fakevtiger import FakeVtiger

    fake = FakeVtiger(secret=SECRET)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(fake.run)
        print(port, flush=True)


def start_fake() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def wait_for(done: Callable[[], bool]) -> None:
    while True:
        if done():
            return
        await trio.sleep(0.01)


async def raw(port: int, n: int, *, keepalive: bool) -> float:
    url = f"http://127.0.0.1:{port}/vtigercrm{CALLBACK_PATH}"
    data = {"vtigersignature": SECRET, "callstatus": "EndCall", "callUUID": "nobody",
            "duration": "1"}
    limits = httpx.Limits(max_keepalive_connections=1 if keepalive else 0)
    headers = {} if keepalive else {"Connection": "close"}
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:
        t = time.perf_counter()
        for _ in range(n):
            with trio.fail_after(10):
                (await client.post(url, data=data)).raise_for_status()
        return n / (time.perf_counter() - t)


async def drain(port: int, calls: int, concurrency: int, tmp: Path) -> tuple[int, float, float]:
    config = replace(
        Config(),
        crm={"url": f"http://127.0.0.1:{port}/vtigercrm", "secret": SECRET,
             "concurrency": concurrency},
        web={"public_url": "http://pbx.example:8099"},
        pbx={"recordings_dir": str(tmp)},
        journal={"path": str(tmp / "bench.db")},
    )
    for i in range(calls):
        (tmp / f"b{i:05d}.wav").write_bytes(b"x" * 100)
    feed = FeedHub()
    journal = Journal(config, feed)
    journal.add_batch_hook(make_outbox_hook(config))
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        t = time.perf_counter()
        for i in range(calls):
            await journal.submit(answered_inbound_changes(f"b{i:05d}"))
        await wait_for(lambda: journal.pending() == 0)

        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

        backlog = await journal.read(count)
        queued = time.perf_counter() - t
        worker = DeliveryWorker(config, journal, feed)
        t = time.perf_counter()
        await nursery.start(worker.run)
        await wait_for(lambda: worker.delivered >= backlog)
        took = time.perf_counter() - t
        nursery.cancel_scope.cancel()
    return backlog, took, queued


async def main(args: argparse.Namespace) -> None:
    proc, port = start_fake()
    try:
        ka = await raw(port, 2000, keepalive=True)
        nk = await raw(port, 1000, keepalive=False)
        with tempfile.TemporaryDirectory() as tmp:
            backlog, took, queued = await drain(port, args.calls, args.concurrency, Path(tmp))
    finally:
        proc.terminate()
        proc.wait()
    rate = backlog / took
    print(f"raw httpx, keep-alive, sequential:     {ka:8.0f} callbacks/s")
    print(f"raw httpx, new connection per request: {nk:8.0f} callbacks/s  "
          f"(keep-alive x{ka / nk:.1f})")
    print(f"backlog of {backlog} callbacks ({args.calls} calls) queued by the journal hook "
          f"in {queued:.2f} s")
    print(f"pinc DeliveryWorker drained it in {took:.2f} s: {rate:8.0f} callbacks/s "
          f"(concurrency {args.concurrency}; {rate / ka:.2f} x raw sequential keep-alive)")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        trio.run(serve)
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls x 5 callbacks")
    parser.add_argument("--concurrency", type=int, default=8)
    trio.run(main, parser.parse_args())
