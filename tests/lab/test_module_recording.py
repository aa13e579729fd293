"""Recordings through pinc's vtiger module, live: the calls module's list and detail pages
play them through the module's Recording action, which checks the user may see the row and
streams from pinc with Range; no link with a secret is stored or shown.

A real call on the PJSIP office (Anna -> 101, answered, recorded by MixMonitor), delivered
by ``pinc run`` into the real vtiger 8.2; then Chromium as manager1 (the row's owner) and
as manager2 (whom vtiger's private sharing of PBXManager does not show the row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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


def recorded_call(office: Office, crm: Crm, run: PincRun, tmp_path: Path) -> dict[str, Any]:
    """Anna calls 101, 101 answers, they talk 4 s: the call as pinc's journal has it, once
    its row in the CRM has the recording link."""
    phones = SipPhones(office, tmp_path / "sipp")
    try:
        phones.phone("101", ring_ms=1000)
        phones.call(ANNA, DIRECT + "01", talk_ms=4000).wait(60)
    finally:
        phones.stop()

    def ended() -> dict[str, Any] | None:
        calls = [c for c in run.calls() if c["from"] == ANNA.lstrip("+")
                 and c["status"] == "completed" and c["recording"]]
        return calls[-1] if calls else None

    call: dict[str, Any] = wait_for("the recorded call in the journal", ended, 60)
    wait_for("the row with its recording in the CRM", lambda: crm.sql(
        "SELECT pbxmanagerid FROM vtiger_pbxmanager WHERE sourceuuid = "
        f"'{call['id']}' AND callstatus = 'completed' AND recordingurl <> ''"), 60)
    return call


@pytest.mark.parametrize("kind", ["vtiger", "salesplatform"])
def test_recordings_play_through_the_module_with_seeking(
    pjsip_office: Office, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    vtiger: Crm = request.getfixturevalue(kind)
    need_browser()
    from playwright.sync_api import expect, sync_playwright

    with CrmWeb(vtiger.url) as web:
        web.login(vtiger.admin_user, admin_password(vtiger))
        web.import_module(build_zip(tmp_path))
    port = pinc_port(vtiger)
    config = office_config(pjsip_office, tmp_path, crm=crm_config(vtiger), web={
        "listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"})
    run = PincRun(config, tmp_path / "pinc").start()
    try:
        call = recorded_call(pjsip_office, vtiger, run, tmp_path)
        audio = (pjsip_office.recordings / call["recording"]).read_bytes()
        assert len(audio) > 2000
        (row,) = vtiger.sql("SELECT pbxmanagerid, recordingurl FROM vtiger_pbxmanager"
                            f" WHERE sourceuuid = '{call['id']}'")
        record = row["pbxmanagerid"]
        assert vtiger.secret not in row["recordingurl"]  # the stored link is signed
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            sign_in(page, vtiger, "manager1")
            page.goto(f"{vtiger.url}/index.php?module=PBXManager&view=List")
            player = page.locator(f'tr.listViewEntries[data-id="{record}"] audio.pinc-recording')
            expect(player).to_have_count(1, timeout=15_000)
            src = player.get_attribute("src")
            assert src == f"index.php?module=Pinc&action=Recording&record={record}"
            page.screenshot(path=str(ARTIFACTS / f"module_recording_{kind}_list.png"))
            url = f"{vtiger.url}/{src}"
            head = page.request.get(url, headers={"Range": "bytes=0-99"})
            assert head.status == 206
            assert head.headers["content-range"] == f"bytes 0-99/{len(audio)}"
            assert head.body() == audio[:100]
            middle = page.request.get(url, headers={"Range": "bytes=1000-1099"})
            assert middle.status == 206 and middle.body() == audio[1000:1100]
            whole = page.request.get(url)
            assert whole.status == 200 and whole.body() == audio
            page.goto(f"{vtiger.url}/index.php?module=PBXManager&view=Detail&record={record}")
            expect(page.locator("audio.pinc-recording")).to_have_count(1, timeout=15_000)
            assert vtiger.secret not in page.content()
            page.screenshot(path=str(ARTIFACTS / f"module_recording_{kind}_detail.png"))
            # manager2 may not see manager1's row: the same 404 as for no row at all.
            other = browser.new_context().new_page()
            sign_in(other, vtiger, "manager2")
            assert other.request.get(url).status == 404
            assert other.request.get(
                f"{vtiger.url}/index.php?module=Pinc&action=Recording&record=999999").status == 404
            browser.close()
    finally:
        assert run.stop() == 0, run.log()[-3000:]
