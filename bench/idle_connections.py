"""10,000 idle connections against a running pinc, and /ping meanwhile.

Starts ``pinc demo --port 0`` in its own process, opens N connections that send nothing
or half a request, then times /ping on fresh connections. Needs N + ~100 file
descriptors in both processes (the packaged systemd unit sets LimitNOFILE=65536).

    python bench/idle_connections.py [--connections 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    args = parser.parse_args()
    demo = subprocess.Popen(
        [sys.executable, "-m", "pinc", "demo", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline and demo.stdout is not None:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/\?token", demo.stdout.readline())
            port = int(found.group(1)) if found else None
        if port is None:
            raise SystemExit("pinc demo printed no dashboard URL")

        def ping() -> float:
            start = time.perf_counter()
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10).read()
            return (time.perf_counter() - start) * 1000

        before = [ping() for _ in range(10)]
        idle = []
        start = time.monotonic()
        for i in range(args.connections):
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:  # half a request, never finished
                conn.sendall(b"GET /ping HTTP/1.1\r\nHost: pinc\r\n")
            idle.append(conn)
        opened = time.monotonic() - start
        during = [ping() for _ in range(20)]
        print(f"opened {args.connections:,} idle connections in {opened:.1f} s")
        print(f"/ping before: median {statistics.median(before):.1f} ms")
        print(f"/ping with them open: median {statistics.median(during):.1f} ms, "
              f"max {max(during):.1f} ms, {len(during)}/{len(during)} answered")
        for conn in idle:
            conn.close()
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=15)


if __name__ == "__main__":
    main()
