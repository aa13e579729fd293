"""``pinc run`` refuses a bad journal at start: exit 2 and a message naming the file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import pinc_command, write_config


def run_pinc(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pinc_command("run", "--config", str(config)),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "pinc.db"
    db.write_text("hello, I am a shopping list\n")
    result = run_pinc(write_config(tmp_path, 1, db))
    assert result.returncode == 2, result.stderr
    assert f"journal {db} is not a SQLite database" in result.stderr
    assert "journal.path" in result.stderr
    assert "Traceback" not in result.stderr


def test_directory_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    db = blocker / "sub" / "pinc.db"  # a directory under a regular file
    result = run_pinc(write_config(tmp_path, 1, db))
    assert result.returncode == 2, result.stderr
    assert str(db) in result.stderr and "Traceback" not in result.stderr
