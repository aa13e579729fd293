"""Tracker benchmark: events/s of parse + track, and RSS with 2,000 live calls.

    python bench/tracker.py [--events 100000] [--live 2000]

1. the 100,000-event stream (bench/gen_stream.py ``generate(n)`` when present, else
   concurrent_load repeated with shifted Uniqueids/Linkedids and Cdr times);
2. concurrent_load.ami as recorded;
3. 2,000 simultaneous live calls (inbound_answered up to its first Hangup, repeated with
   fresh ids), then the peak RSS of the whole process (target: under 100 MB); measured
   first, before the big stream is built.
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pinc.ami.protocol import AMIConnection, Message  # noqa: E402
from pinc.calls.tracker import Tracker  # noqa: E402
from pinc.config import load_config  # noqa: E402

LOCAL = ROOT / "tests" / "fixtures" / "asterisk-local"
_ID = re.compile(rb"\b(1\d{9})\.(\d+)\b")
_TIME = re.compile(rb"\b(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\b")
CHUNK = 65536


def shift(data: bytes, epoch: int, seq: int) -> bytes:
    """Fresh calls from a transcript: every epoch.seq id and Cdr time moved on."""

    def ids(m: re.Match[bytes]) -> bytes:
        return b"%d.%d" % (int(m.group(1)) + epoch, int(m.group(2)) + seq)

    def times(m: re.Match[bytes]) -> bytes:
        t = datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return (t + timedelta(seconds=epoch)).strftime("%Y-%m-%d %H:%M:%S").encode()

    return _TIME.sub(times, _ID.sub(ids, data))


def _body(data: bytes) -> bytes:
    """A transcript without its banner line."""
    return data.split(b"\r\n", 1)[1] if data.startswith(b"Asterisk Call Manager/") else data


def stream(n_events: int) -> bytes:
    try:
        from bench.gen_stream import generate  # type: ignore[import-not-found]

        gen: Callable[[int], bytes] = generate
        return gen(n_events)
    except ImportError:
        pass
    base = _body((LOCAL / "concurrent_load.ami").read_bytes())
    per = base.count(b"\r\n\r\n")
    parts = [b"Asterisk Call Manager/11.0.0\r\n"]
    for k in range(n_events // per + 1):
        parts.append(shift(base, 30 * k, 1000 * k))
    return b"".join(parts)


def run(data: bytes) -> tuple[int, float, int]:
    config = load_config(None, env={})
    tracker = Tracker(config.pbx)
    conn = AMIConnection(expect_banner=data.startswith(b"Asterisk Call Manager/"))
    n = calls = 0
    t0 = time.perf_counter()
    for start in range(0, len(data), CHUNK):
        conn.feed(data[start : start + CHUNK])
        for msg in conn.messages():
            if isinstance(msg, Message):
                n += 1
                calls += sum(1 for c in tracker.feed(msg) if c.kind == "call.ended")
    calls += sum(1 for c in tracker.flush() if c.kind == "call.ended")
    return n, time.perf_counter() - t0, calls


def live_calls(count: int) -> tuple[int, float]:
    config = load_config(None, env={})
    tracker = Tracker(config.pbx)
    conn = AMIConnection()
    conn.feed((LOCAL / "inbound_answered.ami").read_bytes())
    events = [m for m in conn.messages() if isinstance(m, Message) and m.is_event]
    cut = next(i for i, m in enumerate(events) if m.name == "Hangup")
    raw = b"".join(m.to_bytes() for m in events[:cut])
    for k in range(count):
        c = AMIConnection(expect_banner=False)
        c.feed(shift(raw, k // 50, 10 * k))
        for msg in c.messages():
            if isinstance(msg, Message):
                tracker.feed(msg)
    live = len(tracker.live_calls())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return live, rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--live", type=int, default=2000)
    args = ap.parse_args()

    # Live calls first, so the peak RSS is not the big stream's bytes held below.
    live, rss = live_calls(args.live)
    big = stream(args.events)
    n, secs, calls = run(big)
    print(
        f"stream:          {n:>8} events  {secs:6.2f} s  {n / secs:>9,.0f} events/s  {calls} calls"
    )
    load = (LOCAL / "concurrent_load.ami").read_bytes()
    n2, secs2, calls2 = run(load)
    print(
        f"concurrent_load: {n2:>8} events  {secs2:6.2f} s  {n2 / secs2:>9,.0f} events/s  "
        f"{calls2} calls"
    )
    verdict = "OK" if rss < 100 else "OVER"
    print(f"live calls:      {live:>8} live    peak RSS {rss:6.1f} MB (target < 100 MB: {verdict})")


if __name__ == "__main__":
    main()
