"""The live lab tier (#13): ``pinc run`` against the lab office while the lab's drivers play
every scenario; pinc's journal must equal each scenario's ground truth, field by field.

One ``pinc run`` for the whole module, logged in to the office like a real deployment.
Each scenario is driven by the lab's own driver (tests/lab/scenario.py: sipp parties, its
own AMI recorder, the truth written from how it drove the calls). Its calls are found in
pinc's journal by the Linkedids its recording shows, and compared with the truth by
tests/lab/compare.py, the comparison ``pinc replay`` passes in CI. A run whose own checks
failed (the truth would not describe what happened, the recorder would not keep it) is
not compared: it fails as a broken run.

    python -m tests.lab.offices start labpjsip
    PINC_LAB=... .venv/bin/python -m pytest tests/lab/test_live_journal.py
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.lab import scenarios  # noqa: F401  (registers every scenario)
from tests.lab.compare import compare, table
from tests.lab.lab import Office, PincRun, find_office, lab_dir, office_config, pinc_run
from tests.lab.scenario import REGISTRY, Scenario, run_scenario
from tests.lab.truth import load

OFFICE = "labpjsip"
NAMES = sorted(name for name, sc in REGISTRY.items() if sc.office == OFFICE)
_LINKEDID = re.compile(rb"^Linkedid: (\S+)\r$", re.M)


@pytest.fixture(scope="module")
def office() -> Office:
    if lab_dir() is None:
        pytest.skip("the lab tier needs PINC_LAB (see tests/lab/README.md)")
    found = find_office(OFFICE)
    if found is None:
        pytest.skip(f"no {OFFICE} office in $PINC_LAB (python -m tests.lab.offices start)")
    return found


@pytest.fixture(scope="module")
def run(office: Office, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PincRun]:
    tmp = tmp_path_factory.mktemp("pinc")
    with pinc_run(office_config(office, tmp), tmp) as running:
        time.sleep(1.0)  # logged in and resynced before the first call
        yield running


def _linkedids(transcript: Path) -> set[str]:
    return {m.decode() for m in _LINKEDID.findall(transcript.read_bytes())}


def _journal_calls(run: PincRun, links: set[str], count: int) -> list[dict[str, Any]]:
    """The scenario's calls in pinc's journal, once all of them ended (pinc ends a call a
    few seconds after its last hangup), in the order they started."""
    deadline = time.monotonic() + 30
    while True:
        calls = [
            c
            for c in run.calls("--limit", "10000")
            if not str(c.get("end_reason") or "").startswith("merged")
            and ({c["linkedid"], *(c.get("linkedids") or [])} & links)
        ]
        done = [c for c in calls if c["status"] not in ("ringing", "answered")]
        if (len(done) >= count and len(done) == len(calls)) or time.monotonic() > deadline:
            return sorted(done, key=lambda c: (str(c["started_at"]), str(c["id"])))
        time.sleep(0.5)


@pytest.mark.parametrize("name", NAMES)
def test_the_journal_equals_the_ground_truth(
    office: Office, run: PincRun, tmp_path: Path, name: str
) -> None:
    sc: Scenario = REGISTRY[name]
    summary = trio.run(run_scenario, sc, dict(office.raw), tmp_path)
    failed = [c for c in summary["checks"] if not c["ok"]]
    assert summary["passed"], f"the drive itself failed (not a pinc result): {failed}"
    truth = load(tmp_path / f"{name}.truth.json")
    calls = _journal_calls(run, _linkedids(tmp_path / f"{name}.ami"), len(truth["calls"]))
    diffs = compare(truth, calls)
    assert not diffs, (
        "\n"
        + table([(name, d) for d in diffs])
        + "\n"
        + json.dumps(calls, ensure_ascii=False)[:4000]
    )
