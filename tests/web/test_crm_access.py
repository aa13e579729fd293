"""The CRM secret is accepted only from the CRM's servers (crm.allow_from), and /ping.

"Elsewhere" on one machine is another loopback source address: the server listens on
127.0.0.1, the allowlist is 127.0.0.1/32, and a client bound to 127.0.0.2 plays a host
outside it (Linux routes all of 127.0.0.0/8 to lo).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from pinc import metrics
from pinc.config import ConfigError
from pinc.web.access import CrmPeers, literal_peers, resolve_peers
from tests.web.harness import SECRET, TOKEN, Env, call_dict, change, make_config, start_env

OUTSIDE = "127.0.0.2"


@pytest.fixture
async def strict(nursery: trio.Nursery, tmp_path: Path) -> Env:
    config = make_config(tmp_path, crm={"allow_from": ["127.0.0.1/32"]})
    with trio.fail_after(15):
        env = await start_env(nursery, tmp_path, config=config)
    (env.recordings / "r1.wav").write_bytes(b"RIFF" + b"\x01" * 500)
    live = call_dict("0abc123live0000000000", status="answered", answered_by="101")
    await env.put([change("call.ended", call_dict("0abc123done0000000000", status="completed",
                                                  recording="r1.wav", talk=3)),
                   change("call.answered", live)])
    env.ingest.live = [live]
    env.ingest.channels[live["id"]] = [
        {"channel": "PJSIP/trunk-00000001", "ext": "", "role": "customer",
         "bridge": "b-1", "partner": "employee"},
        {"channel": "PJSIP/101-00000002", "ext": "101", "role": "employee",
         "bridge": "b-1", "partner": "customer"}]
    return env


def _client(env: Env, source: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=env.base, transport=transport, timeout=10)


@pytest.fixture
async def outside(strict: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(strict, OUTSIDE) as c:
        yield c


@pytest.fixture
async def crm(strict: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(strict, "127.0.0.1") as c:
        yield c


def _requests(secret: str = SECRET) -> list[tuple[str, str, dict[str, str]]]:
    return [
        ("POST", "/makecall", {"secret": secret, "from": "101", "to": "79161234567"}),
        ("POST", "/transfer", {"secret": secret, "ext": "101", "to": "102"}),
        ("GET", "/responsible", {"secret": secret, "number": "79161234567"}),
        ("GET", "/recording", {"secret": secret, "id": "0abc123done0000000000"}),
    ]


def _failures(route: str) -> float:
    return metrics.AUTH_FAILURES.labels(route=route)._value.get()  # type: ignore[no-any-return]


async def test_the_secret_works_from_the_crm(strict: Env, crm: httpx.AsyncClient) -> None:
    for method, path, params in _requests():
        r = await crm.request(method, path, params=params)
        assert r.status_code == 200, (path, r.text)
        if path == "/makecall":
            with trio.fail_after(5):  # the Originate runs after the answer
                await strict.ami.acted.wait()
    assert sorted(name for name, _ in strict.ami.actions) == ["BlindTransfer", "Originate"]


async def test_the_right_secret_from_elsewhere_is_refused(
    strict: Env, outside: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pinc.web.auth")
    for method, path, params in _requests():
        before = _failures(path)
        r = await outside.request(method, path, params=params)
        assert (r.status_code, r.text) == (403, "Authentication Failure"), path
        assert _failures(path) == before + 1
        lines = [rec.getMessage() for rec in caplog.records if path in rec.getMessage()]
        assert len(lines) == 1 and f"from {OUTSIDE}" in lines[0], lines
        assert SECRET not in lines[0]
        caplog.clear()
    # the same answer as a wrong secret from there: nothing tells the two apart
    for method, path, params in _requests("wrong-secret-value"):
        r = await outside.request(method, path, params=params)
        assert (r.status_code, r.text) == (403, "Authentication Failure"), path
    assert strict.ami.actions == []
    assert strict.router.asked == []


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-For": "127.0.0.1"},  # a reverse proxy on the CRM's own address
    {"Forwarded": "for=10.1.2.3"},
    {"X-Real-IP": "10.1.2.3"},
    {"Origin": "http://127.0.0.1:9"},  # a page in a browser
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
])
async def test_proxies_and_browsers_never_carry_the_secret(
    strict: Env, crm: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path, params in _requests():
        r = await crm.request(method, path, params=params, headers=headers)
        assert r.status_code == 403, path
        # a browser's POST already falls to the origin rule (pinc.web.origins)
        assert r.text in ("Authentication Failure",
                          "Forbidden: a request from another site's page\n"), path
    assert strict.ami.actions == []


async def test_ping_tiers(strict: Env, crm: httpx.AsyncClient,
                          outside: httpx.AsyncClient) -> None:
    r = await outside.get("/ping")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    # the details: the token from anywhere, the secret from the CRM in any of three ways
    detailed = [
        await outside.get("/ping", headers={"Authorization": f"Bearer {TOKEN}"}),
        await crm.get("/ping", params={"secret": SECRET}),
        await crm.post("/ping", data={"secret": SECRET}),
        await crm.get("/ping", headers={"X-Pinc-Secret": SECRET}),
    ]
    for r in detailed:
        assert r.status_code == 200 and r.json()["ami"]["connected"] is True, r.text
        assert SECRET not in r.text and TOKEN not in r.text
    refusals = [
        (await outside.get("/ping", params={"secret": SECRET}), 403),
        (await outside.get("/ping", headers={"X-Pinc-Secret": SECRET}), 403),
        (await crm.get("/ping", params={"secret": "wrong"}), 403),
        (await crm.get("/ping", headers={"Authorization": "Bearer wrong"}), 401),
    ]
    for r, status in refusals:
        assert r.status_code == status and "ami" not in r.text, r.text


async def test_ping_says_degraded(strict: Env, crm: httpx.AsyncClient) -> None:
    strict.ami.connected = False
    assert (await crm.get("/ping")).json() == {"status": "degraded"}


async def test_allowlist_resolution() -> None:
    peers = await resolve_peers((), "http://localhost:8088/vtiger")
    assert peers.allows("127.0.0.1") and peers.allows("::1")
    assert peers.allows("::ffff:127.0.0.1")  # IPv4-mapped, as a dual-stack socket shows it
    assert not peers.allows("10.0.0.1") and not peers.allows(None) and not peers.allows("x")
    listed = await resolve_peers(["10.0.0.0/24", "localhost"], "http://crm.example")
    assert listed.allows("10.0.0.77") and listed.allows("127.0.0.1")
    assert not listed.allows("10.0.1.1")
    only = await resolve_peers(["192.0.2.7"], "http://127.0.0.1:8088")
    assert not only.allows("127.0.0.1")  # an explicit list replaces the default
    assert literal_peers((), "http://192.0.2.9/crm").allows("192.0.2.9")
    assert CrmPeers((), "none").allows("127.0.0.1") is False


def test_allow_from_entries_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"crm\.allow_from"):
        make_config(tmp_path, crm={"allow_from": ["10.0.0.0/24", "bad host!"]})
