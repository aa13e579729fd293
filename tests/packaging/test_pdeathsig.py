"""PR_SET_PDEATHSIG: a child whose parent is SIGKILLed gets SIGTERM and goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinc.runtime.pdeathsig import die_with_parent_if_frozen, is_frozen

GRANDCHILD = """
import signal, sys, time
from pinc.runtime.pdeathsig import set_parent_death_signal
assert set_parent_death_signal(signal.SIGTERM)
print("armed", flush=True)
time.sleep(60)
"""

PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {GRANDCHILD!r}], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "armed"
print(child.pid, flush=True)
child.wait()
"""


def test_not_frozen_is_a_no_op() -> None:
    assert not is_frozen()
    assert die_with_parent_if_frozen() is False


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie waiting for init to reap it is dead too


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_child_dies_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        grandchild = int(parent.stdout.readline())
        assert not _gone(grandchild)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(grandchild) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(grandchild), "the child outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait()
        try:
            os.kill(grandchild, signal.SIGKILL)
        except (ProcessLookupError, UnboundLocalError, NameError):
            pass
