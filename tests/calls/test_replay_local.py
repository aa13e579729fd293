"""``pinc replay`` on every asterisk-local scenario, field by field against hand-written calls."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pinc.calls.model import call_id_for
from pinc.calls.replay import replay_calls
from pinc.cli import main
from pinc.config import Config

from .conftest import EXPECTED, LOCAL, expected_calls, project

SCENARIOS = sorted(p.name.removesuffix(".calls.json") for p in EXPECTED.glob("*.calls.json"))


def test_every_local_scenario_has_an_expected_file() -> None:
    transcripts = {p.stem for p in LOCAL.glob("*.ami")}
    assert transcripts == set(SCENARIOS)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "concurrent_load"])
def test_cli_replay_matches_expected(scenario: str) -> None:
    result = CliRunner().invoke(main, ["replay", str(LOCAL / f"{scenario}.ami")], env={})
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    want = expected_calls(scenario)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g["id"] == call_id_for(w["linkedid"])
        assert project(g) == w


def test_concurrent_load_all_fifty_calls(config: Config) -> None:
    got = replay_calls(config, [(LOCAL / "concurrent_load.ami").read_bytes()])
    want = {c["linkedid"]: c for c in expected_calls("concurrent_load")}
    assert len(got) == 50
    by_link = {c["linkedid"]: project(c) for c in got}
    assert set(by_link) == set(want)
    for link, w in want.items():
        assert by_link[link] == w, link


def test_replay_subprocess_prints_json_lines() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pinc",
            "replay",
            str(LOCAL / "inbound_answered.ami"),
            str(LOCAL / "outbound_answered.ami"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["direction"] for x in lines] == ["inbound", "outbound"]


def test_replay_changes_flag_prints_every_change() -> None:
    result = CliRunner().invoke(
        main, ["replay", "--changes", str(LOCAL / "blind_transfer.ami")], env={}
    )
    assert result.exit_code == 0, result.output
    kinds = [json.loads(line)["type"] for line in result.output.splitlines()]
    assert kinds[0] == "call.started"
    assert kinds[-1] == "call.ended"
    for kind in ("call.ringing", "call.answered", "call.transferred", "call.recording"):
        assert kind in kinds
    assert kinds.count("call.ended") == 1
