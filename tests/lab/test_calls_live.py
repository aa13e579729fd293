"""Live: ``pinc run`` against the project's lab office while the driver makes every recorded
shape happen, and the journal equal to the ground truth, field by field.

Per scenario the driver records it exactly as for the fixtures (tests/lab/scenario.py) and
writes its truth from how it drove the calls; the test then takes the journal's calls whose
Linkedid appeared in the scenario's AMI stream (``pinc calls --json``) and compares them with
tests/lab/compare.py, the same comparison the replay of the fixtures gets. A difference
fails the test with the table of the fields that differ.

Needs ``PINC_LAB`` (and the lab's ports in the environment: ``source $PINC_LAB/ports.env``);
the office variants are started here through the kit (tests/lab/offices.py) and stopped
again if this module started them. Skips cleanly without a lab. Takes about 20 minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import trio

from pinc.config import PbxConfig
from tests.lab import offices
from tests.lab import scenarios as _registered  # noqa: F401  (registers every scenario)
from tests.lab.compare import compare, table
from tests.lab.lab import PincRun, find_office, office_config
from tests.lab.scenario import REGISTRY, Scenario, run_scenario


def _live(sc: Scenario) -> Scenario | None:
    """A scenario as the live tests drive it: the AttendedTransfer race cannot be chosen, so
    its two recordings become one live scenario that takes whichever form happens."""
    if sc.name == "atxfer_race_missing":
        return None
    if sc.name == "atxfer_race_present":
        return replace(sc, name="atxfer_race", params={**sc.params, "missing": None})
    return sc


SCENARIOS = sorted((s for s in map(_live, REGISTRY.values()) if s),
                   key=lambda s: (s.office, s.item, s.name))


@pytest.fixture(scope="module")
def lab_office(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """An office variant, started for this module (and stopped after, if we started it)."""
    name: str = request.param
    why = offices.unavailable()
    if why:
        pytest.skip(why)
    was_running = offices.office_json(name) is not None and find_office(name) is not None
    office = offices.start(name)
    yield office
    if not was_running:
        offices.stop(name)


@pytest.fixture(scope="module")
def pinc(lab_office: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        PincRun]:
    """``pinc run`` logged in to the office, for every scenario of that office."""
    office = find_office(lab_office["name"])
    assert office is not None, f"office {lab_office['name']} does not answer on AMI"
    tmp = tmp_path_factory.mktemp(f"pinc-{office.name}")
    pbx: dict[str, Any] = {"extension_pattern": r"^\d{3}$"}
    if "timezone" in {f.name for f in fields(PbxConfig)}:
        pbx["timezone"] = offices.running_tz(lab_office)
    run = PincRun(office_config(office, tmp, pbx=pbx), tmp).start()
    try:
        _wait_logged_in(run)
        yield run
    finally:
        code = run.stop()
        assert code == 0, f"pinc run exited {code}:\n{run.log()[-4000:]}"


def _wait_logged_in(run: PincRun, timeout: float = 30) -> None:
    """Until pinc says it logged in to AMI: calls driven before that would be lost to it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "AMI logged in" in run.log():
            return
        time.sleep(0.2)
    raise AssertionError(f"pinc run did not log in to AMI in {timeout} s:\n{run.log()}")


def _journal_calls(run: PincRun, linkedids: set[str], want: int,
                   timeout: float = 30) -> list[dict[str, Any]]:
    """The journal's calls of these Linkedids, once they have all ended (in start order)."""
    deadline = time.monotonic() + timeout
    calls: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        calls = [c for c in run.calls("--limit", "1000")
                 if c["linkedid"] in linkedids or set(c.get("linkedids") or ()) & linkedids]
        if len(calls) >= want and all(c.get("ended_at") for c in calls):
            break
        time.sleep(0.5)
    return sorted(calls, key=lambda c: (str(c.get("started_at") or ""), str(c.get("id"))))


@pytest.mark.parametrize(
    ("lab_office", "sc"), [pytest.param(s.office, s, id=s.name) for s in SCENARIOS],
    indirect=["lab_office"])
def test_live_journal_matches_the_ground_truth(lab_office: dict[str, Any], sc: Scenario,
                                               pinc: PincRun, tmp_path: Path) -> None:
    # the driver runs in a trio loop of its own; the comparison stays outside it, so a
    # difference fails as itself, not wrapped in the loop's exception group
    summary = trio.run(run_scenario, sc, lab_office, tmp_path)
    bad = [c for c in summary["checks"] if not c["ok"]]
    if bad:
        # the driver could not make the call happen as planned (a loaded machine): the
        # truth would not describe it, so there is nothing to compare; say so plainly
        pytest.fail(f"the driver's own checks failed, not pinc: {bad}")
    truth = json.loads((tmp_path / f"{sc.name}.truth.json").read_text(encoding="utf-8"))
    linkedids = _linkedids(tmp_path / f"{sc.name}.ami")
    calls = _journal_calls(pinc, linkedids, len(truth["calls"]))
    diffs = compare(truth, calls)
    assert not diffs, "\n" + table([(sc.name, d) for d in diffs])


def _linkedids(transcript: Path) -> set[str]:
    out = set()
    for line in transcript.read_bytes().split(b"\r\n"):
        if line.startswith(b"Linkedid: "):
            out.add(line[10:].decode())
    return out

