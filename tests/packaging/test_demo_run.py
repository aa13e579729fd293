"""`pinc demo` end to end: the simulated PBX, the real app, the fake vtiger, real sockets."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url

from pinc.sim.demo import DemoHandle, DemoOptions, run_demo

ROOT = Path(__file__).resolve().parents[2]


async def test_demo_plays_calls_into_the_app_and_the_crm(tmp_path: Path) -> None:
    out = io.StringIO()
    options = DemoOptions(
        speed=40, port=0, db=str(tmp_path / "demo.db"), max_calls=4, seed=7, out=out
    )
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            handle: DemoHandle = await nursery.start(run_demo, options)
            base = f"http://127.0.0.1:{handle.web_port}"
            async with httpx.AsyncClient(follow_redirects=True) as client:
                ping = await client.get(f"{base}/ping")
                assert ping.status_code == 200
                page = await client.get(handle.dashboard_url)  # the one-time sign-in link
                assert page.status_code == 200 and "pinc_session" in client.cookies
            async with httpx.AsyncClient() as other:
                again = await other.get(handle.dashboard_url)
                assert again.status_code == 401  # consumed on first use
            url = f"ws://127.0.0.1:{handle.web_port}/ws"
            auth = [(b"Authorization", f"Bearer {handle.token}".encode())]
            async with open_websocket_url(url, extra_headers=auth) as ws:
                while True:
                    message = json.loads(await ws.get_message())
                    if str(message.get("type", "")).startswith("call."):
                        break
        # run_demo returned by itself after --calls 4
    assert handle.stats.get("played") == 4
    assert handle.stats.get("ended", 0) >= 1
    assert handle.sink.counts.get("StartApp", 0) >= 1, handle.sink.counts
    assert handle.sink.rejected == 0
    assert handle.sink.snapshot()["records"]
    text = out.getvalue()
    assert handle.dashboard_url in text and "What vtiger receives" in text
    assert "token=" not in text  # no token in any URL it prints
    assert (tmp_path / "demo.db").exists()


def _start_demo(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pinc", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_cli_demo_prints_the_dashboard_and_stops_cleanly_on_sigterm() -> None:
    proc = _start_demo("--port", "0", "--speed", "20")
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        port = None
        seen = []
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)/signin/\S+", line)
            if m:
                port = int(m.group(1))
        assert port, "".join(seen)
        assert httpx.get(f"http://127.0.0.1:{port}/ping", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_demo_stops_by_itself_after_calls() -> None:
    proc = _start_demo("--port", "0", "--speed", "40", "--calls", "2")
    try:
        output, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, output
        assert "2 calls played" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_demo_reports_a_taken_port() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start_demo("--port", str(port))
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert "--port 0" in output
