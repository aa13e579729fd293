"""Shared by the lab tests of pinc's vtiger module (tests/lab/test_module_*.py): the zip,
where the CRM expects pinc, signing in, the CRM's own PHP for the uninstall script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from tests.lab.lab import ROOT, Crm, lab_dir

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = ROOT / "tests" / "artifacts"
ANNA = "+79161234567"  # the seeded Contact "Anna Customer", owned by manager1 (101)
T = TypeVar("T")


def need_browser() -> None:
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        pytest.skip("Chromium is missing")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright is not installed")


def build_zip(tmp: Path) -> Path:
    done = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "vtiger" / "build.py"), "--out", str(tmp)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return Path(done.stdout.strip())


def pinc_port(crm: Crm) -> int:
    """Where the CRM's PBXManager expects pinc (its App URL, PINC_LISTEN_URL in lab.env)."""
    return urlsplit(crm.env["PINC_LISTEN_URL"]).port or 80


def admin_password(crm: Crm) -> str:
    return crm.env["VTIGER_ADMIN_PASSWORD" if crm.kind == "vtiger" else "SP_ADMIN_PASSWORD"]


def user_password(crm: Crm, user: str) -> str:
    prefix = "VTIGER" if crm.kind == "vtiger" else "SP"
    return crm.env[f"{prefix}_{user.upper()}_PASSWORD"]


def crm_config(crm: Crm) -> dict[str, Any]:
    """pinc's [crm] section for a lab CRM."""
    return {
        "profile": crm.kind,
        "url": crm.url,
        "secret": crm.secret,
        "username": crm.admin_user,
        "access_key": crm.admin_access_key,
        "timezone": crm.default_timezone,
    }


def uninstall(crm: Crm) -> str:
    """``php modules/Pinc/uninstall.php`` in the CRM's folder, with the CRM's own PHP."""
    lab = lab_dir()
    assert lab is not None
    home = lab / crm.kind
    php = crm.env.get("SP_PHP", "php") if crm.kind == "salesplatform" else "php"
    done = subprocess.run([php, "-c", str(home / "php.ini"), "modules/Pinc/uninstall.php"],
                          cwd=home / "www", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def sign_in(page: Any, crm: Crm, user: str) -> None:
    """The CRM's login form in Chromium; returns once the card's socket is connected."""
    page.goto(f"{crm.url}/index.php")
    page.fill("#loginFormDiv #username", user)
    page.fill("#loginFormDiv #password", user_password(crm, user))
    page.locator("#loginFormDiv #username").press("Enter")
    page.wait_for_function("window.PincCard && window.PincCard.mode === 'socket'",
                           timeout=30_000)


def wait_for(what: str, check: Callable[[], T], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
