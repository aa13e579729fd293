"""End-to-end ingest benchmark: fake Asterisk --TCP--> AMI client -> tracker -> journal -> feed.

Two figures, both with the real services in one process and a real SQLite file:

1. throughput: the 100,000-event stream (bench/gen_stream.py, or concurrent_load
   repeated with fresh ids when the generator is absent) replayed as fast as TCP
   goes; events/s from the first event's arrival until the last change committed
   and published. Target >= 30,000 events/s.
2. latency: the stream played at 2,000 events/s; for every change, the time from
   its event's arrival at the AMI client to its publication on the feed (after the
   commit). Target p99 < 5 ms.

Run: /work/venv/bin/python bench/ingest.py [--events 100000] [--rate 2000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pinc.config import Config, replace  # noqa: E402
from pinc.feed import FeedHub  # noqa: E402
from pinc.ingest import Ingest  # noqa: E402
from pinc.journal.store import Journal  # noqa: E402
from pinc.sim.amiserver import AmiSimServer  # noqa: E402
from pinc.sim.transcripts import load_transcript, rewrite_ids  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "asterisk-local" / "concurrent_load.ami"


def stream(n: int) -> tuple[list[bytes], str]:
    """``n`` realistic events: the team's generator if present, else concurrent_load
    replayed again and again with shifted Uniqueids (fresh calls each round)."""
    try:
        gen: Any = importlib.import_module("gen_stream")
    except ModuleNotFoundError:
        gen = None
    if gen is not None:
        for name in ("events", "generate_events", "generate", "make_stream"):
            fn = getattr(gen, name, None)
            if callable(fn):
                try:
                    data = fn(n)
                except TypeError:
                    continue
                if isinstance(data, bytes):
                    data = split_events(data)
                events = [e for e in data if e.startswith(b"Event:")]
                if events:
                    return events[:n], f"bench/gen_stream.py:{name}"
    base = load_transcript(FIXTURE)
    out: list[bytes] = []
    rounds = 0
    while len(out) < n:
        out.extend(rewrite_ids(base, epoch=60 * rounds, seq_offset=10_000 * rounds))
        rounds += 1
    return out[:n], f"concurrent_load.ami x{rounds} (fresh ids each round)"


def split_events(data: bytes) -> list[bytes]:
    sep = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
    return [block + sep for block in data.split(sep) if block.strip()]


def bench_config(db: Path, port: int) -> Config:
    return replace(
        Config(),
        ami={"host": "127.0.0.1", "port": port, "secret": "pincsecret", "queue_size": 10_000},
        journal={"path": str(db)},
    )


async def sim_child(n: int, rate: float | None) -> None:
    """The fake Asterisk in its own process, so its cost is not counted against pinc."""
    events, _ = stream(n)
    sim = AmiSimServer(events, rate=rate)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sim.run)
        print(port, flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes our stdin
        nursery.cancel_scope.cancel()


async def run_once(
    n: int, db: Path, rate: float | None
) -> tuple[float, int, int, Journal, float]:
    client_mod: Any = importlib.import_module("pinc.ami.client")
    cmd = [sys.executable, __file__, "--sim-child", "--events", str(n)]
    cmd += ["--rate", str(rate or 0)]
    async with trio.open_nursery() as nursery:
        child = await trio.lowlevel.open_process(cmd, stdin=-1, stdout=-1)
        assert child.stdout is not None and child.stdin is not None
        line = b""
        with trio.fail_after(60):
            while not line.endswith(b"\n"):
                line += await child.stdout.receive_some(64)
        config = bench_config(db, int(line))
        feed = FeedHub()
        journal = Journal(config, feed)
        sub = feed.subscribe(maxsize=1_000_000)  # a subscriber that sees every change
        await nursery.start(journal.run)
        client = client_mod.AmiClient(config.ami)
        ingest = Ingest(config, client, journal)
        await nursery.start(client.run)
        await nursery.start(ingest.run)
        # ``drained``: the first moment after the last event when every change it caused
        # was committed and published. The calls' end-of-call grace (call.ended comes
        # from a timer seconds later, by design) is waited for but not counted.
        first = last = last_event = drained = 0.0
        seen = (0, 0)
        with trio.fail_after(300):
            while True:  # until nothing moved for a second
                now = time.perf_counter()
                state = (ingest.events, journal.committed)
                if state != seen:
                    if state[0] != seen[0]:
                        last_event, drained = now, 0.0
                    seen, last = state, now
                    first = first or now
                if first and not drained and not journal.pending():
                    drained = now
                if first and now - last > 1.0 and not journal.pending():
                    break
                await trio.sleep(0.0005)
        n_events, n_changes = ingest.events, sub.pending()
        await child.stdin.aclose()
        nursery.cancel_scope.cancel()
    with trio.CancelScope(shield=True):
        child.kill()
        await child.wait()
    return drained - first, n_events, n_changes, journal, last_event - first


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0)  # the child: 0 = full speed
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the latency run")
    parser.add_argument("--sim-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sim_child:
        trio.run(sim_child, args.events, args.rate if args.rate else None)
        return

    events, source = stream(args.events)
    print(f"stream: {len(events)} events from {source}")
    with tempfile.TemporaryDirectory() as tmp:
        # the child regenerates the stream: same request, same events
        elapsed, n, changes, journal, _ = trio.run(run_once, args.events, Path(tmp) / "a.db", None)
        rate = n / elapsed
        st = journal.status()
        print(
            f"throughput: {n} events, {changes} changes committed+published in {elapsed:.2f} s"
            f" = {rate:,.0f} events/s (target >= 30,000: {rate / 30_000:.2f}x);"
            f" {st['batches']} batches, largest {st['max_batch']}"
        )
        k = int(args.rate * args.seconds)
        _, n2, _, journal2, sending = trio.run(run_once, k, Path(tmp) / "b.db", args.rate)
        real_rate = n2 / sending
        lat = list(journal2.latencies)
        p50, p99 = pct(lat, 0.50), pct(lat, 0.99)
        print(
            f"latency at {args.rate:,.0f} events/s asked ({real_rate:,.0f} achieved, {n2} events,"
            f" {len(lat)} changes): arrival->publication p50 {p50:.2f} ms, p99 {p99:.2f} ms,"
            f" max {max(lat) * 1000 if lat else float('nan'):.2f} ms"
            f" (target p99 < 5 ms: {5 / p99 if p99 else float('inf'):.2f}x)"
        )


if __name__ == "__main__":
    main()
