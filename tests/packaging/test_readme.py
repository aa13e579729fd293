"""The README's first screen: what pinc is, then exactly two set-up commands, which CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/pinc demo"
TESTS = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"


def first_screen() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## ", 1)[0]


def test_first_screen_has_exactly_the_two_commands() -> None:
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", first_screen(), re.S)
    assert [b.strip() for b in blocks] == [DEMO, TESTS]


def test_ci_runs_both_commands_as_written() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"\n{TESTS}\n" in ci, "the test command must be a line of .ci/run on its own"
    assert f'"{DEMO}"' in ci, ".ci/run must run the demo command as written"


def test_readme_links_only_existing_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+\.md)\)", readme):
        assert (ROOT / target).exists(), f"README links a missing {target}"
