"""A real ``pinc run`` in a subprocess against the fake Asterisk on 127.0.0.1."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "asterisk-local"
TOKEN = "integration-token-1234"
SECRET = "pincsecret"


@functools.cache
def transcript(name: str) -> tuple[bytes, ...]:
    """A recorded transcript's events, loaded once per test session (loading is slow)."""
    from pinc.sim.transcripts import load_transcript

    return tuple(load_transcript(FIXTURES / name))


def write_config(tmp_path: Path, ami_port: int, db: Path) -> Path:
    path = tmp_path / "pinc.toml"
    path.write_text(
        f"""
[ami]
host = "127.0.0.1"
port = {ami_port}
username = "pinc"
secret = "{SECRET}"
reconnect_min = 0.1
reconnect_max = 0.5

[journal]
path = "{db}"

[web]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[agi]
listen = "127.0.0.1:0"

[log]
level = "info"
""",
        encoding="utf-8",
    )
    return path


def pinc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pinc", *args]


class PincProcess:
    """``pinc run`` with its log in a file (read to find the ports and for failures)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: trio.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as fh:
            self.process = await trio.lowlevel.open_process(
                pinc_command("run", "--config", str(self.config)),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=fh,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def web_port(self, nth: int = 1) -> int | None:
        """The web port of the nth start, from the "pinc ready" log line."""
        while True:
            found = re.findall(r"pinc ready: .* web port (\w+)", self.text())
            if len(found) >= nth:
                return int(found[nth - 1]) if found[nth - 1].isdigit() else None
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"pinc exited early:\n{self.text()}")
            await trio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await self.process.wait()


def journal_rows(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def replay_calls(fixture: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        pinc_command("replay", str(fixture)),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def essentials(call: dict[str, Any]) -> dict[str, Any]:
    """What a live run must agree on with ``pinc replay`` (times come from the arrival
    clock when live, from the events in a replay; a live run gives calls random ids)."""
    return {
        "linkedid": call["linkedid"],
        "direction": call["direction"],
        "status": call["status"],
        "from": call["from"],
        "to": call["to"],
        "answered_by": call["answered_by"],
        "legs": [(leg["ext"], leg["result"]) for leg in call["legs"]],
        "transfers": [(t["kind"], t["from"], t["to"]) for t in call["transfers"]],
        "recording": call["recording"],
    }
