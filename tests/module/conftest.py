"""Tests of pinc's vtiger module (packaging/vtiger) without a CRM: its PHP run by ``php``
(Debian's php-cli, which .ci/run installs), its JavaScript in Chromium. The lab tier
(tests/lab/test_module_*.py) runs the same module inside the real vtiger and SalesPlatform."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
MODULE_SRC = ROOT / "packaging" / "vtiger"
MODULE_LIB = MODULE_SRC / "modules" / "Pinc" / "lib"
HARNESS = Path(__file__).with_name("php") / "harness.php"


def php_binary() -> str:
    """``php``; outside CI a machine without it skips these tests, CI must have it."""
    found = shutil.which("php")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("php is missing: .ci/run installs php-cli")
        pytest.skip("php is not installed (apt-get install -y php-cli)")
    return found


@pytest.fixture
def php() -> str:
    return php_binary()


def _spec_file(tmp: Path, spec: dict[str, Any]) -> Path:
    path = tmp / f"spec-{os.urandom(4).hex()}.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PINC_MODULE_LIB": str(MODULE_LIB)}


def _decode(out: bytes, err: bytes, code: int) -> dict[str, Any]:
    if code != 0:
        raise AssertionError(f"php failed ({code}):\n{err.decode()}\n{out.decode()}")
    if err.strip():
        raise AssertionError(f"php wrote to stderr (a notice or warning):\n{err.decode()}")
    answer: dict[str, Any] = json.loads(out)
    return answer


def run_php_sync(php: str, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [php, "-d", "display_errors=stderr", "-d", "error_reporting=-1", str(HARNESS),
         str(_spec_file(tmp, spec))],
        capture_output=True, timeout=60, env=_env(),
    )
    return _decode(done.stdout, done.stderr, done.returncode)


async def run_php(php: str, tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """The harness in a subprocess, while the test's own pinc serves in this trio loop."""
    done = await trio.run_process(
        [php, "-d", "display_errors=stderr", "-d", "error_reporting=-1", str(HARNESS),
         str(_spec_file(tmp, spec))],
        capture_stdout=True, capture_stderr=True, check=False, env=_env(),
    )
    return _decode(done.stdout, done.stderr, done.returncode)
