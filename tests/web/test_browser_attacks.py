"""Other sites' pages in a real Chromium, against a signed-in dashboard user.

pinc 0.1.0: a page on another port of 127.0.0.1 (the same *site*, so the browser sends
the dashboard's cookie) opened ``/ws`` and read the calls, originated through
``POST /api/calls`` sent as ``text/plain`` (no CORS preflight), and any page's
``<img src=…/makecall?secret=…>`` placed a call. Here each of them is refused, nothing
reaches AMI, and the CRM's own pages may still open ``/ws`` with a module ticket.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import trio

from pinc import metrics
from pinc.web import tickets
from tests.web.harness import SECRET, TOKEN, make_config, start_env
from tests.web.test_browser import ARGS, CHROMIUM, _need_chromium

ATTACK = """<!doctype html><html><body>
<img id="img" src="{pinc}/makecall?secret={secret}&from=101&to=79161234567">
<script>
const pinc = "{pinc}", wsUrl = "{ws}";
const r = window.results = {{ws: "pending", messages: 0, api: "pending", makecall: "pending",
                             img: "pending"}};
const ws = new WebSocket(wsUrl);
ws.onopen = () => {{ r.ws = "open"; }};
ws.onmessage = () => {{ r.messages++; }};
ws.onclose = () => {{ if (r.ws === "pending") r.ws = "refused"; r.closed = true; }};
const post = (url, body) => fetch(url, {{method: "POST", mode: "no-cors",
    credentials: "include", headers: {{"Content-Type": "text/plain"}}, body}});
post(pinc + "/api/calls", JSON.stringify({{from: "101", to: "79161234567"}}))
  .then(() => r.api = "sent", () => r.api = "failed");
post(pinc + "/makecall?secret={secret}&from=101&to=79161234567", "")
  .then(() => r.makecall = "sent", () => r.makecall = "failed");
const img = document.getElementById("img");
img.onerror = () => {{ r.img = "error"; }};
img.onload = () => {{ r.img = "load"; }};
setTimeout(() => ws.close(), 3000);  // an accepted socket is closed after a look
</script></body></html>"""

DONE = ("() => window.results && window.results.closed && window.results.api !== 'pending'"
        " && window.results.makecall !== 'pending' && window.results.img !== 'pending'")


class PageServer:
    """Another origin on 127.0.0.1: serves one HTML page for any path."""

    def __init__(self) -> None:
        self.html = "<!doctype html><title>empty</title>"
        self.port = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        with trio.move_on_after(10):
            head = b""
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(4096)
                if not data:
                    return
                head += data
            body = self.html.encode()
            await stream.send_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )


def _counts() -> dict[str, float]:
    return {
        "origin": metrics.REFUSED.labels(rule="origin")._value.get(),
        "makecall": metrics.AUTH_FAILURES.labels(route="/makecall")._value.get(),
    }


async def test_other_sites_pages_cannot_drive_pinc(nursery: trio.Nursery, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.sync_api import expect, sync_playwright

    evil, crm = PageServer(), PageServer()
    await nursery.start(evil.run)
    await nursery.start(crm.run)
    config = make_config(tmp_path, crm={"url": f"http://127.0.0.1:{crm.port}"})
    env = await start_env(nursery, tmp_path, config=config)
    pinc = env.base
    ws = f"ws://127.0.0.1:{env.port}/ws"
    evil.html = ATTACK.format(pinc=pinc, ws=ws, secret=SECRET)
    ticket = tickets.mint(SECRET, tickets.WS, "101", now=time.time(), ttl=300)
    crm.html = ATTACK.format(pinc=pinc, ws=f"{ws}?ticket={ticket}", secret=SECRET)
    before = _counts()

    def browse() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page()
                page.goto(f"{pinc}/")  # the victim signs in to the dashboard
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                expect(page.locator("#chip-feed")).to_have_class("chip ok", timeout=10_000)
                assert any(c["name"] == "pinc_session" for c in page.context.cookies())
                page.goto(f"http://127.0.0.1:{evil.port}/evil.html")
                page.wait_for_function(DONE, timeout=15_000)
                seen["evil"] = page.evaluate("window.results")
                page.goto(f"http://127.0.0.1:{crm.port}/crm-card.html")
                page.wait_for_function(DONE, timeout=15_000)
                seen["crm"] = page.evaluate("window.results")
                # pinc's own page still has its live feed
                page.goto(f"{pinc}/")
                expect(page.locator("#chip-feed")).to_have_class("chip ok", timeout=10_000)
            finally:
                browser.close()
        return seen

    with trio.fail_after(90):
        seen = await trio.to_thread.run_sync(browse)
    after = _counts()
    evil_page, crm_page = seen["evil"], seen["crm"]
    # Another site's page: no feed, no call.
    assert (evil_page["ws"], evil_page["messages"]) == ("refused", 0), json.dumps(evil_page)
    # The CRM's page with a module ticket gets its extension's feed (the popup card)...
    assert (crm_page["ws"], crm_page["messages"]) == ("open", 1), json.dumps(crm_page)
    # ...and nothing else: its POSTs and <img> are refused like any other page's.
    # Refused: the evil page's /ws, and both pages' POST /api/calls and POST /makecall.
    assert after["origin"] - before["origin"] == 5
    assert after["makecall"] - before["makecall"] == 2  # the two <img> GETs
    assert env.ami.actions == []
    assert env.ingest.notes == []  # no Originate was even prepared


async def test_refusals_are_logged_with_the_address(nursery: trio.Nursery, tmp_path: Path,
                                                   caplog: Any) -> None:
    import httpx

    env = await start_env(nursery, tmp_path)
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.post("/api/calls", headers={**env.auth, "Origin": "http://evil.test"},
                              json={"from": "101", "to": "79161234567"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "origin"
    lines = [rec.getMessage() for rec in caplog.records if "refused POST" in rec.getMessage()]
    assert lines == ["refused POST /api/calls from 127.0.0.1: Origin 'http://evil.test' is "
                     "not pinc's"]
