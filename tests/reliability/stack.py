"""The whole of pinc in-process (``pinc.app.serve``) against the fake Asterisk and the fake
vtiger on 127.0.0.1, plus the probes the fault tests run meanwhile (/ping, an AGI session)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from pinc.app import ServeHandle, serve
from pinc.config import Config, load_config
from tests.agi.conftest import agi_client, environment

AMI_SECRET = "ami-Secret-7d1f9c"
CRM_SECRET = "crm-Secret-4b2e8a"
ACCESS_KEY = "access-Key-91c3d0"
TOKEN = "api-Token-5e6f7a8b"
SECRETS = (AMI_SECRET, CRM_SECRET, ACCESS_KEY, TOKEN)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def stack_config(tmp_path: Path, ami_port: int, *, vtiger_port: int | None = None,
                 **sections: dict[str, Any]) -> Config:
    rec = tmp_path / "monitor"
    rec.mkdir(exist_ok=True)
    overrides: dict[str, dict[str, Any]] = {
        "ami": {"port": ami_port, "secret": AMI_SECRET, "reconnect_min": 0.1,
                "reconnect_max": 0.5, "ping_interval": 1.0, "ping_timeout": 1.0,
                "connect_timeout": 2.0, "action_timeout": 2.0},
        "journal": {"path": str(tmp_path / "data" / "pinc.db"), "batch_ms": 2},
        "web": {"listen": "127.0.0.1:0", "token": TOKEN},
        "agi": {"listen": "127.0.0.1:0"},
        "pbx": {"recordings_dir": str(rec)},
        "crm": {"secret": CRM_SECRET},
    }
    if vtiger_port is not None:
        overrides["crm"].update(
            url=f"http://127.0.0.1:{vtiger_port}/vtigercrm", username="admin",
            access_key=ACCESS_KEY, retry_min=0.05, retry_max=0.5, timeout=2.0,
        )
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, env={}, overrides=overrides)


async def start_stack(nursery: trio.Nursery, config: Config) -> ServeHandle:
    handle: ServeHandle = await nursery.start(serve, config)
    return handle


async def wait_for(predicate: Callable[[], bool], poll: float = 0.02) -> None:
    """Poll a condition the code under test reaches on its own (callers set deadlines)."""
    while not predicate():  # noqa: ASYNC110 (polls state owned by the code under test)
        await trio.sleep(poll)


def db_rows(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def live_in_journal(db: Path) -> int:
    try:
        return int(db_rows(db, "SELECT COUNT(*) FROM calls WHERE live = 1")[0][0])
    except sqlite3.OperationalError:
        return -1


class Probe:
    """Asks /ping and the AGI server again and again while a fault is on; every answer
    and its latency are kept (tests assert answered; docs report the latencies)."""

    def __init__(self, web_port: int, agi_port: int | None) -> None:
        self.web_port = web_port
        self.agi_port = agi_port
        self.ping_ms: list[float] = []
        self.agi_ms: list[float] = []
        self.failures: list[str] = []

    async def run(self, interval: float = 0.1) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.web_port}",
                                     timeout=5) as client:
            while True:
                t0 = time.perf_counter()
                try:
                    r = await client.get("/ping")
                    if r.status_code == 200:
                        self.ping_ms.append((time.perf_counter() - t0) * 1000)
                    else:
                        self.failures.append(f"/ping {r.status_code}")
                except httpx.HTTPError as exc:
                    self.failures.append(f"/ping {exc!r}")
                if self.agi_port is not None:
                    t0 = time.perf_counter()
                    try:
                        with trio.fail_after(5):
                            await agi_client(self.agi_port, environment("responsible",
                                                                        "79161234567"))
                        self.agi_ms.append((time.perf_counter() - t0) * 1000)
                    except (trio.TooSlowError, OSError) as exc:
                        self.failures.append(f"agi {exc!r}")
                await trio.sleep(interval)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)
