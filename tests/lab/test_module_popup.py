"""pinc's vtiger module live, in Chromium, in the real vtiger 8.2 on a PJSIP office.

1. manager1 (extension 101) signs in to vtiger;
2. an outside call from Anna's number (+79161234567) rings phone 101 (sipp);
3. the card shows "Anna Customer" and turns to talking when 101 answers;
4. Transfer to 102 from the card: Asterisk bridges the caller with 102;
5. the call's row in vtiger ends owned by manager2.

The same in SalesPlatform 7.2 ("Звонки"). Screenshots go to tests/artifacts/module_popup_*.png.
Needs PINC_LAB with the PJSIP office and the CRM up; skips cleanly otherwise (see
tests/lab/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab import amiquery
from tests.lab.crmweb import CrmWeb
from tests.lab.lab import Crm, Office, PincRun, office_config
from tests.lab.modulelab import (
    ANNA,
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    admin_password,
    build_zip,
    crm_config,
    need_browser,
    pinc_port,
    sign_in,
    wait_for,
)
from tests.lab.sipphones import DIRECT, SipPhones

pytestmark = pytest.mark.browser


@pytest.fixture
def pinc_for(tmp_path: Path) -> Iterator[Any]:
    """``pinc run`` on the port the CRM's PBXManager calls, for an office and a CRM."""
    runs: list[PincRun] = []

    def start(office: Office, crm: Crm) -> PincRun:
        config = office_config(office, tmp_path, web={"listen": f"127.0.0.1:{pinc_port(crm)}"},
                               crm=crm_config(crm))
        run = PincRun(config, tmp_path / f"pinc-{crm.kind}").start()
        runs.append(run)
        return run

    yield start
    for run in runs:
        code = run.stop()
        assert code == 0, run.log()[-3000:]


def crm_row(crm: Crm, call_id: str) -> list[dict[str, str]]:
    return crm.sql(
        "SELECT p.pbxmanagerid, p.direction, p.callstatus, p.customernumber, p.user,"
        " c.smownerid, u.user_name AS owner FROM vtiger_pbxmanager p"
        " JOIN vtiger_crmentity c ON c.crmid = p.pbxmanagerid AND c.deleted = 0"
        " LEFT JOIN vtiger_users u ON u.id = c.smownerid"
        f" WHERE p.sourceuuid = '{call_id}'"
    )


@pytest.mark.parametrize("kind", ["vtiger", "salesplatform"])
def test_card_rings_shows_anna_and_transfers_to_manager2(
    pjsip_office: Office, kind: str, request: pytest.FixtureRequest, pinc_for: Any,
    tmp_path: Path,
) -> None:
    vtiger: Crm = request.getfixturevalue(kind)  # SalesPlatform: the same module, its rows
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    with CrmWeb(vtiger.url) as web:  # the module as an administrator imports it
        web.login(vtiger.admin_user, admin_password(vtiger))
        web.import_module(build_zip(tmp_path))
    run = pinc_for(pjsip_office, vtiger)
    phones = SipPhones(pjsip_office, tmp_path / "sipp")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # 1. manager1 signs in; the card's socket connects to pinc with a module ticket.
            sign_in(page, vtiger, "manager1")
            # 2. Anna calls 101's direct number; 101 rings 4 s, then answers.
            phones.phone("101", ring_ms=4000)
            phones.phone("102", ring_ms=2000)
            caller = phones.call(ANNA, DIRECT + "01", talk_ms=25_000)
            card = page.locator("#pinc-cards .pinc-card")
            expect(card).to_have_attribute("data-state", "ringing", timeout=15_000)
            expect(card.locator(".pinc-peer")).to_have_text(ANNA)
            # 3. The CRM's own lookup names the caller.
            expect(card.locator(".pinc-name")).to_have_text("Anna Customer", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / f"module_popup_{kind}_1_ringing.png"))
            expect(card).to_have_attribute("data-state", "talking", timeout=15_000)
            expect(card.locator(".pinc-owner")).to_contain_text("(101)")
            call_id = card.get_attribute("data-call-id")
            assert call_id
            page.screenshot(path=str(ARTIFACTS / f"module_popup_{kind}_2_talking.png"))
            # 4. Transfer to manager2 (102), blind, from the card.
            card.locator(".pinc-colleague").select_option("102")
            with page.expect_response(lambda r: "action=Transfer" in r.url) as answer:
                card.locator(".pinc-do-transfer").click()
            assert answer.value.json()["result"] == {
                "ok": True, "call": call_id, "to": "102", "mode": "blind"}
            page.screenshot(path=str(ARTIFACTS / f"module_popup_{kind}_3_transferred.png"))
            # Asterisk itself: the caller's channel is now bridged with phone 102.
            bridged = wait_for("the caller bridged with 102",
                               lambda: amiquery.bridged_with(pjsip_office, "PJSIP/trunk-"), 20)
            assert any(ch.startswith("PJSIP/102-") for ch in bridged), bridged
            # 101 is out of the call: its card goes.
            expect(page.locator(f'.pinc-card[data-call-id="{call_id}"]')).to_have_count(
                0, timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / f"module_popup_{kind}_4_after.png"))
            assert errors == []
            browser.close()
        caller.wait(60)
        # 5. The call ends; its row in the CRM is owned by manager2 (SalesPlatform keeps one
        # row per user: manager1's and manager2's).
        rows = wait_for("the call's row owned by manager2", lambda: [
            r for r in crm_row(vtiger, call_id) if r["owner"] == "manager2"], 60)
        assert rows[0]["direction"] == "inbound"
        (journal,) = [c for c in run.calls() if c["id"] == call_id]
        assert journal["answered_by"] == "102"
        assert [t["kind"] for t in journal["transfers"]] == ["crm"]
    finally:
        phones.stop()


def test_click_to_call_shows_in_the_card_window(
    pjsip_office: Office, vtiger: Crm, pinc_for: Any, tmp_path: Path
) -> None:
    """vtiger's own click-to-call on Anna's Contact page: pinc originates, 101's phone rings
    first, then the carrier answers; the card window (view=Card) follows: calling, talking,
    gone when the carrier hangs up."""
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    with CrmWeb(vtiger.url) as web:
        web.login(vtiger.admin_user, admin_password(vtiger))
        web.import_module(build_zip(tmp_path))
    (anna,) = vtiger.sql(
        "SELECT c.contactid FROM vtiger_contactdetails c JOIN vtiger_crmentity e"
        " ON e.crmid = c.contactid AND e.deleted = 0"
        " WHERE c.firstname = 'Anna' AND c.lastname = 'Customer'")
    run = pinc_for(pjsip_office, vtiger)
    phones = SipPhones(pjsip_office, tmp_path / "sipp")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            sign_in(page, vtiger, "manager1")
            window = context.new_page()
            window.set_viewport_size({"width": 420, "height": 320})
            window.goto(f"{vtiger.url}/index.php?module=Pinc&view=Card")
            window.wait_for_function("window.PincCard && window.PincCard.mode === 'socket'",
                                     timeout=30_000)
            expect(window.locator(".pinc-window-title")).to_contain_text("(101)")
            phones.phone("101", ring_ms=2000)
            phones.carrier(ring_ms=2000, talk_ms=6000)
            page.goto(f"{vtiger.url}/index.php?module=Contacts&view=Detail"
                      f"&record={anna['contactid']}")
            page.locator(".phoneField").first.click()  # vtiger's click-to-call link
            card = window.locator("#pinc-cards .pinc-card")
            expect(card).to_have_attribute("data-state", "calling", timeout=15_000)
            expect(card.locator(".pinc-peer")).to_have_text(ANNA)
            expect(card.locator(".pinc-name")).to_have_text("Anna Customer", timeout=10_000)
            window.screenshot(path=str(ARTIFACTS / "module_card_window_calling.png"))
            expect(card).to_have_attribute("data-state", "talking", timeout=20_000)
            window.screenshot(path=str(ARTIFACTS / "module_card_window_talking.png"))
            expect(card).to_have_count(0, timeout=30_000)  # the carrier hung up
            expect(window.locator(".pinc-empty")).to_be_visible()
            assert errors == []
            browser.close()
        calls = [c for c in run.calls() if c["to"] == ANNA.lstrip("+")]
        assert calls and calls[-1]["direction"] == "outbound"
        assert calls[-1]["answered_by"] == "101" and calls[-1]["origin"] == "crm"
    finally:
        phones.stop()


def test_pinc_down_shows_connector_unreachable_not_a_broken_page(
    vtiger: Crm, tmp_path: Path
) -> None:
    """No pinc on the App URL: the card says so, the CRM's page works on."""
    need_browser()
    import socket

    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", pinc_port(vtiger))) == 0:
            pytest.skip("something answers on the App URL's port")
    with CrmWeb(vtiger.url) as web:
        web.login(vtiger.admin_user, admin_password(vtiger))
        web.import_module(build_zip(tmp_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{vtiger.url}/index.php")
        page.fill("#loginFormDiv #username", "manager1")
        page.fill("#loginFormDiv #password", vtiger.env["VTIGER_MANAGER1_PASSWORD"])
        page.locator("#loginFormDiv #username").press("Enter")
        offline = page.locator("#pinc-cards .pinc-offline")
        expect(offline).to_have_text("Phone connector unreachable: live calls cannot be shown.",
                                     timeout=20_000)
        assert page.evaluate("window.PincCard.mode") == "polling"
        page.goto(f"{vtiger.url}/index.php?module=Contacts&view=List")  # the CRM works on
        expect(page.locator(".listViewEntries").first).to_be_visible(timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "module_pinc_down.png"))
        assert errors == []
        browser.close()


def test_card_window_says_why_it_stays_empty(vtiger: Crm, tmp_path: Path) -> None:
    """The administrator has no CRM Phone Extension: no card, and the window says so."""
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    with CrmWeb(vtiger.url) as web:
        web.login(vtiger.admin_user, admin_password(vtiger))
        web.import_module(build_zip(tmp_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"{vtiger.url}/index.php")
        page.fill("#loginFormDiv #username", vtiger.admin_user)
        page.fill("#loginFormDiv #password", admin_password(vtiger))
        page.locator("#loginFormDiv #username").press("Enter")
        page.wait_for_url("**/index.php**")
        page.goto(f"{vtiger.url}/index.php?module=Pinc&view=Card")
        expect(page.locator("#pinc-cards .pinc-offline")).to_have_text(
            "You have no CRM phone extension.", timeout=15_000)
        assert page.evaluate("window.PincCard.mode") == "off:no_extension"
        browser.close()


def test_attended_transfer_from_the_card(
    pjsip_office: Office, vtiger: Crm, pinc_for: Any, tmp_path: Path
) -> None:
    """Attended: manager1 consults 102 from the card (Atxfer); 102 answers, 101 hangs up,
    and Asterisk bridges the caller with 102."""
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    with CrmWeb(vtiger.url) as web:
        web.login(vtiger.admin_user, admin_password(vtiger))
        web.import_module(build_zip(tmp_path))
    run = pinc_for(pjsip_office, vtiger)
    phones = SipPhones(pjsip_office, tmp_path / "sipp")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            sign_in(page, vtiger, "manager1")
            phones.phone("101", ring_ms=2000, talk_ms=12_000)  # 101 hangs up 12 s after answering
            phones.phone("102", ring_ms=2000)
            caller = phones.call(ANNA, DIRECT + "01", talk_ms=30_000)
            card = page.locator("#pinc-cards .pinc-card")
            expect(card).to_have_attribute("data-state", "talking", timeout=20_000)
            call_id = card.get_attribute("data-call-id")
            card.locator(".pinc-colleague").select_option("102")
            card.locator('input[type="radio"][value="attended"]').check()
            with page.expect_response(lambda r: "action=Transfer" in r.url) as answer:
                card.locator(".pinc-do-transfer").click()
            assert answer.value.json()["result"]["mode"] == "attended"
            expect(card.locator(".pinc-note")).to_have_text("Transfer sent", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "module_popup_attended_consulting.png"))
            # wait for 102 itself: the caller is bridged with 101 until the transfer completes
            bridged = wait_for("the caller bridged with 102 once 101 hung up", lambda: [
                ch for ch in amiquery.bridged_with(pjsip_office, "PJSIP/trunk-")
                if ch.startswith("PJSIP/102-")], 40)
            assert bridged, bridged
            expect(page.locator(f'.pinc-card[data-call-id="{call_id}"]')).to_have_count(
                0, timeout=20_000)
            browser.close()
        caller.wait(60)
        (journal,) = wait_for("the call's end in the journal", lambda: [
            c for c in run.calls() if c["id"] == call_id and c["status"] == "completed"], 30)
        assert journal["answered_by"] == "102"
        assert [(t["kind"], t["from"], t["to"]) for t in journal["transfers"]] == [
            ("crm", "101", "102")]
    finally:
        phones.stop()


def save_browser_url(web: CrmWeb, url: str) -> None:
    """The module's one setting, through its Settings page's form."""
    web.page("/index.php?module=Pinc&parent=Settings&view=Status")
    response = web.post({"module": "Pinc", "parent": "Settings", "action": "Save",
                         "browser_url": url})
    assert response.status_code in (302, 303), response.status_code
    assert "saved=ok" in response.headers["Location"]


def test_card_falls_back_to_polling_when_the_socket_cannot_connect(
    pjsip_office: Office, vtiger: Crm, pinc_for: Any, tmp_path: Path
) -> None:
    """Browsers cannot reach pinc (its URL for browsers leads nowhere), the CRM server can:
    the card asks the module every 2 s, the module asks pinc, and the call still shows."""
    need_browser()
    import socket

    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens
    with CrmWeb(vtiger.url) as web:
        web.login(vtiger.admin_user, admin_password(vtiger))
        web.import_module(build_zip(tmp_path))
        save_browser_url(web, nowhere)
        try:
            pinc_for(pjsip_office, vtiger)
            phones = SipPhones(pjsip_office, tmp_path / "sipp")
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS,
                                                headless=True)
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    page.goto(f"{vtiger.url}/index.php")
                    page.fill("#loginFormDiv #username", "manager1")
                    page.fill("#loginFormDiv #password", vtiger.env["VTIGER_MANAGER1_PASSWORD"])
                    page.locator("#loginFormDiv #username").press("Enter")
                    page.wait_for_function("window.PincCard && PincCard.mode === 'polling'",
                                           timeout=30_000)
                    phones.phone("101", ring_ms=6000)
                    phones.call(ANNA, DIRECT + "01", talk_ms=3000)
                    card = page.locator("#pinc-cards .pinc-card")
                    expect(card).to_have_attribute("data-state", "ringing", timeout=15_000)
                    expect(card.locator(".pinc-name")).to_have_text("Anna Customer",
                                                                    timeout=10_000)
                    expect(card).to_have_attribute("data-state", "talking", timeout=15_000)
                    expect(page.locator("#pinc-cards .pinc-offline")).to_have_count(0)
                    assert page.evaluate("window.PincCard.mode") == "polling"
                    page.screenshot(path=str(ARTIFACTS / "module_popup_polling.png"))
                    expect(card).to_have_count(0, timeout=20_000)  # the caller hung up
                    browser.close()
            finally:
                phones.stop()
        finally:
            save_browser_url(web, "")
