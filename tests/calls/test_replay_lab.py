"""``pinc replay`` of every recorded scenario matches its ground truth (the lab's, #13, and
the kit's Local and PJSIP offices), and docs/calls.md's table of them says so.

The lab's fields and brackets are tests/lab/compare.py's (tests/lab_fixtures runs the same
comparison per fixture, with the table of differences); the kit's are those of
test_replay_local.py and test_replay_pjsip.py.
"""

from __future__ import annotations

import pytest

from .scenario_table import Row, documented, render, rows

ROWS = rows()


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.source}/{r.scenario}" for r in ROWS])
def test_replay_matches_the_ground_truth(row: Row) -> None:
    assert row.match == "yes", f"{row.scenario}: {row.match}"


def test_every_recorded_scenario_is_in_the_table() -> None:
    assert {r.source for r in ROWS} >= {"asterisk-local", "asterisk-pjsip"}
    assert documented() == render(ROWS), (
        "docs/calls.md's scenario table and the fixtures disagree: "
        "python -m tests.calls.scenario_table --write"
    )
