"""``pinc run`` end to end: the fake Asterisk replays concurrent_load into a real process.

1. The journal then holds exactly the calls ``pinc replay`` prints for the transcript.
2. SIGKILL in the middle of the replay, restart on the same database while the fake
   Asterisk continues: nothing committed is lost or duplicated, every ended call ended
   once, the file passes ``PRAGMA integrity_check``, and every change a websocket
   subscriber saw before the kill is in the journal.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from .conftest import (
    FIXTURES,
    TOKEN,
    PincProcess,
    essentials,
    journal_rows,
    pinc_command,
    replay_calls,
    transcript,
    write_config,
)

pytest.importorskip("pinc.ami.client")
from pinc.sim.amiserver import AmiSimServer

LOAD = FIXTURES / "concurrent_load.ami"


async def wait_all_ended(db: Path, count: int, process: PincProcess) -> None:
    while True:
        try:
            ended = journal_rows(db, "SELECT COUNT(*) FROM calls WHERE live = 0")[0][0]
            live = journal_rows(db, "SELECT COUNT(*) FROM calls WHERE live = 1")[0][0]
        except Exception:  # the file may not have its tables yet
            ended = live = -1
        if ended >= count and live == 0:
            return
        assert process.process is not None and process.process.returncode is None, process.text()
        await trio.sleep(0.1)


def listed_calls(db: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        pinc_command("calls", "--db", str(db), "--json", "--limit", "10000"),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_run_journal_matches_replay(tmp_path: Path) -> None:
    expected = replay_calls(LOAD)
    assert len(expected) == 50
    db = tmp_path / "data" / "pinc.db"
    sim = AmiSimServer(transcript(LOAD.name))
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sim.run)
            pinc = PincProcess(write_config(tmp_path, port, db), tmp_path / "pinc.log")
            await pinc.start()
            await sim.wait_logins(1)
            await sim.wait_replayed()
            await wait_all_ended(db, len(expected), pinc)
            assert await pinc.stop(signal.SIGTERM) == 0, pinc.text()
            nursery.cancel_scope.cancel()
    got = listed_calls(db)
    # live ids are random: calls are matched by Asterisk's Linkedid
    assert {c["linkedid"] for c in got} == {c["linkedid"] for c in expected}
    assert len({c["id"] for c in got}) == len(got)
    by_link = {c["linkedid"]: essentials(c) for c in got}
    for call in expected:
        assert by_link[call["linkedid"]] == essentials(call)
    (integrity,) = journal_rows(db, "PRAGMA integrity_check")[0]
    assert integrity == "ok"
    assert "pinc stopped" in pinc.text()


async def subscribe(port: int, seen: list[dict[str, Any]], ready: trio.Event) -> None:
    from trio_websocket import ConnectionClosed, open_websocket_url

    auth = [(b"Authorization", f"Bearer {TOKEN}".encode())]
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws", extra_headers=auth) as ws:
        ready.set()
        try:
            while True:
                message = json.loads(await ws.get_message())
                if message.get("type", "").startswith("call."):
                    seen.append(message)
        except ConnectionClosed:
            return


async def test_sigkill_mid_replay_then_restart(tmp_path: Path) -> None:
    events = list(transcript(LOAD.name))
    db = tmp_path / "data" / "pinc.db"
    sim = AmiSimServer(events, rate=1500.0)  # ~5 s of replay; it waits while no one listens
    seen: list[dict[str, Any]] = []
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sim.run)
            pinc = PincProcess(write_config(tmp_path, port, db), tmp_path / "pinc.log")
            await pinc.start()
            web_port = await pinc.web_port(1)
            if web_port is not None:
                ready = trio.Event()
                nursery.start_soon(subscribe, web_port, seen, ready)
                await ready.wait()
            while sim.replayed < len(events) * 0.45:  # noqa: ASYNC110 (polls the server)
                await trio.sleep(0.02)
            assert pinc.process is not None
            pinc.process.kill()  # SIGKILL: no drain, no goodbye
            await pinc.process.wait()
            seen_before_kill = list(seen)
            assert seen_before_kill or web_port is None
            committed_before = journal_rows(db, "SELECT seq, call_id, kind, call FROM events")
            ended_before = {r[0] for r in journal_rows(db, "SELECT id FROM calls WHERE live = 0")}
            assert committed_before and sim.replayed < len(events)

            await pinc.start()  # same database; the fake Asterisk carries on
            await sim.wait_logins(2)
            await sim.wait_replayed()
            await wait_all_ended(db, 1, pinc)
            assert await pinc.stop(signal.SIGTERM) == 0, pinc.text()
            nursery.cancel_scope.cancel()

    (integrity,) = journal_rows(db, "PRAGMA integrity_check")[0]
    assert integrity == "ok"
    after = journal_rows(db, "SELECT seq, call_id, kind, call FROM events ORDER BY seq")
    # nothing committed before the kill is lost or changed
    assert after[: len(committed_before)] == sorted(committed_before)
    # nothing duplicated
    keys = [(r[1], r[2], r[3]) for r in after]
    assert len(keys) == len(set(keys))
    # every ended call ended once; every call ended by the end (resync or events)
    ends: dict[str, int] = {}
    for _, call_id, kind, _ in after:
        if kind == "call.ended":
            ends[call_id] = ends.get(call_id, 0) + 1
    assert all(n == 1 for n in ends.values())
    calls = journal_rows(db, "SELECT id, live FROM calls")
    assert all(live == 0 for _, live in calls) and set(ends) == {c for c, _ in calls}
    assert ended_before <= set(ends)
    # every change a subscriber saw before the kill is in the journal
    stored = {(r[1], r[2], json.dumps(json.loads(r[3]), sort_keys=True)) for r in after}
    for change in seen_before_kill:
        key = (change["call_id"], change["type"], json.dumps(change["call"], sort_keys=True))
        assert key in stored
    # the restart said what it found
    text = pinc.text()
    assert "restored" in text
