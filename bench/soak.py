"""Soak and load for a real ``pinc run`` process (not a test: prints its figures).

``soak``: N events (default 1,000,000: concurrent_load.ami replayed again and again with
fresh Uniqueids) streamed over TCP from a minimal fake Asterisk into ``pinc run``; the
RSS of the pinc process is sampled every 10 s (flat is the target) and /ping is asked
twice a second (latency p50/p99/max; the target is < 50 ms).

``live``: C concurrent live calls (default 2,000: inbound_answered.ami cut after the
answer, C times with fresh ids), then W websocket clients (default 200) and A concurrent
FastAGI sessions (default 500) while /ping is measured; then every call hangs up.

Run:  /work/venv/bin/python bench/soak.py soak [--events 1000000] [--sample 10]
      /work/venv/bin/python bench/soak.py live [--calls 2000] [--ws 200] [--agi 500]
``--json FILE`` writes the figures; the exit status is 1 if something did not answer or a
call was left live.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pinc.ami.protocol import NEED_DATA, AMIConnection, Message, encode_headers  # noqa: E402
from pinc.sim.transcripts import load_transcript, rewrite_ids  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "asterisk-local"
TOKEN = "soak-token-0123456789"
SECRET = "soak-ami-secret"


# ---- a minimal streaming fake Asterisk (keeps nothing: memory stays in pinc only) --------


class StreamingAsterisk:
    """Banner, any login accepted, Success to every action, an empty CoreShowChannels;
    events come from ``source`` (a channel of byte chunks) to whoever is logged in."""

    def __init__(self, source: trio.MemoryReceiveChannel[bytes]) -> None:
        self.source = source
        self.sent = 0
        self.logins = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(port)

    async def _handle(self, stream: trio.SocketStream) -> None:
        lock = trio.StrictFIFOLock()

        async def send(data: bytes) -> None:
            async with lock:
                await stream.send_all(data)

        logged_in = trio.Event()
        try:
            await send(b"Asterisk Call Manager/11.0.0\r\n")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._actions, stream, send, logged_in, nursery.cancel_scope)
                await logged_in.wait()
                async for chunk in self.source:
                    await send(chunk)
                    self.sent += chunk.count(b"\r\n\r\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return

    async def _actions(self, stream: trio.SocketStream, send: Any, logged_in: trio.Event,
                       scope: trio.CancelScope) -> None:
        conn = AMIConnection(expect_banner=False)
        while True:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                scope.cancel()
                return
            conn.feed(data)
            while (msg := conn.next_message()) is not NEED_DATA:
                assert isinstance(msg, Message)
                await send(self._answer(msg))
                if msg.get("Action").lower() == "login":
                    self.logins += 1
                    logged_in.set()

    @staticmethod
    def _answer(msg: Message) -> bytes:
        action = msg.get("Action").lower()
        head = [("Response", "Success"), ("ActionID", msg.action_id)]
        if action == "challenge":
            return encode_headers([*head, ("Challenge", "123456789")])
        if action == "coreshowchannels":
            aid = msg.action_id
            return encode_headers([*head, ("EventList", "start")]) + encode_headers(
                [("Event", "CoreShowChannelsComplete"), ("ActionID", aid),
                 ("EventList", "Complete"), ("ListItems", "0")])
        if action == "coresettings":
            return encode_headers([*head, ("AsteriskVersion", "22.10.1")])
        return encode_headers([*head, ("Message", "OK")])


# ---- pinc as a subprocess ---------------------------------------------------------------


def write_config(tmp: Path, ami_port: int) -> Path:
    path = tmp / "pinc.toml"
    path.write_text(f"""
[ami]
port = {ami_port}
auth = "plain"
secret = "{SECRET}"
ping_interval = 5.0
ping_timeout = 30.0
[journal]
path = "{tmp / 'pinc.db'}"
[web]
listen = "127.0.0.1:0"
token = "{TOKEN}"
ws_queue = 4096
[agi]
listen = "127.0.0.1:0"
max_sessions = 2000
session_timeout = 30.0
[log]
level = "warning"
file = "{tmp / 'pinc.log'}"
""", encoding="utf-8")
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def ports_of(status_file: Path, proc: trio.Process) -> tuple[int, int]:
    """pinc logs its ports at info level; at warning we ask /proc for its listeners."""
    del status_file
    while True:
        if proc.returncode is not None:
            raise SystemExit("pinc exited early")
        found = listening_ports(proc.pid)
        if len(found) >= 2:
            return found[0], found[1]
        await trio.sleep(0.1)


def listening_ports(pid: int) -> list[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
            ports.append(int(parts[1].split(":")[1], 16))
    return sorted(ports)


async def which_is_web(ports: tuple[int, int]) -> tuple[int, int]:
    import httpx

    async with httpx.AsyncClient(timeout=2) as client:
        for port in ports:
            try:
                r = await client.get(f"http://127.0.0.1:{port}/ping")
                if r.status_code == 200:
                    other = ports[0] if port == ports[1] else ports[1]
                    return port, other
            except httpx.HTTPError:
                continue
    raise SystemExit("no web port found")


class PingProbe:
    """/ping timed from a process of its own.

    In this process the load generator (rewriting and streaming transcripts) shares the
    event loop with anything timed here, and its stalls would be counted as pinc's.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.ms: list[float] = []
        self.failures = 0
        self.scope = trio.CancelScope()

    def stop(self) -> None:
        """Before pinc stops: an ask meeting a stopping pinc is not pinc's failure."""
        self.scope.cancel()

    async def run(self, interval: float = 0.5) -> None:
        # The probe prints one line per ping ("12.3" ms, or "fail"), so the figures are
        # current whenever they are read.
        command = [sys.executable, __file__, "probe", "--port", str(self.port),
                   "--interval", str(interval)]
        proc = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        buffer = b""
        try:
            with self.scope:
                while chunk := await proc.stdout.receive_some(65536):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line == b"fail":
                            self.failures += 1
                        elif line:
                            self.ms.append(float(line))
        finally:
            with trio.CancelScope(shield=True):
                proc.terminate()
                await proc.wait()

    def figures(self) -> dict[str, Any]:
        v = sorted(self.ms)
        if not v:
            return {"answered": 0, "failures": self.failures}
        return {"answered": len(v), "failures": self.failures,
                "p50_ms": round(v[len(v) // 2], 1),
                "p99_ms": round(v[min(len(v) - 1, int(len(v) * 0.99))], 1),
                "max_ms": round(v[-1], 1)}


def rounds(base: list[bytes], n: int, start: int = 0) -> Iterator[list[bytes]]:
    for r in range(start, start + n):
        yield rewrite_ids(base, epoch=1_800_000_000 + r * 1000, seq_offset=r * 100_000)


def db_count(db: Path, sql: str) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def start_pinc(tmp: Path, ami_port: int) -> tuple[trio.Process, int, int]:
    config = write_config(tmp, ami_port)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "pinc", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL, cwd=ROOT)
    with trio.fail_after(30):
        web, agi = await which_is_web(await ports_of(tmp, proc))
    return proc, web, agi


# ---- soak -------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    base = load_transcript(FIXTURES / "concurrent_load.ami")
    send, source = trio.open_memory_channel[bytes](64)
    fake = StreamingAsterisk(source)
    samples: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="pinc-soak-") as tmpdir:
        tmp = Path(tmpdir)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(fake.run)
            proc, web, _ = await start_pinc(tmp, port)
            probe = PingProbe(web)
            nursery.start_soon(probe.run)
            t0 = time.monotonic()

            async def produce() -> None:
                total = 0
                r = 0
                while total < args.events:
                    events = rewrite_ids(base, epoch=1_800_000_000 + r * 1000,
                                         seq_offset=r * 100_000)
                    r += 1  # whole rounds only: a cut round would leave its calls live
                    total += len(events)
                    for i in range(0, len(events), 200):
                        await send.send(b"".join(events[i : i + 200]))
                await send.aclose()

            nursery.start_soon(produce)
            samples.append((0.0, rss_mb(proc.pid), 0))
            next_sample = t0 + args.sample
            db = tmp / "pinc.db"
            while True:
                await trio.sleep(0.5)
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((round(now - t0, 1), rss_mb(proc.pid), fake.sent))
                    print(f"  t={now - t0:6.1f}s  rss={samples[-1][1]:6.1f} MB  "
                          f"events sent={fake.sent}", flush=True)
                    next_sample += args.sample
                if fake.sent >= args.events and fake.sent % len(base) == 0:
                    live = db_count(db, "SELECT COUNT(*) FROM calls WHERE live = 1")
                    if live == 0:
                        break
            elapsed = time.monotonic() - t0
            samples.append((round(elapsed, 1), rss_mb(proc.pid), fake.sent))
            calls = db_count(db, "SELECT COUNT(*) FROM calls")
            probe.stop()
            proc.terminate()
            code = await proc.wait()
            nursery.cancel_scope.cancel()
    rss = [s[1] for s in samples]
    steady = rss[len(rss) // 3:] if len(rss) >= 3 else rss
    return {
        "events": fake.sent,
        "calls": calls,
        "seconds": round(elapsed, 1),
        "events_per_s": round(fake.sent / elapsed),
        "rss_samples_mb": [(t, round(m, 1)) for t, m, _ in samples],
        "rss_first_mb": round(rss[0], 1),
        "rss_max_mb": round(max(rss), 1),
        "rss_last_mb": round(rss[-1], 1),
        "rss_growth_last_two_thirds_mb": round(max(steady) - min(steady), 1),
        "ping": probe.figures(),
        "exit_code": code,
    }


# ---- live -------------------------------------------------------------------------------


async def agi_session(port: int, number: str) -> bool:
    env = (f"agi_network: yes\nagi_network_script: responsible\n"
           f"agi_request: agi://127.0.0.1/responsible\nagi_callerid: {number}\n\n").encode()
    try:
        with trio.fail_after(60):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(env)
                while True:
                    data = await stream.receive_some(4096)
                    if not data:
                        return True
                    for _ in range(data.count(b"\n")):
                        await stream.send_all(b"200 result=1\n")
    except (trio.TooSlowError, OSError, trio.BrokenResourceError):
        return False


async def ws_client(port: int, counts: dict[str, int], ready: trio.Event,
                    needed: int) -> None:
    from trio_websocket import ConnectionClosed, open_websocket_url

    try:
        # the snapshot of 2,000 live calls is over trio-websocket's default 1 MiB limit
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws",
                                      extra_headers=[(b"Authorization",
                                                      f"Bearer {TOKEN}".encode())],
                                      max_message_size=64 * 1024 * 1024) as ws:
            first = json.loads(await ws.get_message())
            counts["snapshots"] += 1
            counts["snapshot_calls"] = max(counts["snapshot_calls"], len(first["calls"]))
            if counts["snapshots"] >= needed:
                ready.set()
            while True:
                await ws.get_message()
                counts["messages"] += 1
    except ConnectionClosed:
        counts["closed"] += 1
    except OSError:
        counts["failed"] += 1


async def live(args: argparse.Namespace) -> dict[str, Any]:
    answered = load_transcript(FIXTURES / "inbound_answered.ami")
    head, tail = answered[:160], answered[160:]
    send, source = trio.open_memory_channel[bytes](64)
    fake = StreamingAsterisk(source)
    out: dict[str, Any] = {"calls": args.calls}
    with tempfile.TemporaryDirectory(prefix="pinc-live-") as tmpdir:
        tmp = Path(tmpdir)
        db = tmp / "pinc.db"
        async with trio.open_nursery() as nursery:
            port = await nursery.start(fake.run)
            proc, web, agi = await start_pinc(tmp, port)
            rss_idle = rss_mb(proc.pid)
            probe = PingProbe(web)
            nursery.start_soon(probe.run, 0.2)
            t0 = time.monotonic()
            for events in rounds(head, args.calls):
                await send.send(b"".join(events))
            while db_count(db, "SELECT COUNT(*) FROM calls WHERE live = 1") < args.calls:  # noqa: ASYNC110
                await trio.sleep(0.2)
            out["seconds_to_live"] = round(time.monotonic() - t0, 1)
            out["rss_idle_mb"] = round(rss_idle, 1)
            out["rss_with_live_calls_mb"] = round(rss_mb(proc.pid), 1)
            counts = {"snapshots": 0, "snapshot_calls": 0, "messages": 0, "closed": 0,
                      "failed": 0}
            ready = trio.Event()
            async with trio.open_nursery() as clients:
                for _ in range(args.ws):
                    clients.start_soon(ws_client, web, counts, ready, args.ws)
                with trio.move_on_after(120):
                    await ready.wait()
                out["ws_connected"] = counts["snapshots"]
                out["ws_snapshot_calls"] = counts["snapshot_calls"]
                results: list[bool] = []

                async def one(n: int) -> None:
                    results.append(await agi_session(agi, f"7916{n:07d}"))

                t1 = time.monotonic()
                async with trio.open_nursery() as agis:
                    for n in range(args.agi):
                        agis.start_soon(one, n)
                out["agi_sessions"] = args.agi
                out["agi_answered"] = sum(results)
                out["agi_seconds"] = round(time.monotonic() - t1, 2)
                out["rss_with_ws_and_agi_mb"] = round(rss_mb(proc.pid), 1)
                t2 = time.monotonic()
                for events in rounds(tail, args.calls):
                    await send.send(b"".join(events))
                while db_count(db, "SELECT COUNT(*) FROM calls WHERE live = 1") > 0:  # noqa: ASYNC110
                    await trio.sleep(0.2)
                out["seconds_to_all_ended"] = round(time.monotonic() - t2, 1)
                # Frames may still be on their way (pinc's writers give way to other work
                # under load): wait until no client has received anything for 2 s.
                with trio.move_on_after(60):
                    seen = -1
                    while counts["messages"] != seen:
                        seen = counts["messages"]
                        await trio.sleep(2.0)
                out["ws_messages"] = counts["messages"]
                out["seconds_to_last_ws_message"] = round(time.monotonic() - t2 - 2.0, 1)
                out["ws_dropped_or_closed"] = counts["closed"] + counts["failed"]
                clients.cancel_scope.cancel()
            out["left_live"] = db_count(db, "SELECT COUNT(*) FROM calls WHERE live = 1")
            out["rss_after_mb"] = round(rss_mb(proc.pid), 1)
            probe.stop()
            out["ping"] = probe.figures()
            proc.terminate()
            out["exit_code"] = await proc.wait()
            nursery.cancel_scope.cancel()
    return out


def probe(port: int, interval: float) -> int:
    """The probe process: GET /ping every ``interval`` s, one line per answer, until killed."""
    import urllib.request

    while True:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10) as r:
                r.read()
            print(f"{(time.perf_counter() - t0) * 1000:.3f}", flush=True)
        except OSError:
            print("fail", flush=True)
        time.sleep(interval)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("soak")
    s.add_argument("--events", type=int, default=1_000_000)
    s.add_argument("--sample", type=float, default=10.0)
    s.add_argument("--json")
    live_p = sub.add_parser("live")
    live_p.add_argument("--calls", type=int, default=2000)
    live_p.add_argument("--ws", type=int, default=200)
    live_p.add_argument("--agi", type=int, default=500)
    live_p.add_argument("--json")
    probe_p = sub.add_parser("probe", help="time /ping until SIGTERM, then print JSON")
    probe_p.add_argument("--port", type=int, required=True)
    probe_p.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    if args.mode == "probe":
        return probe(args.port, args.interval)
    random.seed(1)
    figures = trio.run(soak if args.mode == "soak" else live, args)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2), encoding="utf-8")
    ok = figures["ping"].get("answered", 0) > 0 and figures["exit_code"] == 0
    if args.mode == "live":
        ok = ok and figures["left_live"] == 0 and figures["agi_answered"] == args.agi
        ok = ok and figures["ws_connected"] == args.ws
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
