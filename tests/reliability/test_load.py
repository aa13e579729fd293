"""Load: bench/soak.py against a real ``pinc run``. The default run uses small numbers (100
live calls, 20 websocket clients, 50 AGI sessions, 20,000 soak events); ``--run-slow``
runs the full figures (2,000 live calls, 200 websocket clients, 500 concurrent AGI
sessions, 1,000,000 events with RSS sampled every 10 s). Tests assert that everything
answered and nothing was left live; latencies and memory are figures, not assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import record

ROOT = Path(__file__).resolve().parents[2]


def soak(tmp_path: Path, *args: str, timeout: float) -> dict[str, object]:
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), *args,
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures: dict[str, object] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def check_live(figures: dict[str, object], calls: int, ws: int, agi: int) -> None:
    assert figures["ws_connected"] == ws
    assert figures["ws_snapshot_calls"] == calls
    assert figures["agi_answered"] == agi
    assert figures["left_live"] == 0
    ping = figures["ping"]
    assert isinstance(ping, dict) and ping["answered"] > 0 and ping["failures"] == 0


def test_live_calls_ws_and_agi_small(tmp_path: Path) -> None:
    figures = soak(tmp_path, "live", "--calls", "100", "--ws", "20", "--agi", "50",
                   timeout=180)
    check_live(figures, 100, 20, 50)
    record("load.small_live", figures)


def test_soak_small(tmp_path: Path) -> None:
    figures = soak(tmp_path, "soak", "--events", "20000", "--sample", "2", timeout=180)
    assert figures["events"] >= 20000
    ping = figures["ping"]
    assert isinstance(ping, dict) and ping["failures"] == 0
    record("load.small_soak", {k: figures[k] for k in ("events", "calls", "rss_max_mb",
                                                       "ping")})


@pytest.mark.slow
def test_two_thousand_live_calls_200_ws_500_agi(tmp_path: Path) -> None:
    figures = soak(tmp_path, "live", "--calls", "2000", "--ws", "200", "--agi", "500",
                   timeout=900)
    check_live(figures, 2000, 200, 500)
    record("load.live_2000", figures)


@pytest.mark.slow
def test_million_event_soak(tmp_path: Path) -> None:
    figures = soak(tmp_path, "soak", "--events", "1000000", timeout=1800)
    assert figures["events"] >= 1_000_000
    ping = figures["ping"]
    assert isinstance(ping, dict) and ping["failures"] == 0
    record("load.soak_1m", figures)
