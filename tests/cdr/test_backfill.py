"""``pinc backfill``: by hand, with pinc stopped (it opens the journal) and while pinc runs
(the running pinc does it through ``POST /api/backfill``)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio
from click.testing import CliRunner

from pinc.cli import main
from pinc.sim.amiserver import AmiSimServer
from tests.cdr.test_recovery import SCENARIOS, journal_calls, master_csv
from tests.reliability.stack import AMI_SECRET, TOKEN, stack_config, start_stack, wait_for


def write_toml(tmp_path: Path, master: Path, web_port: int, ami_port: int) -> Path:
    toml = tmp_path / "pinc.toml"
    toml.write_text(
        f'[journal]\npath = "{tmp_path / "data" / "pinc.db"}"\n'
        f'[web]\nlisten = "127.0.0.1:{web_port}"\ntoken = "{TOKEN}"\n'
        f'[ami]\nport = {ami_port}\n'
        f'[cdr]\nsource = "csv"\ncsv_path = "{master}"\ntimezone = "UTC"\n',
        encoding="utf-8",
    )
    return toml


def backfill(toml: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(main, ["backfill", "--config", str(toml), *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_backfill_with_pinc_stopped(tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    linkedids = master_csv(master)
    toml = write_toml(tmp_path, master, 1, 1)
    db = tmp_path / "data" / "pinc.db"
    lines = backfill(toml, "--since", "1h", "--dry-run", "--json")
    calls = [json.loads(line) for line in lines if line.startswith("{")]
    assert {c["linkedid"] for c in calls} == set(linkedids.values())
    assert all(c["source"] == "cdr" for c in calls)
    assert journal_calls(db) == []  # a dry run writes nothing
    lines = backfill(toml, "--since", "1h")
    assert f"{len(SCENARIOS)} recovered" in lines[-1] and "journal written" in lines[-1]
    assert len(journal_calls(db)) == len(SCENARIOS)
    lines = backfill(toml, "--since", "1h")  # again: the journal holds them all
    assert "0 recovered" in lines[-1] and f"{len(SCENARIOS)} already in the journal" in lines[-1]
    assert len(journal_calls(db)) == len(SCENARIOS)


async def test_backfill_while_pinc_runs(nursery: trio.Nursery, tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    master_csv(master)
    sim = AmiSimServer([], secret=AMI_SECRET)
    ami_port = await nursery.start(sim.run)
    config = stack_config(tmp_path, ami_port,
                          cdr={"source": "csv", "csv_path": str(master), "timezone": "UTC",
                               "lookback_hours": 0.01})  # the login recovers nothing
    handle = await start_stack(nursery, config)
    recovery = handle.services.extras["recovery"]
    with trio.fail_after(30):
        await wait_for(lambda: recovery.runs >= 1)
        assert recovery.recovered == 0
        toml = write_toml(tmp_path, master, handle.web_port or 0, ami_port)
        lines = await trio.to_thread.run_sync(backfill, toml, "--since", "1h")
        assert "by the running pinc" in lines[-1] and f"{len(SCENARIOS)} recovered" in lines[-1]
        await wait_for(lambda: handle.journal.pending() == 0)
        assert len(journal_calls(config.journal_path())) == len(SCENARIOS)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.web_port}") as http:
            r = await http.post("/api/backfill", json={"since": "2026-01-01T00:00:00Z"})
            assert r.status_code == 401
            r = await http.post("/api/backfill", json={"since": "yesterday"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 400 and "ISO 8601" in r.json()["error"]["message"]


async def test_admin_routes_refuse_what_is_not_a_json_object(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim = AmiSimServer([], secret=AMI_SECRET)
    handle = await start_stack(nursery, stack_config(tmp_path, await nursery.start(sim.run)))
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.web_port}") as http:
        for path in ("/api/backfill", "/api/outbox/retry", "/api/outbox/drop"):
            for body in (b"\xbc\xff", b"[1]", b"{", b'{"ids": [0]}', b'{"ids": "1"}',
                         b'{"ids": [83319038741170259755008]}'):
                r = await http.post(path, content=body, headers=auth)
                assert r.status_code == 400, (path, body, r.text)
        r = await http.post("/api/backfill", json={"since": "2026-01-01T00:00:00Z"},
                            headers=auth)
        assert r.status_code == 409  # cdr.source is not set
