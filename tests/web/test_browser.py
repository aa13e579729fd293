"""The dashboard in a real headless Chromium while a recorded call is replayed.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and Playwright for Python. Without
Chromium the test is skipped, unless ``CI`` is set: then it fails.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.web.harness import TOKEN, start_pipeline, transcript

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = pytest.mark.browser


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
            pytest.fail(f"browser test cannot run in CI: {missing}")
        pytest.skip(missing)


HISTORY = [
    # (minutes ago, direction, status, from, to, answered_by, talk, duration, legs, transfers)
    (3, "inbound", "completed", "79035550011", "74951230000", "102", 184, 196, ["101", "102"], []),
    (9, "outbound", "completed", "101", "79161234567", "101", 62, 75, [], []),
    (14, "inbound", "missed", "79260001122", "74951230000", None, 0, 21, ["101", "102"], []),
    (22, "outbound", "busy", "103", "79169999999", None, 0, 6, [], []),
    (31, "inbound", "completed", "79857770033", "74951230101", "103", 305, 312, ["101"],
     [{"kind": "blind", "from": "101", "to": "103"}]),
    (48, "internal", "completed", "102", "104", "104", 41, 49, ["104"], []),
    (55, "inbound", "missed", "79031234400", "74951230000", None, 0, 34, ["101", "102"], []),
]


async def _history(env: Any) -> None:
    """Finished calls with real-looking durations for the "recent calls" table."""
    import time

    from pinc.calls.model import CallChange, iso

    now = time.time()
    changes = []
    for i, (ago, direction, status, frm, to, by, talk, dur, legs, transfers) in enumerate(
        HISTORY
    ):
        started = now - ago * 60
        recording = f"rec-{i}.wav" if talk else None
        if recording:
            (env.recordings / recording).write_bytes(b"RIFF" + b"\x00" * 4000)
        call = {
            "id": f"hist{i:02d}", "linkedid": f"1795480000.{i}", "direction": direction,
            "status": status, "from": frm, "to": to, "started_at": iso(started),
            "answered_at": iso(started + dur - talk) if talk else None,
            "ended_at": iso(started + dur), "duration": dur, "talk": talk, "answered_by": by,
            "legs": [{"ext": x, "result": "answered" if x == by else "cancelled"} for x in legs],
            "transfers": transfers, "recording": recording,
        }
        changes.append(CallChange("call.ended", call["id"], iso(started + dur) or "", call))
    await env.put(changes)


def _split(events: list[bytes]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The transcript cut after the phones start ringing and after the answer
    (found with a dry run of the pure tracker)."""
    from pinc.ami.protocol import AMIConnection, Message
    from pinc.calls.tracker import Tracker
    from pinc.config import load_config

    tracker = Tracker(load_config(None, env={}).pbx)
    cuts: dict[str, int] = {}
    for i, raw in enumerate(events):
        conn = AMIConnection(expect_banner=False)
        conn.feed(raw)
        msg = conn.next_message()
        assert isinstance(msg, Message)
        for ch in tracker.feed(msg, 0.0):
            cuts.setdefault(ch.kind, i + 1)
    ring, answer = cuts["call.ringing"], cuts["call.answered"]
    return events[:ring], events[ring:answer], events[answer:]


@pytest.mark.xfail(
    strict=False,
    reason="open race: under load the ended call's row sometimes never gets talk time "
    "and recording (seen 2 of ~12 busy runs); see CHANGELOG 'Known issues'",
)
async def test_dashboard_shows_a_call_appear_and_end(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    env, ami = await start_pipeline(nursery, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    await _history(env)
    ringing_part, answer_part, hangup_part = _split(transcript("pjsip_inbound_answered"))
    base = env.base
    token = trio.lowlevel.current_trio_token()

    def play(events: list[bytes]) -> None:
        trio.from_thread.run(ami.play, events, trio_token=token)

    def browse() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{base}/")  # the sign-in form: POST /login opens a session
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                assert "token" not in page.url
                expect(page.locator("#chip-feed")).to_have_class("chip ok", timeout=10_000)
                expect(page.locator("#recent tbody tr")).to_have_count(len(HISTORY), timeout=10_000)
                # The call rings...
                play(ringing_part)
                card = page.locator("#live .card:not(.ended)").first
                expect(card).to_be_visible(timeout=10_000)
                seen["first_status"] = card.get_attribute("data-status")
                # ...is answered...
                expect(card).to_have_attribute("data-status", "ringing")
                expect(card.locator(".who")).to_contain_text("ringing")
                page.wait_for_timeout(400)  # let the card's fade-in finish for the picture
                page.screenshot(path=str(ARTIFACTS / "dashboard-ringing.png"), full_page=True)
                play(answer_part)
                expect(card).to_have_attribute("data-status", "answered", timeout=10_000)
                expect(card.locator(".who")).to_contain_text("101 talking")
                timer = card.locator(".timer")
                expect(timer).to_have_text(re.compile(r"^\d+:\d\d$"))
                expect(timer).not_to_have_text(timer.inner_text(), timeout=5_000)  # it ticks
                page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"), full_page=True)
                # ...and ends: the card goes, the call tops the recent list.
                play(hangup_part)
                expect(page.locator("#live .card:not(.ended)")).to_have_count(0, timeout=10_000)
                first_row = page.locator("#recent tbody tr").first
                expect(first_row).to_contain_text("Completed", timeout=10_000)
                expect(first_row.locator("button.play")).to_be_visible(timeout=15_000)
                expect(page.locator("#live .card")).to_have_count(0, timeout=10_000)
                page.screenshot(path=str(ARTIFACTS / "dashboard-ended.png"), full_page=True)
                seen["errors"] = errors
            finally:
                browser.close()
        return seen

    with trio.fail_after(90):
        seen = await trio.to_thread.run_sync(browse)
    assert seen["first_status"] == "ringing"
    assert seen["errors"] == []
    assert (ARTIFACTS / "dashboard-ended.png").stat().st_size > 10_000
