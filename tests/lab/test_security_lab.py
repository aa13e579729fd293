"""#14 live: what the security rules must not break, and what they must stop, in the lab.

- click-to-call from vtiger's UI (vtiger's own OutgoingCall action: its server calls
  pinc's /makecall with the secret from 127.0.0.1) originates a real call in the Local
  office; once it ends, the signed link stored in vtiger's row plays, fetched as a
  browser would (and in Chromium), and opens nothing else;
- SalesPlatform: its ListenRecord action, as signed-in manager1, fetches the recording from
  pinc server-side with ``&secret=`` appended, from the CRM's address;
- ``/transfer`` of a live PJSIP call: pinc on 127.0.0.1 with ``crm.allow_from`` =
  127.0.0.1/32; a client bound to 127.0.0.2 (all of 127/8 is loopback on Linux) is
  "another host": refused, the call does not move; from 127.0.0.1 the call moves to 102.

Each skips unless its office and CRM are up in ``$PINC_LAB`` (tests/lab/README.md).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import importlib.util
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from tests.lab.lab import Crm, Office, PincRun, office_config, pinc_run

TOKEN = "sec-lab-token-0123456789abcdef"
CUSTOMER = "79161234567"  # Anna Customer in both CRMs; the Local office's PSTN answers it
_TOKEN_RE = re.compile(r"""name=["']__vtrftk["']\s+value=["']([^"']+)["']""")
_TOKEN_JS_RE = re.compile(r"""csrfMagicToken\s*=\s*["']([^"']+)["']""")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (lab systems take their time)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


class CrmUser:
    """A user signed in to vtiger's (or SalesPlatform's) web UI: cookie and CSRF token."""

    def __init__(self, crm: Crm, user: str) -> None:
        self.base = crm.url.rstrip("/")
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self.token = ""
        password = crm.env[f"{'VTIGER' if crm.kind == 'vtiger' else 'SP'}_"
                           f"{user.upper()}_PASSWORD"]
        self.request("index.php")
        _, body = self.request("index.php", {"module": "Users", "action": "Login",
                                             "username": user, "password": password})
        assert b"error=login" not in body and self.token, f"{user} could not sign in"

    def request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, bytes]:
        data = None
        if form is not None:
            data = urllib.parse.urlencode({**form, "__vtrftk": self.token}).encode()
        req = urllib.request.Request(f"{self.base}/{path}", data=data,
                                     headers={"User-Agent": "Mozilla/5.0 (pinc lab)"})
        try:
            with self.opener.open(req, timeout=60) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        text = body.decode("utf-8", "replace")
        m = _TOKEN_RE.search(text) or _TOKEN_JS_RE.search(text)
        if m:
            self.token = m.group(1)
        return status, body

    def click_to_call(self, number: str) -> dict[str, Any]:
        _, body = self.request("index.php", {"module": "PBXManager", "action": "OutgoingCall",
                                             "number": number})
        result: dict[str, Any] = json.loads(body)
        return result


def ami(office: Office, *lines: str) -> str:
    """One AMI action on the office (login, the action, what came back within a second)."""
    with socket.create_connection((office.ami_host, office.ami_port), timeout=5) as s:
        s.recv(200)
        login = f"Action: Login\r\nUsername: {office.ami_user}\r\nSecret: {office.ami_secret}\r\n"
        s.sendall((login + "Events: off\r\n\r\n").encode())
        time.sleep(0.2)
        s.sendall(("".join(f"{line}\r\n" for line in lines) + "\r\n").encode())
        time.sleep(1.0)
        return s.recv(65536).decode("utf-8", "replace")


def fetch(url: str, *, source: str | None = None, headers: dict[str, str] | None = None,
          method: str = "GET") -> tuple[int, bytes]:
    handlers: list[Any] = []
    if source:
        class Bound(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                return self.do_open(lambda *a, **k: _bound_connection(source, *a, **k), req)
        handlers.append(Bound())
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _bound_connection(source: str, host: str, **kw: Any) -> Any:
    import http.client

    return http.client.HTTPConnection(host, source_address=(source, 0), **kw)


def crm_sections(crm: Crm, pinc_url: str, **crm_keys: Any) -> dict[str, dict[str, Any]]:
    listen = urllib.parse.urlsplit(pinc_url).netloc
    return {
        "web": {"listen": listen, "public_url": pinc_url, "token": TOKEN},
        "crm": {"profile": crm.kind, "url": crm.url, "secret": crm.secret,
                "username": crm.admin_user, "access_key": crm.admin_access_key,
                "timezone": crm.default_timezone, **crm_keys},
    }


def click_to_call_call(run: PincRun, office: Office, user: CrmUser) -> dict[str, Any]:
    """vtiger's click-to-call of Anna's number as ``user``; the call, once it ended."""
    started = time.time()
    assert user.click_to_call("+" + CUSTOMER) == {"success": True, "result": True}
    call = wait_for("the click-to-call answered", lambda: next(
        (c for c in run.calls() if c["to"] == CUSTOMER and c["origin"] == "crm"
         and c["status"] == "answered"), None))
    time.sleep(3)  # some talk
    assert "Response: Success" in ami(office, "Action: Hangup",
                                      f"Channel: /^Local\\/{CUSTOMER}@pstn/")
    ended = wait_for("the call ended with its recording", lambda: next(
        (c for c in run.calls() if c["id"] == call["id"] and c["status"] == "completed"
         and c["recording"]), None))
    assert ended["from"] == "101" and ended["talk"] >= 2
    assert time.time() - started < 120
    audit = [line for line in run.log().splitlines() if "pinc.audit: originate" in line]
    assert audit and "by=crm addr=127.0.0.1 ext=101 to=79161234567 context=from-internal" in (
        audit[-1]) and audit[-1].endswith("result=accepted"), audit
    return dict(ended)


def test_vtiger_click_to_call_and_its_stored_link(local_office: Office, vtiger: Crm,
                                                   tmp_path: Path) -> None:
    pinc_url = vtiger.env["PINC_LISTEN_URL"]
    config = office_config(local_office, tmp_path, **crm_sections(vtiger, pinc_url))
    with pinc_run(config, tmp_path) as run:
        call = click_to_call_call(run, local_office, CrmUser(vtiger, "manager1"))
        row = wait_for("vtiger's row with the recording link", lambda: next(
            (r for r in vtiger.sql("SELECT recordingurl, callstatus FROM vtiger_pbxmanager "
                                   f"WHERE sourceuuid = '{call['id']}'")
             if r["recordingurl"] not in ("", "NULL")), None))
        link = row["recordingurl"]
        assert row["callstatus"] == "completed"
        assert link.startswith(f"{pinc_url}/recording?id={call['id']}&sig=")
        assert vtiger.secret not in link and "secret" not in link and TOKEN not in link
        # vtiger shows the link as <a href target=_blank>: the user's browser opens it
        wav = (local_office.recordings / call["recording"]).read_bytes()
        browser = {"User-Agent": "Mozilla/5.0", "Referer": f"{vtiger.url}/index.php",
                   "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                   "Sec-Fetch-Dest": "document"}
        status, body = fetch(link, headers=browser)
        assert (status, len(body)) == (200, len(wav)) and body == wav and len(wav) > 44
        assert _chromium_status(link) == 200
        # ...and nothing else: not another call's recording, not a credential anywhere
        sig = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["sig"][0]
        other = re.sub(r"id=[^&]+", "id=0tplatzzzzzzzzzzzzzzz", link)
        assert fetch(other, headers=browser)[0] == 403
        status, body = fetch(f"{pinc_url}/makecall?secret={sig}&from=101&to={CUSTOMER}",
                             method="POST")
        assert (status, body) == (403, b"Authentication Failure")
        assert fetch(f"{pinc_url}/api/calls", headers={"Authorization": f"Bearer {sig}"}
                     )[0] == 401
    log = run.log()
    assert vtiger.secret not in log and TOKEN not in log


def _chromium_status(url: str) -> int | None:
    """The status a real Chromium gets for a top-level visit of ``url`` (None: no Chromium)."""
    if not os.path.exists("/usr/bin/chromium"):
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            response = page.goto(url)
            return response.status if response is not None else None
        finally:
            browser.close()


def test_salesplatform_listen_record(local_office: Office, salesplatform: Crm,
                                     tmp_path: Path) -> None:
    pinc_url = salesplatform.env["PINC_LISTEN_URL"]
    config = office_config(local_office, tmp_path, **crm_sections(salesplatform, pinc_url))
    with pinc_run(config, tmp_path) as run:
        manager1 = CrmUser(salesplatform, "manager1")
        call = click_to_call_call(run, local_office, manager1)
        row = wait_for("manager1's row with the recording link", lambda: next(
            (r for r in salesplatform.sql(
                "SELECT p.pbxmanagerid, p.recordingurl FROM vtiger_pbxmanager p "
                "JOIN vtiger_users u ON u.id = p.user "
                f"WHERE p.sourceuuid = '{call['id']}' AND u.user_name = 'manager1'")
             if r["recordingurl"] not in ("", "NULL")), None))
        assert salesplatform.secret not in row["recordingurl"]
        status, body = manager1.request(
            f"index.php?module=PBXManager&action=ListenRecord&record={row['pbxmanagerid']}")
        wav = (local_office.recordings / call["recording"]).read_bytes()
        assert status == 200 and body == wav, (status, body[:200])
    fetched = [line for line in run.log().splitlines() if "refused GET /recording" in line]
    assert fetched == []  # SalesPlatform's server-side fetch with &secret= was let in


def _load_pjsip_driver(office: Office) -> ModuleType:
    """The lab kit's PJSIP driver (sipp phones and trunk), found through office.json."""
    drivers = Path(office.raw["office_dir"]).resolve().parents[1] / "drivers"
    spec = importlib.util.spec_from_file_location("lab_scenarios_pjsip",
                                                  drivers / "scenarios_pjsip.py")
    assert spec is not None and spec.loader is not None, drivers
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_ports(office.sip_port, int(office.raw.get("sipp_offset") or 0))
    return module


@contextmanager
def inbound_call_to_101(office: Office, tmp: Path) -> Iterator[None]:
    """Phones 101 and 102 (sipp, answering), the trunk calling 101's direct number and
    talking for 25 s from its answer; everything stopped on exit."""
    driver = _load_pjsip_driver(office)
    cfg = SimpleNamespace(rundir=str(tmp / "sipp"), media=str(tmp / "media"))
    driver.make_tones(cfg.media)
    stop = threading.Event()
    ready = threading.Event()
    failed: list[BaseException] = []

    async def drive() -> None:
        sipp = driver.Sipp(cfg, "sec_transfer")
        try:
            await sipp.phone("101", "answer", 1000)
            await sipp.phone("102", "answer", 1000)
            await sipp.call("79035550011", "74951230101", talk_ms=25_000)
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        finally:
            await sipp.stop()

    def run() -> None:
        try:
            asyncio.run(drive())
        except BaseException as exc:  # reported to the test below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(30) and not failed, failed
        yield
    finally:
        stop.set()
        thread.join(30)


def test_transfer_from_the_crm_address_only(pjsip_office: Office, tmp_path: Path) -> None:
    secret = "sec-lab-crm-secret-0123"
    config = office_config(pjsip_office, tmp_path, web={"token": TOKEN},
                           crm={"secret": secret, "allow_from": ["127.0.0.1/32"]})
    with pinc_run(config, tmp_path) as run, inbound_call_to_101(pjsip_office, tmp_path):
        call = wait_for("101 talking with the caller", lambda: next(
            (c for c in run.calls() if c["status"] == "answered"
             and c["answered_by"] == "101"), None))
        transfer = f"{run.url}/transfer?secret={secret}&ext=101&to=102"
        # from "another host": the right secret is refused and the call stays with 101
        assert fetch(transfer, source="127.0.0.2", method="POST") == (
            403, b"Authentication Failure")
        time.sleep(2)
        (still,) = [c for c in run.calls() if c["id"] == call["id"]]
        assert (still["answered_by"], still["transfers"]) == ("101", [])
        # from the CRM's address it moves to 102
        assert fetch(transfer, source="127.0.0.1", method="POST") == (200, b"Success")
        wait_for("102 answering the transferred caller", lambda: next(
            (c for c in run.calls() if c["id"] == call["id"]
             and any(leg["ext"] == "102" and leg["result"] == "answered" for leg in c["legs"])),
            None))
        ended = wait_for("the caller hanging up", lambda: next(
            (c for c in run.calls() if c["id"] == call["id"] and c["status"] == "completed"),
            None), timeout=90)
        assert ended["answered_by"] == "102"
        assert [(t["kind"], t["from"], t["to"]) for t in ended["transfers"]] == [
            ("crm", "101", "102")]
    log = run.log()
    assert "refused POST /transfer from 127.0.0.2: secret from an address outside " \
           "crm.allow_from" in log
    assert re.search(r"pinc\.audit: transfer by=crm addr=127\.0\.0\.1 call=\S+ ext=101 to=102 "
                     r"mode=blind context=from-internal result=sent", log), log[-3000:]
    assert secret not in log
