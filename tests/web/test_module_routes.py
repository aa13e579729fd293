"""GET /calls/live: what pinc's vtiger module asks for its card's polling fallback."""

from __future__ import annotations

import time

import httpx
import pytest

from pinc import metrics
from pinc.web import tickets
from tests.web.harness import SECRET, TOKEN, Env, call_dict, change


async def test_live_calls_of_the_tickets_extension(env: Env, client: httpx.AsyncClient) -> None:
    await env.put([
        change("call.started", call_dict("a1", legs=[{"ext": "101", "result": None}])),
        change("call.started", call_dict("b1", legs=[{"ext": "102", "result": None}])),
        change("call.started", call_dict("b2", direction="outbound", **{"from": "102"},
                                         to="79161234567", legs=[])),
    ])
    await env.put([change("call.ended", call_dict("a1", status="missed",
                                                  legs=[{"ext": "101", "result": "cancelled"}]))])
    ticket = tickets.mint(SECRET, "ws", "102", now=time.time(), ttl=60)
    r = await client.get("/calls/live", params={"ticket": ticket})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["ext"] == "102"
    assert sorted(c["id"] for c in body["calls"]) == ["b1", "b2"]
    mine = tickets.mint(SECRET, "ws", "101", now=time.time(), ttl=60)
    assert (await client.get("/calls/live", params={"ticket": mine})).json()["calls"] == []


@pytest.mark.parametrize("why", [
    "missing", "empty", "expired", "forged", "recording ticket", "the API token", "truncated",
    "too far ahead",
])
async def test_bad_tickets_are_refused_and_counted(
    env: Env, client: httpx.AsyncClient, why: str
) -> None:
    now = time.time()
    good = tickets.mint(SECRET, "ws", "101", now=now, ttl=60)
    far = int(now) + 7200
    params = {
        "missing": {},
        "empty": {"ticket": ""},
        "expired": {"ticket": tickets.mint(SECRET, "ws", "101", now=now - 120, ttl=60)},
        "forged": {"ticket": tickets.mint("not-the-secret", "ws", "101", now=now, ttl=60)},
        "recording ticket": {
            "ticket": f"v1.recording.c1.0.{tickets.signature(SECRET, 'recording', 'c1')}"},
        "the API token": {"ticket": TOKEN},
        "truncated": {"ticket": good[:-3]},
        "too far ahead": {
            "ticket": f"v1.ws.101.{far}.{tickets.signature(SECRET, 'ws', '101', far)}"},
    }[why]
    before = metrics.AUTH_FAILURES.labels(route="/calls/live")._value.get()
    r = await client.get("/calls/live", params=params)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert metrics.AUTH_FAILURES.labels(route="/calls/live")._value.get() == before + 1
