"""``pinc run`` end to end into vtiger: fake Asterisk -> real process -> fake vtiger.

Every single-call scenario of tests/fixtures/asterisk-local and asterisk-pjsip is
replayed, one after the other, into a real ``pinc run`` subprocess whose CRM is the
fake vtiger (which checks signatures and stores what vtiger's PHP would). Afterwards
vtiger must hold, for every customer call, the row a real vtiger keeps for the call
pinc journaled, and the calls must be what ``pinc replay`` derives from the same
transcripts.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import trio

from pinc.config import Config, load_config
from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.test_replay import vtiger_row_for

from .conftest import FIXTURES, PincProcess, journal_rows, replay_calls, write_config
from .test_run import listed_calls, wait_all_ended

SCENARIOS = sorted(
    p for p in [*FIXTURES.glob("*.ami"), *FIXTURES.parent.joinpath("asterisk-pjsip").glob("*.ami")]
    if p.stem != "concurrent_load"
)
CRM_SECRET = "pinc-lab-secret-42"


def with_crm(path: Path, vtiger_port: int, recordings: Path) -> Path:
    text = path.read_text(encoding="utf-8")
    text = text.replace("[log]", f'[pbx]\nrecordings_dir = "{recordings}"\n\n[log]')
    text += (
        f'\n[crm]\nprofile = "vtiger"\nurl = "http://127.0.0.1:{vtiger_port}/vtigercrm"\n'
        f'secret = "{CRM_SECRET}"\ntimezone = "Europe/Moscow"\nretry_min = 0.05\n'
        f'retry_max = 0.5\n'
    )
    text = text.replace("[web]\n", '[web]\npublic_url = "http://pbx.example:8099"\n')
    path.write_text(text, encoding="utf-8")
    return path


def key_facts(call: dict[str, Any]) -> tuple[Any, ...]:
    return (call["linkedid"], call["direction"], call["status"], call["answered_by"],
            call["from"], call["to"], call["recording"])


async def test_pinc_run_delivers_every_scenario_to_vtiger(tmp_path: Path) -> None:
    expected = [c for path in SCENARIOS for c in replay_calls(path)]
    assert len(SCENARIOS) == 26 and len(expected) == 26  # one call per scenario
    recordings = tmp_path / "monitor"
    for call in expected:  # the recordings themselves are not shipped: put files in place
        if call["recording"]:
            file = recordings / call["recording"]
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(b"RIFF" + b"\0" * 4000)
    events = [e for path in SCENARIOS for e in load_transcript(path)]
    db = tmp_path / "data" / "pinc.db"
    vtiger = FakeVtiger(secret=CRM_SECRET)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            await nursery.start(vtiger.run)
            sim = AmiSimServer(events)
            port = await nursery.start(sim.run)
            config_path = with_crm(write_config(tmp_path, port, db), vtiger.port, recordings)
            pinc = PincProcess(config_path, tmp_path / "pinc.log")
            await pinc.start()
            await sim.wait_logins(1)
            await sim.wait_replayed()
            await wait_all_ended(db, len(expected), pinc)
            # another process writes the outbox: poll it
            undone = "SELECT COUNT(*) FROM outbox WHERE state != 'done'"
            while journal_rows(db, undone)[0][0]:  # noqa: ASYNC110
                await trio.sleep(0.1)
            assert await pinc.stop(signal.SIGTERM) == 0, pinc.text()
            nursery.cancel_scope.cancel()

    got = listed_calls(db)
    assert sorted(map(key_facts, got)) == sorted(map(key_facts, expected))
    config: Config = load_config(config_path, env={})
    customer_calls = [c for c in got if c["direction"] != "internal"]
    assert len(vtiger.rows) == len(customer_calls)
    for call in customer_calls:
        row = vtiger.row(call["id"])
        assert row is not None, f"vtiger has no row for {call['id']}"
        want = vtiger_row_for(config, call)
        assert {k: row[k] for k in want} == want, call["id"]
    linked = [r for r in vtiger.rows if r["recordingurl"]]
    assert len(linked) == sum(c["status"] == "completed" and bool(c["recording"])
                              for c in customer_calls) == 14
    assert not [r for r in linked if CRM_SECRET in r["recordingurl"]]  # signed, no secret
    assert CRM_SECRET not in pinc.text()
