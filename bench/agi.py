"""FastAGI benchmark: responsible-manager sessions answered from the cache, over real TCP.

    /work/venv/bin/python bench/agi.py [--clients 50] [--seconds 10] [--inprocess]

The server (AgiServer + Router, every number already cached) runs in a child process
so the load generator has its own core; ``--inprocess`` runs both in one trio loop.
Each client plays Asterisk: connect, send the recorded environment, answer each
``SET VARIABLE`` with ``200 result=1``, wait for the close. Session time is measured
by the client from connect to close. Targets: >= 2,000 sessions/s, p99 < 3 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import trio

from pinc.agi.server import AgiServer
from pinc.config import Config, replace
from pinc.routing import Customer, Router

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "asterisk-local" / "agi_responsible.agi"
NUMBERS = 1000
TARGET_RATE = 2000.0
TARGET_P99_MS = 3.0


class CachedCrm:
    """A CRM that knows every bench number (it is asked once per number, at warm-up)."""

    async def find_customer(self, number: str) -> Customer | None:
        await trio.lowlevel.checkpoint()
        return Customer("Ivan Petrov", "Contacts", "12x34", "Anna Smirnova", "102")


def environment(i: int) -> bytes:
    data = FIXTURE.read_bytes()
    env = data[: data.index(b"\n\n") + 2]
    number = f"7916{i:07d}".encode()
    return env.replace(b"79161234567", number)


def bench_config() -> Config:
    return replace(
        Config(),
        agi={"listen": "127.0.0.1:0", "max_sessions": 1000},
        routing={"cache_ttl": 3600.0},
    )


async def serve(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    config = bench_config()
    router = Router(config, crm=CachedCrm(), journal=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(router.run)
        for i in range(NUMBERS):  # warm the cache: the bench measures cache answers
            await router.responsible(f"7916{i:07d}")
        port = await nursery.start(AgiServer(config, router).run)
        task_status.started(port)


def child(conn: Connection) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve)
            conn.send(port)
            # answer each request with the CPU time used so far; exit when the pipe closes
            while True:
                try:
                    await trio.to_thread.run_sync(conn.recv_bytes, abandon_on_cancel=True)
                except EOFError:
                    break
                usage = resource.getrusage(resource.RUSAGE_SELF)
                conn.send((usage.ru_utime, usage.ru_stime))
            nursery.cancel_scope.cancel()

    trio.run(main)


async def session(port: int, env: bytes) -> int:
    """One Asterisk-side session; returns the number of commands pinc sent."""
    commands = 0
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(env)
            buf = b""
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    return commands
                buf += data
                while b"\n" in buf:
                    _, buf = buf.split(b"\n", 1)
                    commands += 1
                    await stream.send_all(b"200 result=1\n")


async def load(port: int, clients: int, seconds: float, warmup: float) -> tuple[list[float], float]:
    times: list[float] = []
    envs = [environment(i) for i in range(NUMBERS)]
    measuring = False
    stop_at = 0.0

    async def client(k: int) -> None:
        i = k
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            commands = await session(port, envs[i % NUMBERS])
            if commands != 3:
                raise RuntimeError(f"expected 3 SET VARIABLE commands, got {commands}")
            if measuring:
                times.append(time.perf_counter() - t0)
            i += clients

    stop_at = time.perf_counter() + warmup
    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(client, k)
    measuring = True
    start = time.perf_counter()
    stop_at = start + seconds
    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(client, k)
    return times, time.perf_counter() - start


def pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def report(times: list[float], elapsed: float, clients: int, mode: str) -> bool:
    times.sort()
    rate = len(times) / elapsed
    p50 = pct(times, 0.50) * 1000
    p99 = pct(times, 0.99) * 1000
    print(f"FastAGI responsible from cache, {clients} concurrent clients, server {mode}")
    print(f"  sessions:     {len(times)} in {elapsed:.1f} s")
    print(
        f"  sessions/s:   {rate:,.0f}   (target >= {TARGET_RATE:,.0f}: x{rate / TARGET_RATE:.2f})"
    )
    print(f"  p50:          {p50:.2f} ms")
    print(
        f"  p99:          {p99:.2f} ms   (target < {TARGET_P99_MS} ms: x{TARGET_P99_MS / p99:.2f})"
    )
    print(f"  mean / max:   {statistics.fmean(times) * 1000:.2f} / {times[-1] * 1000:.2f} ms")
    ok = rate >= TARGET_RATE and p99 < TARGET_P99_MS
    print(f"  targets met:  {'yes' if ok else 'NO'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--inprocess", action="store_true", help="server in the same trio loop")
    args = parser.parse_args()

    if args.inprocess:

        async def both() -> tuple[list[float], float]:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(serve)
                result = await load(port, args.clients, args.seconds, args.warmup)
                nursery.cancel_scope.cancel()
                return result

        times, elapsed = trio.run(both)
        ok = report(times, elapsed, args.clients, "in the same process")
    else:
        ctx = multiprocessing.get_context("spawn")
        parent, child_end = ctx.Pipe()
        proc = ctx.Process(target=child, args=(child_end,), daemon=True)
        proc.start()
        try:
            if not parent.poll(30):
                raise RuntimeError("the server process did not start")
            port = parent.recv()
            parent.send_bytes(b"cpu")
            cpu0 = parent.recv()
            times, elapsed = trio.run(load, port, args.clients, args.seconds, args.warmup)
            parent.send_bytes(b"cpu")
            cpu1 = parent.recv()
            print(f"server CPU per session: {(cpu1 - cpu0) / len(times) * 1e6:.0f} us")
        finally:
            parent.close()
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
        ok = report(times, elapsed, args.clients, "in a child process")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
