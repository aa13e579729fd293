"""The live call card's rules, in Chromium, on the calls real Asterisk recordings make.

pinc.js's ``PincCardLogic.viewOf(call, ext)`` decides what an employee's card shows for a
call. Here it is fed every CallChange ``pinc replay`` derives from recorded transcripts, and
the card states must follow how each call was driven (fixtures' README): who rang, who
answered, who took the call over. The DOM, the socket and the module's actions are tested
in the real vtiger (tests/lab/test_module_popup.py).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pinc.calls.replay import replay_changes
from pinc.config import load_config
from tests.module.conftest import MODULE_SRC

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SCRIPT = MODULE_SRC / "modules" / "Pinc" / "resources" / "pinc.js"
PJSIP = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-pjsip"


def _need_chromium() -> None:
    missing = None
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright for Python is not installed"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture(scope="module")
def logic() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_content("<html><body></body></html>")
        page.add_script_tag(path=str(SCRIPT))  # no jQuery here: only the pure part runs
        assert page.evaluate("typeof window.PincCardLogic.viewOf") == "function"
        assert page.evaluate("window.PincCard === undefined")
        yield page
        assert errors == []
        browser.close()


def states(page: Any, scenario: str, ext: str) -> list[str | None]:
    """The card's state for ``ext`` after each change of the scenario's replay."""
    raw = (PJSIP / f"{scenario}.ami").read_bytes()
    calls = [c.call for c in replay_changes(load_config(None, env={}), [raw])]
    views = page.evaluate(
        "([calls, ext]) => calls.map(c => window.PincCardLogic.viewOf(c, ext))",
        [json.loads(json.dumps(calls)), ext],
    )
    return [v["state"] if v else None for v in views]


# (change kinds, for reading): started, ringing 101, ringing 102, answered (101), recording, ended
def test_queue_call_rings_both_then_only_the_answerer_talks(logic: Any) -> None:
    assert states(logic, "pjsip_inbound_answered", "101") == [
        None, "ringing", "ringing", "talking", "talking", None]
    # 102 rang with 101; once 101 answered, 102's phone is quiet though its leg stays open
    assert states(logic, "pjsip_inbound_answered", "102") == [
        None, None, "ringing", None, None, None]


# started (101 rings), answered, recording, transferred, ringing 103, answered (103), ended
def test_blind_transfer_moves_the_card_to_the_target(logic: Any) -> None:
    assert states(logic, "pjsip_blind_transfer", "101") == [
        "ringing", "talking", "talking", "talking", None, None, None]
    assert states(logic, "pjsip_blind_transfer", "103") == [
        None, None, None, None, "ringing", "talking", None]


# started (101 rings), answered, recording, held (101's phone holds the caller to consult),
# ringing 103 (consultation), transferred, ended
def test_attended_transfer_moves_the_card_once_completed(logic: Any) -> None:
    assert states(logic, "pjsip_attended_transfer", "101") == [
        "ringing", "talking", "talking", "hold", "hold", None, None]
    # the caller was held by 101, not by 103: 103's card says talking once it has the call
    assert states(logic, "pjsip_attended_transfer", "103") == [
        None, None, None, None, "ringing", "talking", None]


# click-to-call: started (101's phone rings first), answered (the number answered), recording, ended
def test_click_to_call_shows_as_calling_then_talking(logic: Any) -> None:
    assert states(logic, "pjsip_outbound_answered", "101") == [
        "calling", "talking", "talking", None]


def test_missed_call_rings_and_goes(logic: Any) -> None:
    seen = states(logic, "pjsip_inbound_missed", "101")
    assert "ringing" in seen and seen[-1] is None and "talking" not in seen


def test_the_card_shows_the_customer_and_offers_transfer_only_while_talking(logic: Any) -> None:
    raw = (PJSIP / "pjsip_inbound_answered.ami").read_bytes()
    calls = [c.call for c in replay_changes(load_config(None, env={}), [raw])]
    views = logic.evaluate(
        "(calls) => calls.map(c => window.PincCardLogic.viewOf(c, '101'))",
        json.loads(json.dumps(calls)),
    )
    assert views[1]["peer"] == "79035550011" and views[1]["canTransfer"] is False
    assert views[3]["canTransfer"] is True
    assert logic.evaluate("window.PincCardLogic.showNumber('79035550011')") == "+79035550011"
    assert logic.evaluate("window.PincCardLogic.showNumber('102')") == "102"
