"""One time policy (#16): a live ``pinc run`` and ``pinc replay`` of the same bytes agree on
every call, times included.

The fake Asterisk plays the transcripts recorded with ``timestampevents = yes`` (the lab's,
on a UTC clock, and the kit office's on a Moscow clock), one after the other as one PBX
would have sent them, as fast as it can: pinc's own clock (the arrival times) says nothing
like what the PBX's clock said, and the calls must still come out with the PBX's times,
exactly as a replay of the same bytes prints them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import trio

from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript

from .conftest import PincProcess, journal_rows, pinc_command

ROOT = Path(__file__).resolve().parents[2]
# the lab's recordings (#13) and the kit office's on a Moscow clock: both PBX clocks
SOURCES = [ROOT / "tests" / "fixtures" / "lab", ROOT / "tests" / "fixtures" / "asterisk-msk"]
PBX = {
    "extension_pattern": r"^\d{3}$",
    "trunk_contexts": ["from-trunk"],
    "internal_contexts": ["from-internal"],
}


def stamped() -> list[tuple[Path, dict[str, Any]]]:
    """The lab transcripts recorded with Timestamp headers, in the order they were made."""
    out = []
    for truth_path in sorted(p for folder in SOURCES for p in folder.glob("*.truth.json")):
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        if truth.get("timestamps"):
            out.append(
                (truth_path.with_name(truth_path.name.replace(".truth.json", ".ami")), truth)
            )
    return sorted(out, key=lambda item: _first_stamp(item[0]))


def _first_stamp(ami: Path) -> float:
    with ami.open("rb") as fh:
        m = re.search(rb"\nTimestamp: (\d+\.\d+)", fh.read(65536))
    return float(m.group(1)) if m else 0.0


def _config(tmp: Path, port: int, db: Path, recordings: str) -> Path:
    path = tmp / "pinc.toml"
    lines = [
        "[ami]",
        'host = "127.0.0.1"',
        f"port = {port}",
        'username = "pinc"',
        'secret = "pincsecret"',
        "[pbx]",
        *(f"{k} = {json.dumps(v)}" for k, v in PBX.items()),
        f"recordings_dir = {json.dumps(recordings)}",
        "[journal]",
        f"path = {json.dumps(str(db))}",
        "[web]",
        'listen = "127.0.0.1:0"',
        'token = "integration-token-1234"',
        "[agi]",
        'listen = "127.0.0.1:0"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _journal_calls(config: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        pinc_command("calls", "--config", str(config), "--json", "--limit", "10000"),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _replayed(config: Path, transcript: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        pinc_command("replay", "--config", str(config), str(transcript)),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _count(db: Path, sql: str) -> int:
    try:
        rows = journal_rows(db, sql)
    except Exception:  # the file may not have its tables yet
        return -1
    return int(rows[0][0]) if rows else 0


def _comparable(call: dict[str, Any]) -> dict[str, Any]:
    """Everything but the id (a live pinc gives random ones) and what only a live run
    knows (none of these)."""
    return {k: v for k, v in call.items() if k not in ("id",)}


async def test_live_run_and_replay_agree_times_included(tmp_path: Path) -> None:
    fixtures = stamped()
    assert fixtures, f"no stamped transcripts in {SOURCES}"
    # one stream, transcript after transcript, as one PBX would have sent them
    events: list[bytes] = []
    for ami, _truth in fixtures:
        events += load_transcript(ami)
    stream = tmp_path / "all.ami"
    stream.write_bytes(b"Asterisk Call Manager/11.0.0\r\n" + b"".join(events))
    recordings = str(fixtures[0][1].get("recordings_dir") or "/var/spool/asterisk/monitor")
    db = tmp_path / "pinc.db"
    # the calls a replay of the same bytes prints (the AMI port is never used by a replay)
    replayed = {
        c["linkedid"]: _comparable(c)
        for c in _replayed(_config(tmp_path, 1, db, recordings), stream)
    }
    sim = AmiSimServer(events)
    with trio.fail_after(180):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sim.run)
            config = _config(tmp_path, port, db, recordings)
            pinc = PincProcess(config, tmp_path / "pinc.log")
            await pinc.start()
            await sim.wait_logins(1)
            await sim.wait_replayed()
            # every call ended (the last ones 3 s of the PBX's time after their hangup)
            ended = (
                "SELECT COUNT(*) FROM calls WHERE live = 0"
                " AND (end_reason IS NULL OR end_reason NOT LIKE 'merged%')"
            )
            live = "SELECT COUNT(*) FROM calls WHERE live = 1"
            while _count(db, ended) < len(replayed) or _count(db, live) != 0:
                assert pinc.process is not None and pinc.process.returncode is None, pinc.text()
                await trio.sleep(0.1)
            assert await pinc.stop(signal.SIGTERM) == 0, pinc.text()
            nursery.cancel_scope.cancel()
    journal = [
        c for c in _journal_calls(config) if not str(c.get("end_reason") or "").startswith("merged")
    ]
    got = {c["linkedid"]: _comparable(c) for c in journal}
    assert sorted(got) == sorted(replayed)
    for link, call in replayed.items():
        assert got[link] == call, link
    assert len(replayed) >= len(fixtures)
