"""Shared helpers for the tracker tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pinc.config import Config, load_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOCAL = FIXTURES / "asterisk-local"
PJSIP = FIXTURES / "asterisk-pjsip"
EXPECTED = FIXTURES / "expected"

CONTRACT = (
    "linkedid",
    "direction",
    "status",
    "from",
    "to",
    "started_at",
    "answered_at",
    "ended_at",
    "duration",
    "talk",
    "answered_by",
    "recording",
)


@pytest.fixture
def config() -> Config:
    return load_config(None, env={})


def expected_calls(scenario: str) -> list[dict[str, Any]]:
    data = json.loads((EXPECTED / f"{scenario}.calls.json").read_text())
    calls: list[dict[str, Any]] = data["calls"]
    return calls


def project(call: dict[str, Any]) -> dict[str, Any]:
    """The contract fields of a call, legs and transfers reduced to what is compared."""
    out = {k: call[k] for k in CONTRACT}
    out["legs"] = [{"ext": x["ext"], "result": x["result"]} for x in call["legs"]]
    out["transfers"] = [
        {"kind": t["kind"], "from": t["from"], "to": t["to"]} for t in call["transfers"]
    ]
    return out
