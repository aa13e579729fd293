"""AMI parsing throughput: pinc vs panoramisk vs a plain bytes.split upper bound.

All three parse the same 100,000-event stream (bench/gen_stream.py), fed in 64 KiB
chunks as a socket would deliver it, and must find the same number of events:

- pinc: ``AMIConnection.feed()`` + ``next_message()`` until NEED_DATA, per chunk.
- panoramisk: its own code path for bytes from the socket, ``AMIProtocol.data_received``
  (decode, split on the blank line, ``Message.from_line``, ``handle_message``), with the
  event dispatch counting instead of calling callbacks.
- split: ``bytes.split(b"\\r\\n\\r\\n")`` and one ``split(b"\\r\\n")`` per message, no dicts;
  what any parser in Python costs at least.

    /work/venv/bin/python bench/ami_parse.py [n_events] [--repeat 3]

Prints events/s for each (best of --repeat runs) and the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_stream import generate

from pinc.ami.protocol import NEED_DATA, AMIConnection, Message

CHUNK = 65536


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def run_pinc(parts: list[bytes]) -> int:
    conn = AMIConnection()
    count = 0
    for part in parts:
        conn.feed(part)
        while True:
            msg = conn.next_message()
            if msg is NEED_DATA:
                break
            if isinstance(msg, Message) and msg.is_event:
                count += 1
    return count


def run_panoramisk(parts: list[bytes]) -> int:
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        count = 0

        def dispatch(self, message: Any) -> None:
            self.count += 1

    proto = AMIProtocol()
    proto.connection_made(None)
    factory = Factory()
    proto.factory = factory
    proto.encoding = "utf-8"
    for part in parts:
        proto.data_received(part)
    return factory.count


def run_split(parts: list[bytes]) -> int:
    data = b"".join(parts)
    data = data[data.index(b"\r\n") + 2 :]  # the banner
    count = 0
    for block in data.split(b"\r\n\r\n"):
        lines = block.split(b"\r\n")
        if lines[0].startswith(b"Event:"):
            count += 1
    return count


def measure(fn: Callable[[list[bytes]], int], parts: list[bytes], repeat: int) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = fn(parts)
        best = min(best, time.perf_counter() - t0)
    return best, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="AMI parsing throughput")
    parser.add_argument("n_events", type=int, nargs="?", default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = generate(args.n_events)
    print(
        f"stream: {args.n_events} events, {len(data) / 1e6:.1f} MB, "
        f"generated in {time.perf_counter() - t0:.1f} s; {CHUNK}-byte chunks, "
        f"best of {args.repeat}"
    )
    parts = chunks(data)
    results: dict[str, float] = {}
    for name, fn in (("pinc", run_pinc), ("panoramisk", run_panoramisk), ("split", run_split)):
        seconds, count = measure(fn, parts, args.repeat)
        if count != args.n_events:
            print(f"{name}: found {count} events, expected {args.n_events}", file=sys.stderr)
            return 1
        results[name] = count / seconds
        print(f"{name:>11}: {results[name]:>12,.0f} events/s  ({seconds:.3f} s)")
    pinc = results["pinc"]
    print(f"pinc / panoramisk: {pinc / results['panoramisk']:.2f}x  (target >= 2.5x)")
    print(f"pinc / split upper bound: {pinc / results['split']:.2f}")
    print(f"pinc >= 100,000 events/s: {'yes' if pinc >= 100_000 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
