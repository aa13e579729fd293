"""The Host, Origin and Content-Type rules and Referrer-Policy, request by request."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from pinc import metrics
from pinc.web import tickets
from pinc.web.origins import Origins, host_name, origin_of
from tests.web.harness import SECRET, TOKEN, Env, make_config, start_env

CALL = {"from": "101", "to": "79161234567"}


@pytest.fixture
async def named(nursery: trio.Nursery, tmp_path: Path) -> Env:
    config = make_config(tmp_path, web={"public_url": "https://pbx.example.com"},
                         crm={"url": "http://crm.example.com/vtigercrm"})
    with trio.fail_after(15):
        return await start_env(nursery, tmp_path, config=config)


@pytest.mark.parametrize("host", ["evil.example", "pbx.example.com.evil.example",
                                  "crm.example.com"])
async def test_a_host_that_is_not_pincs_is_misdirected(named: Env, host: str) -> None:
    """DNS rebinding: a name the attacker controls, pointed at the PBX, gets nothing."""
    before = metrics.REFUSED.labels(rule="host")._value.get()
    async with httpx.AsyncClient(base_url=named.base) as client:
        for path in ("/", "/ping", "/api/calls"):
            r = await client.get(path, headers={"Host": host, **named.auth})
            assert r.status_code == 421, (path, r.text)
            assert "Misdirected" in r.text and host not in r.text
    stream = await trio.open_tcp_stream("127.0.0.1", named.port)
    async with stream:
        await stream.send_all(
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        with trio.fail_after(5):
            answer = await stream.receive_some(4096)
    assert answer.startswith(b"HTTP/1.1 421"), answer[:60]
    assert metrics.REFUSED.labels(rule="host")._value.get() == before + 4


@pytest.mark.parametrize("host", ["pbx.example.com", "PBX.example.com:443", "localhost:8099",
                                  "127.0.0.1", "[::1]:8099", "10.1.2.3"])
async def test_pincs_own_names_and_addresses(named: Env, host: str) -> None:
    async with httpx.AsyncClient(base_url=named.base) as client:
        r = await client.get("/ping", headers={"Host": host})
    assert r.status_code == 200


@pytest.mark.parametrize(("origin", "fetch_site", "status"), [
    ("http://127.0.0.1:9", None, 403),  # another port of the same host: another origin
    ("http://localhost:{port}", None, 403),  # the same server under another name
    ("https://pbx.example.com", None, 202),  # web.public_url's origin
    ("http://127.0.0.1:{port}", None, 202),  # the origin this request addressed
    ("http://crm.example.com", None, 403),  # the CRM's pages may only open /ws
    ("null", None, 403),  # a sandboxed frame, a file:// page
    ("null", "cross-site", 403),
    ("null", "same-origin", 202),  # pinc's own form under Referrer-Policy: no-referrer
    (None, "cross-site", 403),
    (None, None, 202),  # server to server
])
async def test_origin_rule_on_state_changing_requests(
    named: Env, origin: str | None, fetch_site: str | None, status: int
) -> None:
    headers = dict(named.auth)
    if origin is not None:
        headers["Origin"] = origin.format(port=named.port)
    if fetch_site is not None:
        headers["Sec-Fetch-Site"] = fetch_site
    async with httpx.AsyncClient(base_url=named.base) as client:
        r = await client.post("/api/calls", headers=headers, json=CALL)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]["code"] == "origin"


async def test_sign_in_and_out_from_another_site_are_refused(env: Env) -> None:
    """Login CSRF (the victim signed in to the attacker's view) and a forced sign-out."""
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.post("/login", data={"token": TOKEN},
                              headers={"Origin": "http://127.0.0.1:9"})
        assert r.status_code == 403 and "pinc_session" not in r.headers.get("Set-Cookie", "")
        r = await client.post("/logout", headers={"Origin": "http://127.0.0.1:9"})
        assert r.status_code == 403


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", None])
async def test_json_routes_need_application_json(env: Env, content_type: str | None) -> None:
    env.ingest.channels["t1"] = [{"channel": "PJSIP/101-1", "role": "employee", "ext": "101"}]
    headers = dict(env.auth)
    if content_type:
        headers["Content-Type"] = content_type
    async with httpx.AsyncClient(base_url=env.base) as client:
        for path in ("/api/calls", "/api/calls/t1/transfer"):
            r = await client.post(path, headers=headers, content=b'{"from":"101","to":"102"}')
            assert r.status_code == 415, (path, r.text)
            assert r.json()["error"]["code"] == "content_type"
    assert env.ami.actions == [] and env.ingest.notes == []


async def test_referrer_policy_everywhere(env: Env) -> None:
    (env.recordings / "x.wav").write_bytes(b"RIFF" + b"\0" * 100)
    async with httpx.AsyncClient(base_url=env.base) as client:
        answers = [await client.get(p) for p in ("/", "/ping", "/api/calls", "/nothing")]
        answers.append(await client.get("/recording", params={"id": "x", "secret": SECRET}))
    for r in answers:
        assert r.headers["Referrer-Policy"] == "no-referrer", r.request.url


async def test_ws_origins(named: Env) -> None:
    ticket = tickets.mint(SECRET, tickets.WS, "101", now=time.time(), ttl=60)
    bearer = (b"Authorization", f"Bearer {TOKEN}".encode())
    base = f"ws://127.0.0.1:{named.port}/ws"
    cases = [
        (base, [(b"Origin", b"https://pbx.example.com"), bearer], None),
        (f"{base}?ticket={ticket}", [(b"Origin", b"http://crm.example.com")], None),
        (base, [(b"Origin", b"http://crm.example.com"), bearer], 403),  # CRM page, no ticket
        (f"{base}?ticket={ticket}", [(b"Origin", b"http://127.0.0.1:9")], 403),
        (base, [(b"Origin", b"http://127.0.0.1:9"), bearer], 403),
    ]
    for url, headers, status in cases:
        if status is None:
            async with open_websocket_url(url, extra_headers=headers) as ws:
                assert '"snapshot"' in await ws.get_message()
            continue
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(url, extra_headers=headers):
                pass
        assert info.value.status_code == status, (url, headers)


async def test_configured_hosts_and_crm_origins(nursery: trio.Nursery, tmp_path: Path) -> None:
    """vtiger's server may name pinc by an internal name, and browsers reach the CRM under
    another origin than the URL pinc delivers to: web.hosts and crm.origins say so."""
    config = make_config(tmp_path, web={"hosts": ["pbx.lan"]},
                         crm={"url": "http://10.0.0.5/vtigercrm",
                              "origins": ["https://crm.example.com"]})
    env = await start_env(nursery, tmp_path, config=config)
    async with httpx.AsyncClient(base_url=env.base) as client:
        assert (await client.get("/ping", headers={"Host": "pbx.lan:8099"})).status_code == 200
        assert (await client.get("/ping", headers={"Host": "pbx.other"})).status_code == 421
    ticket = tickets.mint(SECRET, tickets.WS, "101", now=time.time(), ttl=60)
    url = f"ws://127.0.0.1:{env.port}/ws?ticket={ticket}"
    async with open_websocket_url(url, extra_headers=[(b"Origin", b"https://crm.example.com")]
                                  ) as ws:
        assert '"snapshot"' in await ws.get_message()
    with pytest.raises(ConnectionRejected):
        async with open_websocket_url(url, extra_headers=[(b"Origin", b"http://10.0.0.5")]):
            pass


def test_origin_helpers() -> None:
    assert origin_of("HTTPS://PBX.example.com:443/x?y") == "https://pbx.example.com"
    assert origin_of("http://[::1]:8099") == "http://[::1]:8099"
    assert origin_of("null") is None and origin_of("http://x:99999") is None
    assert host_name("[::1]:8099") == "::1" and host_name("Example.COM:80") == "example.com"
    o = Origins.from_config("", "0.0.0.0", "")
    assert o.names == {"localhost"} and not o.host_ok("pbx") and o.host_ok("192.0.2.1")
    assert Origins.from_config("", "pbx.lan", "").host_ok("pbx.lan:8099")
