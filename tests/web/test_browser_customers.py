"""The dashboard shows the CRM's name for a caller pinc knows, linked to the CRM record
(real headless Chromium, a recorded call replayed; the names come as ``customer`` in /ws)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.web.harness import TOKEN, start_pipeline, transcript
from tests.web.test_browser import ARGS, ARTIFACTS, CHROMIUM, _need_chromium

pytestmark = pytest.mark.browser
VERA = {"name": "Vera Caller", "type": "Contacts", "id": "12x4",
        "url": "http://crm.example/index.php?module=Contacts&view=Detail&record=4"}


class KnownCustomers:
    """What pinc.crm.customers knows: the caller of the recorded call is Vera."""

    def of(self, call: Mapping[str, Any]) -> dict[str, str] | None:
        number = call.get("from") if call.get("direction") == "inbound" else call.get("to")
        return VERA if number == "79035550011" else None


async def test_dashboard_names_the_customer(nursery: trio.Nursery, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    env, ami = await start_pipeline(nursery, tmp_path)
    env.services.customers = KnownCustomers()
    events = transcript("pjsip_inbound_answered")
    token = trio.lowlevel.current_trio_token()
    base = env.base

    def browse() -> list[str]:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{base}/")
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                expect(page.locator("#chip-feed")).to_have_class("chip ok", timeout=10_000)
                trio.from_thread.run(ami.play, events[: len(events) // 2], trio_token=token)
                card = page.locator("#live .card").first
                expect(card.locator(".party")).to_have_text("Vera Caller", timeout=10_000)
                link = card.locator(".party a.crm-link")
                expect(link).to_have_attribute("href", VERA["url"])
                expect(link).to_have_attribute("rel", "noopener noreferrer")
                expect(card.locator(".line")).to_contain_text("Contact · 79035550011")
                ARTIFACTS.mkdir(exist_ok=True)
                page.wait_for_timeout(400)  # let the card's fade-in finish for the picture
                page.screenshot(path=str(ARTIFACTS / "dashboard-customer.png"), full_page=True)
                trio.from_thread.run(ami.play, events[len(events) // 2 :], trio_token=token)
                row = page.locator("#recent tbody tr").first
                expect(row).to_contain_text("Vera Caller", timeout=10_000)
                expect(row).to_contain_text("79035550011")
                return errors
            finally:
                browser.close()

    with trio.fail_after(90):
        errors = await trio.to_thread.run_sync(browse)
    assert errors == []
