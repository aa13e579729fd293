"""Shared helpers of the reliability suite: the figures it collects, the --run-slow switch.

The ``--run-slow`` option itself is declared in tests/conftest.py (pytest only reads
options from the top conftest). Each test records its figures with ``record(name, value)``;
they are printed at the end of the run and, when ``PINC_RELIABILITY_FIGURES`` names a
file, written there as JSON (docs/reliability.md quotes a manual run).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

FIGURES: dict[str, Any] = {}


def record(name: str, value: Any) -> None:
    """Keep one figure for the summary (a later value under the same name wins)."""
    FIGURES[name] = value


def add(name: str, value: int) -> None:
    """Add to a counted figure (inputs tried, faults survived)."""
    FIGURES[name] = int(FIGURES.get(name, 0)) + value


def slow_enabled(config: pytest.Config) -> bool:
    try:
        return bool(config.getoption("--run-slow"))
    except ValueError:  # tests/conftest.py not loaded (run from another rootdir)
        return False


@pytest.fixture
def run_slow(request: pytest.FixtureRequest) -> bool:
    return slow_enabled(request.config)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("pinc reliability figures")
    for name in sorted(FIGURES):
        terminalreporter.write_line(f"{name}: {FIGURES[name]}")
    target = os.environ.get("PINC_RELIABILITY_FIGURES")
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            json.dump(FIGURES, fh, indent=2, sort_keys=True, default=str)
