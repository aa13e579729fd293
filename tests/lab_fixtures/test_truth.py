"""The lab fixtures are sound: every scenario has its files and an index entry, and its
ground truth (written from how the driver drove each call) agrees with the CDR rows Asterisk
wrote, where the CDR can say: direction, whether a person talked, the caller's number.
A sanity test of the driver; no lab needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.truth import NOTE_KEYS, check_against_cdr, load

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "lab"
TRUTHS = sorted(LAB.glob("*.truth.json"))
INDEX = json.loads((LAB / "index.json").read_text(encoding="utf-8")) if TRUTHS else {}
LEG_RESULTS = {"answered", "no-answer", "busy", "cancelled", "failed"}
KINDS = {"blind", "attended", "redirect", "followme", "crm"}


def test_every_scenario_is_indexed() -> None:
    names = {p.name.removesuffix(".truth.json") for p in TRUTHS}
    assert names == set(INDEX)
    for name in names:
        assert (LAB / f"{name}.ami").stat().st_size > 0
        assert (LAB / f"{name}.cdr.csv").exists()


@pytest.mark.parametrize("path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_truth_is_well_formed(path: Path) -> None:
    truth = load(path)
    entry = INDEX[truth["scenario"]]
    assert (entry["item"], entry["office"]) == (truth["item"], truth["office"])
    assert truth["calls"], "a scenario drives at least one call"
    for call in truth["calls"]:
        assert call["direction"] in ("inbound", "outbound", "internal")
        assert call["status"] in ("completed", "missed", "no-answer", "busy", "failed")
        assert {leg["result"] for leg in call["legs"]} <= LEG_RESULTS
        assert {t["kind"] for t in call["transfers"]} <= KINDS
        assert call["talk_min"] <= call["talk_max"] <= call["duration_max"]
        assert (call["status"] == "completed") == (call["answered_by"] is not None)
        if call["status"] != "completed":
            assert call["talk_max"] == 0 and not call["recording"]
        for key in call["notes"]:
            assert key in NOTE_KEYS or key.endswith("_by"), key


@pytest.mark.parametrize("path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_truth_agrees_with_the_cdr(path: Path) -> None:
    truth = load(path)
    cdr = path.with_name(path.name.replace(".truth.json", ".cdr.csv")).read_text("utf-8")
    assert check_against_cdr(truth, cdr) == []
