"""The pjsip transcripts against their expected.json (written from how each was driven)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pinc.calls.replay import replay_calls
from pinc.config import Config

from .conftest import PJSIP

CASES = sorted(PJSIP.glob("*.expected.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.name.split(".")[0] for p in CASES])
def test_pjsip_expected(path: Path, config: Config) -> None:
    expected: list[dict[str, Any]] = json.loads(path.read_text())["calls"]
    transcript = PJSIP / path.name.replace(".expected.json", ".ami")
    got = replay_calls(config, [transcript.read_bytes()])
    assert len(got) == len(expected)
    for g, w in zip(got, expected, strict=True):
        for key in ("direction", "from", "to", "status", "answered_by"):
            assert g[key] == w[key], key
        assert [{"ext": x["ext"], "result": x["result"]} for x in g["legs"]] == w["legs"]
        assert [{k: t[k] for k in ("kind", "from", "to")} for t in g["transfers"]] == w["transfers"]
        assert w["talk_min"] <= g["talk"] <= w["talk_max"]
        assert bool(g["recording"]) is w["recording"]
        if w["recording"]:
            assert not g["recording"].startswith("/")
