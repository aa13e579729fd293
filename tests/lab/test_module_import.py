"""pinc's vtiger module through Module Manager into the real vtiger 8.2 and SalesPlatform 7.2.

Over HTTP exactly as an administrator's browser does it (tests/lab/crmweb.py): the zip
that packaging/vtiger/build.py makes is uploaded and imported, updated, switched off and
on; the uninstall script removes it. What vtlib registered is read from the CRM's database.
The Settings page shows the connector's state from pinc's /ping: unreachable while no pinc
runs, OK with pinc on the office.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.crmweb import CrmWeb
from tests.lab.lab import Crm, Office, PincRun, office_config
from tests.lab.modulelab import admin_password, build_zip, pinc_port, uninstall

STATUS_PAGE = "/index.php?module=Pinc&parent=Settings&view=Status"


def registered(crm: Crm) -> dict[str, int]:
    """What vtlib holds of the module: its tab, header script, Settings entry, table."""
    return {
        "tab": len(crm.sql("SELECT tabid FROM vtiger_tab WHERE name = 'Pinc' AND presence = 0")),
        "script": len(crm.sql(
            "SELECT linkid FROM vtiger_links WHERE tabid = 0 AND linktype = 'HEADERSCRIPT'"
            " AND linkurl LIKE 'modules/Pinc/resources/pinc.js%'")),
        "settings": len(crm.sql(
            "SELECT fieldid FROM vtiger_settings_field WHERE name = 'pinc connector'")),
        "table": len(crm.sql("SHOW TABLES LIKE 'vtiger_pinc_settings'")),
    }


@pytest.fixture(params=["vtiger", "salesplatform"])
def crm(request: pytest.FixtureRequest) -> Crm:
    found: Crm = request.getfixturevalue(request.param)
    return found


def test_module_manager_imports_updates_switches_and_uninstalls(crm: Crm, tmp_path: Path) -> None:
    zip_path = build_zip(tmp_path)
    if registered(crm)["tab"]:
        uninstall(crm)
    assert registered(crm) == {"tab": 0, "script": 0, "settings": 0, "table": 0}
    with CrmWeb(crm.url) as web:
        web.login(crm.admin_user, admin_password(crm))
        first = web.import_module(zip_path)
        assert first["result"]["importModuleName"] == "Pinc" and first["updated"] is False
        assert registered(crm) == {"tab": 1, "script": 1, "settings": 1, "table": 1}
        assert "modules/Pinc/resources/pinc.js" in web.page("/index.php")
        again = web.import_module(zip_path)  # the same zip over it: Module Manager's Update
        assert again["updated"] is True
        assert registered(crm) == {"tab": 1, "script": 1, "settings": 1, "table": 1}
        web.set_module_enabled("Pinc", False)  # vtlib fires module.disabled
        assert registered(crm)["script"] == 0 and registered(crm)["settings"] == 0
        assert "modules/Pinc/resources/pinc.js" not in web.page("/index.php")
        web.set_module_enabled("Pinc", True)
        assert registered(crm)["script"] == 1 and registered(crm)["settings"] == 1
    assert "module Pinc deleted" in uninstall(crm)
    assert registered(crm) == {"tab": 0, "script": 0, "settings": 0, "table": 0}
    with CrmWeb(crm.url) as web:  # installed again, for the tests that follow
        web.login(crm.admin_user, admin_password(crm))
        assert web.import_module(zip_path)["updated"] is False
    assert registered(crm) == {"tab": 1, "script": 1, "settings": 1, "table": 1}


def test_settings_page_shows_the_connector_state(
    crm: Crm, pjsip_office: Office, tmp_path: Path
) -> None:
    zip_path = build_zip(tmp_path)
    with CrmWeb(crm.url) as web:
        web.login(crm.admin_user, admin_password(crm))
        web.import_module(zip_path)
        down = web.page(STATUS_PAGE)
        assert 'id="pinc-status-page"' in down
        assert 'data-pinc-problem="unreachable"' in down  # no pinc on the App URL's port
        config = office_config(
            pjsip_office, tmp_path, web={"listen": f"127.0.0.1:{pinc_port(crm)}"},
            crm={"profile": crm.kind, "url": crm.url, "secret": crm.secret,
                 "timezone": crm.default_timezone})
        run = PincRun(config, tmp_path / "pinc").start()
        try:
            up = web.page(STATUS_PAGE)
        finally:
            assert run.stop() == 0, run.log()[-3000:]
        assert 'data-pinc-state="ok"' in up, up[up.find("pinc-status-page"):][:3000]
        assert "22.10.1" in up  # Asterisk's version, as pinc saw it over AMI
        assert crm.secret not in up


def test_pbxmanager_settings_page_shows_the_connector_state(
    crm: Crm, pjsip_office: Office, tmp_path: Path
) -> None:
    """The calls module's own settings page (PBXManager / "Звонки") gets a panel with the
    connector's state, asked of pinc when the page opens."""
    from tests.lab.modulelab import ARGS, ARTIFACTS, CHROMIUM, need_browser

    need_browser()
    from playwright.sync_api import expect, sync_playwright

    with CrmWeb(crm.url) as web:
        web.login(crm.admin_user, admin_password(crm))
        web.import_module(build_zip(tmp_path))
    config = office_config(
        pjsip_office, tmp_path, web={"listen": f"127.0.0.1:{pinc_port(crm)}"},
        crm={"profile": crm.kind, "url": crm.url, "secret": crm.secret,
             "timezone": crm.default_timezone})
    settings = f"{crm.url}/index.php?module=PBXManager&parent=Settings&view=Index"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{crm.url}/index.php")
        page.fill("#loginFormDiv #username", crm.admin_user)
        page.fill("#loginFormDiv #password", admin_password(crm))
        page.locator("#loginFormDiv #username").press("Enter")
        page.wait_for_url("**/index.php**")
        page.goto(settings)
        expect(page.locator('#pinc-status [data-pinc-problem="unreachable"]')).to_be_visible(
            timeout=15_000)
        run = PincRun(config, tmp_path / "pinc")
        try:
            run.start()
            page.goto(settings)
            expect(page.locator('#pinc-status [data-pinc-state="ok"]')).to_be_visible(
                timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / f"module_status_{crm.kind}.png"))
        finally:
            assert run.stop() == 0, run.log()[-3000:]
        browser.close()
