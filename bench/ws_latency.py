"""AMI event in -> websocket frame out: latency at a fixed event rate with many clients.

The whole pipeline, real parts on 127.0.0.1: a fake Asterisk (AmiSimServer) writes a
recorded office load (tests/fixtures/asterisk-local/concurrent_load.ami, re-numbered
each round so every round is fresh calls) at RATE events/s; the real AmiClient parses
it, the ingest feeds the tracker, the journal commits to SQLite and publishes, and the
web server sends every change to CLIENTS websocket clients.

Latency of a frame = time it reached a client - time its triggering event was handed to
the fake Asterisk. Which event triggers which change is found by a dry run of the pure
tracker over the same stream. Target (DESIGN.md): p99 < 5 ms at 2,000 events/s.

    /work/venv/bin/python bench/ws_latency.py [--rate 2000] [--clients 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from pinc.ami.client import AmiClient
from pinc.ami.protocol import AMIConnection, Message
from pinc.ami.simserver import AmiSimServer, load_transcript, rewrite_ids
from pinc.calls.tracker import Tracker
from pinc.config import load_config
from pinc.feed import FeedHub
from pinc.ingest import Ingest
from pinc.journal.store import Journal
from pinc.services import Responsible, Services
from pinc.web.server import WebServer

ROOT = Path(__file__).resolve().parent.parent
LOAD = ROOT / "tests" / "fixtures" / "asterisk-local" / "concurrent_load.ami"
TOKEN = "bench-token"


class _Router:
    async def responsible(self, number: str) -> Responsible:
        return Responsible()


class _Crm:
    def status(self) -> dict[str, Any]:
        return {"state": "disabled", "backlog": 0}

    def request_retry(self) -> None:
        pass


def build_stream(total: int) -> list[bytes]:
    base = load_transcript(LOAD)
    out: list[bytes] = []
    round_no = 0
    while len(out) < total:
        out += rewrite_ids(base, epoch=1_800_000_000 + round_no * 100, seq_offset=round_no * 10_000)
        round_no += 1
    return out[:total]


def trigger_map(stream: list[bytes], config: Any) -> dict[tuple[str, str, int], int]:
    """(call_id, change kind, nth of that kind for the call) -> index of the event."""
    tracker = Tracker(config.pbx)
    seen: Counter[tuple[str, str]] = Counter()
    out: dict[tuple[str, str, int], int] = {}
    for i, raw in enumerate(stream):
        conn = AMIConnection(expect_banner=False)
        conn.feed(raw)
        msg = conn.next_message()
        if not isinstance(msg, Message):
            continue
        for change in tracker.feed(msg, None):
            key = (change.call_id, change.kind)
            out[(change.call_id, change.kind, seen[key])] = i
            seen[key] += 1
    return out


async def client_mode(port: int, clients: int) -> None:
    """Child process: ``clients`` websocket clients; prints ``ready``, then on stdin EOF
    (or 3 s without frames after the first) the frames as JSON."""
    received: list[list[Any]] = [[] for _ in range(clients)]
    ready = trio.Semaphore(0)
    quiet = trio.Event()

    async def one(k: int) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        async with open_websocket_url(
            f"ws://127.0.0.1:{port}/ws?token={TOKEN}", message_queue_size=4096
        ) as ws:
            await ws.get_message()
            ready.release()
            while True:
                with trio.move_on_after(4.0 if received[k] else 60.0) as scope:
                    raw = await ws.get_message()
                if scope.cancelled_caught:
                    quiet.set()
                    return
                now = time.perf_counter()
                msg = json.loads(raw)
                key = (msg["call_id"], msg["type"])
                received[k].append([[*key, counts[key]], now])
                counts[key] += 1

    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(one, k)
        for _ in range(clients):
            await ready.acquire()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    sys.stdout.write(json.dumps(received))
    sys.stdout.flush()


async def main(rate: float, clients: int, seconds: float, separate: bool) -> None:
    total = int(rate * seconds)
    stream = build_stream(total)
    with tempfile.TemporaryDirectory() as tmp:
        sim = AmiSimServer()
        async with trio.open_nursery() as nursery:
            ami_port = await nursery.start(sim.run)
            config = load_config(None, env={}, overrides={
                "ami": {"port": ami_port, "username": "pinc", "secret": "pincsecret"},
                "journal": {"path": f"{tmp}/bench.db"},
                "web": {"listen": "127.0.0.1:0", "token": TOKEN, "ws_queue": 4096},
            })
            triggers = trigger_map(stream, config)
            client = AmiClient(config.ami)
            await nursery.start(client.run)
            feed = FeedHub()
            journal = Journal(config, feed)
            await nursery.start(journal.run)
            ingest = Ingest(config, client, journal)
            await nursery.start(ingest.run)
            services = Services(config=config, ami=client, journal=journal, feed=feed,
                                ingest=ingest, router=_Router(), crm=_Crm())
            port = await nursery.start(WebServer(services, host="127.0.0.1", port=0).run)

            sent_at = [0.0] * len(stream)
            received: list[list[tuple[tuple[str, str, int], float]]] = [[] for _ in range(clients)]
            ready = trio.Semaphore(0)
            done = trio.Event()

            async def ws_client(k: int) -> None:
                counts: Counter[tuple[str, str]] = Counter()
                url = f"ws://127.0.0.1:{port}/ws?token={TOKEN}"
                async with open_websocket_url(url, message_queue_size=4096) as ws:
                    await ws.get_message()  # snapshot
                    ready.release()
                    while not done.is_set():
                        with trio.move_on_after(0.5):
                            raw = await ws.get_message()
                            now = time.perf_counter()
                            msg = json.loads(raw)
                            key = (msg["call_id"], msg["type"])
                            received[k].append(((*key, counts[key]), now))
                            counts[key] += 1

            child = None
            if separate:
                # Clients in their own process: the server's cost is measured, not the
                # bench clients' JSON parsing (perf_counter is CLOCK_MONOTONIC, system-wide).
                child = await trio.lowlevel.open_process(
                    [sys.executable, __file__, "--client-mode", str(port), str(clients)],
                    stdout=subprocess.PIPE,
                )
                assert child.stdout is not None
                buf = b""
                while b"ready\n" not in buf:
                    buf += await child.stdout.receive_some(65536)
                buf = buf.split(b"ready\n", 1)[1]
            else:
                for k in range(clients):
                    nursery.start_soon(ws_client, k)
                for _ in range(clients):
                    await ready.acquire()

            interval = 1.0 / rate
            start = time.perf_counter()
            for i, raw in enumerate(stream):
                due = start + i * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await trio.sleep(delay)
                sent_at[i] = time.perf_counter()
                sim.feed([raw])
            send_seconds = time.perf_counter() - start
            await trio.sleep(3.0)  # let the tail drain (call.ended after the grace)
            done.set()
            if child is not None:
                assert child.stdout is not None
                while chunk := await child.stdout.receive_some(1 << 20):
                    buf += chunk
                await child.wait()
                received = [[(tuple(k), t) for k, t in c] for c in json.loads(buf)]
            await trio.sleep(0.6)
            nursery.cancel_scope.cancel()

    lat: list[float] = []
    ended: list[float] = []
    unmatched = 0
    for frames in received:
        for key, when in frames:
            idx = triggers.get(tuple(key))  # type: ignore[arg-type]
            if idx is None:
                unmatched += 1
                continue
            # call.ended waits for the tracker's end-of-call grace (late Cdr events) and is
            # then emitted by a timer, not by its event: not a transport latency.
            (ended if key[1] == "call.ended" else lat).append((when - sent_at[idx]) * 1000)
    lat.sort()
    ended.sort()
    frames_total = sum(len(f) for f in received)
    print(f"events sent:       {len(stream)} in {send_seconds:.2f} s "
          f"({len(stream) / send_seconds:,.0f} events/s, target {rate:,.0f})")
    print(f"websocket clients: {clients}; frames received: {frames_total} "
          f"({frames_total / clients:.0f} per client; {unmatched} not matched to an event)")
    if not lat:
        print("no latencies measured")
        return
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(f"latency ms:        p50 {p(0.50):.2f}  p90 {p(0.90):.2f}  p99 {p(0.99):.2f}  "
          f"max {lat[-1]:.2f}  mean {statistics.fmean(lat):.2f}")
    if ended:
        print(f"call.ended frames: {len(ended)} (emitted after the tracker's end grace; "
              f"p50 {ended[len(ended) // 2]:.0f} ms after the last Hangup, excluded above)")
    print(f"target p99 < 5 ms: {'met' if p(0.99) < 5 else 'NOT met'} "
          f"(ratio p99/target {p(0.99) / 5:.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--same-process", action="store_true",
                        help="run the websocket clients in the server's process")
    parser.add_argument("--client-mode", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_mode:
        trio.run(client_mode, *args.client_mode)
    else:
        trio.run(main, args.rate, args.clients, args.seconds, not args.same_process)
