"""``pinc replay`` of every lab fixture matches its ground truth, field by field
(tests/lab/compare.py says which fields are compared and how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.compare import FIXTURES, compare, replay, table
from tests.lab.truth import load

TRUTHS = sorted(FIXTURES.glob("*.truth.json"))


@pytest.mark.parametrize("path", TRUTHS, ids=[p.name.split(".")[0] for p in TRUTHS])
def test_replay_matches_the_ground_truth(path: Path) -> None:
    truth = load(path)
    diffs = compare(truth, replay(path))
    assert not diffs, "\n" + table([(truth["scenario"], d) for d in diffs])
