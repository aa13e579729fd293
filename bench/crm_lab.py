"""Delivery into the real lab CRM: pinc's drain rate beside a plain keep-alive client.

    PINC_LAB=... .venv/bin/python bench/crm_lab.py [--crm vtiger|salesplatform]
        [--calls 150] [--concurrency 4] [--rounds 3]

The same callbacks both ways: ``--calls`` answered inbound calls (StartApp, DialAnswer,
Hangup, EndCall, Record each in stock vtiger; SalesPlatform's per-user sequence) are
planned by pinc's own profile into a real journal's outbox. Then, in alternating rounds:

  peer  a plain httpx client, ``--concurrency`` keep-alive connections, each sending its
        share of the calls' callbacks in order (nothing written anywhere);
  pinc  ``DeliveryWorker`` drains a fresh backlog of the same shape from the outbox
        (per call in order, every callback committed as done in SQLite before the next,
        the answer classified), with ``crm.concurrency = --concurrency``.

Reported: callbacks/s of each, per round and median, and the ratio pinc / peer (target
>= 0.9: the CRM is the limit, not pinc), also as the median of the per-round ratios (each
round's pair ran back to back: on a shared machine that cancels most of the drift).
Every call gets its own callUUID (``bench-…``); the rows are deleted from the CRM's
database afterwards.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pinc.config import Config, replace  # noqa: E402
from pinc.crm.delivery import DeliveryWorker  # noqa: E402
from pinc.crm.outbox import make_outbox_hook  # noqa: E402
from pinc.crm.vtiger import CALLBACK_PATH, form_params  # noqa: E402
from pinc.feed import FeedHub  # noqa: E402
from pinc.journal.store import Journal  # noqa: E402
from tests.crm.scenarios import answered_inbound_changes  # noqa: E402
from tests.lab.lab import Crm, find_salesplatform, find_vtiger  # noqa: E402


def bench_config(crm: Crm, tmp: Path, concurrency: int) -> Config:
    return replace(
        Config(),
        crm={"profile": crm.kind, "url": crm.url, "secret": crm.secret,
             "timezone": crm.default_timezone, "concurrency": concurrency, "timeout": 30.0},
        web={"public_url": "http://127.0.0.1:9"},
        pbx={"recordings_dir": str(tmp), "extension_pattern": r"^\d{3}$"},
        journal={"path": str(tmp / f"bench-{secrets.token_hex(4)}.db")},
    )


def call_ids(tag: str, calls: int) -> list[str]:
    return [f"bench-{tag}-{i:04d}" for i in range(calls)]


async def fill(journal: Journal, config: Config, ids: list[str]) -> int:
    rec = Path(config.pbx.recordings_dir)
    for call_id in ids:
        (rec / f"{call_id}.wav").write_bytes(b"RIFF" + b"\0" * 100)
        await journal.submit(answered_inbound_changes(call_id))
    while journal.pending():  # noqa: ASYNC110 - the journal has no event for "committed"
        await trio.sleep(0.01)

    def count(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
                                ).fetchone()[0])

    return await journal.read(count)


async def pinc_round(crm: Crm, tmp: Path, calls: int, concurrency: int, tag: str) -> float:
    config = bench_config(crm, tmp, concurrency)
    feed = FeedHub()
    journal = Journal(config, feed)
    journal.add_batch_hook(make_outbox_hook(config))
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        total = await fill(journal, config, call_ids(tag, calls))
        worker = DeliveryWorker(config, journal, feed)
        async with trio.open_nursery() as inner:  # the worker stops before the journal
            t = time.perf_counter()
            await inner.start(worker.run)
            while worker.delivered < total:
                if worker.status()["state"] not in ("ok",):
                    raise SystemExit(f"pinc's delivery failed: {worker.status()}")
                await trio.sleep(0.005)
            took = time.perf_counter() - t
            inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    return total / took


async def peer_round(crm: Crm, tmp: Path, calls: int, concurrency: int, tag: str) -> float:
    """The same callbacks from a plain keep-alive client: no journal, no bookkeeping."""
    config = bench_config(crm, tmp, concurrency)
    feed = FeedHub()
    journal = Journal(config, feed)
    journal.add_batch_hook(make_outbox_hook(config))
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await fill(journal, config, call_ids(tag, calls))

        def rows(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            return conn.execute("SELECT call_id, kind, payload FROM outbox ORDER BY id"
                                ).fetchall()

        queued = await journal.read(rows)
        nursery.cancel_scope.cancel()

    per_call: dict[str, list[dict[str, str]]] = {}
    for call_id, kind, payload in queued:
        per_call.setdefault(call_id, []).append(form_params(kind, json.loads(payload),
                                                            config.crm))
    shares: list[list[list[dict[str, str]]]] = [[] for _ in range(concurrency)]
    for i, forms in enumerate(per_call.values()):
        shares[i % concurrency].append(forms)
    url = crm.url.rstrip("/") + CALLBACK_PATH
    total = sum(len(f) for f in per_call.values())

    async def one_connection(share: list[list[dict[str, str]]]) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
            for forms in share:
                for form in forms:
                    response = await client.post(url, data=form)
                    if response.status_code != 200 or response.text.strip().startswith("Sorry"):
                        raise SystemExit(f"the CRM refused a callback: {response.text[:200]}")

    t = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for share in shares:
            nursery.start_soon(one_connection, share)
    return total / (time.perf_counter() - t)


def cleanup(crm: Crm) -> None:
    crm.sql("DELETE FROM vtiger_crmentity WHERE crmid IN (SELECT pbxmanagerid FROM "
            "vtiger_pbxmanager WHERE sourceuuid LIKE 'bench-%')")
    crm.sql("DELETE FROM vtiger_pbxmanager WHERE sourceuuid LIKE 'bench-%'")


async def main(args: argparse.Namespace) -> None:
    crm = find_vtiger() if args.crm == "vtiger" else find_salesplatform()
    if crm is None:
        raise SystemExit(f"the lab's {args.crm} is not up (PINC_LAB, lab.env)")
    peers: list[float] = []
    pincs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for r in range(args.rounds):
                tag = secrets.token_hex(3)
                peers.append(await peer_round(crm, Path(tmp), args.calls, args.concurrency,
                                              f"p{tag}"))
                pincs.append(await pinc_round(crm, Path(tmp), args.calls, args.concurrency,
                                              f"d{tag}"))
                print(f"round {r + 1}: peer {peers[-1]:6.1f}/s  pinc {pincs[-1]:6.1f}/s  "
                      f"ratio {pincs[-1] / peers[-1]:.2f}", flush=True)
        finally:
            cleanup(crm)
    peer, pinc = statistics.median(peers), statistics.median(pincs)
    print(f"{crm.kind} {crm.url}: {args.calls} calls per round, concurrency "
          f"{args.concurrency}, {args.rounds} rounds (medians)")
    print(f"  plain keep-alive client: {peer:7.1f} callbacks/s")
    print(f"  pinc DeliveryWorker:     {pinc:7.1f} callbacks/s")
    pairs = statistics.median(p / q for p, q in zip(pincs, peers, strict=True))
    print(f"  ratio pinc / peer:       {pinc / peer:7.2f}  (target >= 0.90); median of the "
          f"per-round ratios {pairs:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=("vtiger", "salesplatform"), default="vtiger")
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    trio.run(main, parser.parse_args())
