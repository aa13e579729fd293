"""Failed credentials are counted per client, and a guesser is slowed to a few a minute.

pinc 0.1.0 answered every wrong secret or token at once, for ever: no lockout.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from pinc import metrics
from pinc.web.throttle import Throttle, client_key
from tests.web.harness import SECRET, Env, make_config, start_env


@pytest.fixture
async def strict(nursery: trio.Nursery, tmp_path: Path) -> Env:
    config = make_config(tmp_path, web={"auth_failures_per_minute": 5})
    with trio.fail_after(15):
        return await start_env(nursery, tmp_path, config=config)


async def test_a_guesser_is_stopped_even_when_it_guesses_right(
    strict: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    before = metrics.REFUSED.labels(rule="throttle")._value.get()
    async with httpx.AsyncClient(base_url=strict.base) as client:
        # five failures of any kind: a secret, a token, a link, a ticket, a sign-in
        assert (await client.post("/makecall", params={"secret": "guess1", "from": "101",
                                                       "to": "79161234567"})).status_code == 403
        assert (await client.get("/api/calls", headers={"Authorization": "Bearer g"})
                ).status_code == 401
        assert (await client.get("/recording", params={"id": "x", "sig": "A" * 22})
                ).status_code == 403
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(f"ws://127.0.0.1:{strict.port}/ws?ticket=v1.ws.1.1.x"):
                pass
        assert (await client.post("/login", data={"token": "guess"})).status_code == 401
        # the sixth try, right this time, is not even looked at
        r = await client.get("/api/calls", headers=strict.auth)
        assert r.status_code == 429 and r.json()["error"]["code"] == "throttled"
        assert 1 <= int(r.headers["Retry-After"]) <= 61
        r = await client.post("/makecall", params={"secret": SECRET, "from": "101",
                                                   "to": "79161234567"})
        assert r.status_code == 429
        assert (await client.get("/ping")).status_code == 200  # monitoring goes on
    # another client is not affected
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=strict.base, transport=transport) as other:
        assert (await other.get("/api/calls", headers=strict.auth)).status_code == 200
    assert metrics.REFUSED.labels(rule="throttle")._value.get() == before + 2
    assert strict.ami.actions == []
    blocked = [r.getMessage() for r in caplog.records if "failed credentials" in r.getMessage()]
    assert blocked == ["127.0.0.1: 5 failed credentials in 60 s: refused for 60 s"]


async def test_clients_behind_a_proxy_are_told_apart(strict: Env) -> None:
    async with httpx.AsyncClient(base_url=strict.base) as client:
        for _ in range(5):
            await client.get("/api/calls", headers={"Authorization": "Bearer g",
                                                    "X-Forwarded-For": "198.51.100.7"})
        r = await client.get("/api/calls", headers={**strict.auth,
                                                    "X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 429
        r = await client.get("/api/calls", headers={**strict.auth,
                                                    "X-Forwarded-For": "198.51.100.8"})
        assert r.status_code == 200


def test_throttle_window() -> None:
    throttle = Throttle(3, 60.0)
    for t in (0.0, 10.0, 20.0):
        assert throttle.blocked("a", t) == 0.0
        throttle.failed("a", t)
    assert throttle.blocked("a", 20.0) == 40.0  # until the first failure is a minute old
    assert throttle.blocked("a", 59.0) == 1.0
    assert throttle.blocked("a", 60.0) == 0.0
    throttle.failed("a", 60.0)
    assert throttle.blocked("a", 60.0) == 10.0  # 10.0 + 60 - 60
    assert Throttle(0).blocked("a", 0.0) == 0.0
    assert client_key("10.0.0.1", None) == "10.0.0.1"
    assert client_key("127.0.0.1", "203.0.113.9, 10.0.0.1") == "127.0.0.1|203.0.113.9"
