"""The JSON API: bearer auth, JSON errors, filters, cursor pagination, click-to-call."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import trio

from pinc import metrics
from pinc.web.app import create_app
from tests.web.harness import TOKEN, Env, call_dict, change


def _err(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code


async def _many(env: Env, n: int) -> None:
    changes = []
    for i in range(n):
        call = call_dict(
            f"c{i:03d}",
            status="completed" if i % 2 else "missed",
            direction="inbound" if i % 3 else "outbound",
            started_at=f"2026-11-24T01:{i // 60:02d}:{i % 60:02d}Z",
            answered_by="101" if i % 2 else None,
            ended_at="2026-11-24T02:00:00Z",
            **({"from": "101", "to": "79161234567"} if i % 3 == 0 else {}),
        )
        changes.append(change("call.ended", call))
    await env.put(changes)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic " + TOKEN},
     {"Authorization": "Bearer " + TOKEN[:-1]}, {"Cookie": "pinc_session=nope"},
     {"Cookie": f"pinc_token={TOKEN}"}],  # 0.1.0's cookie held the token itself
)
async def test_api_needs_the_token(env: Env, client: httpx.AsyncClient, headers: dict) -> None:
    before = metrics.AUTH_FAILURES.labels(route="/api/calls")._value.get()
    r = await client.get("/api/calls", headers=headers)
    _err(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert metrics.AUTH_FAILURES.labels(route="/api/calls")._value.get() == before + 1
    r = await client.post("/api/calls", headers=headers, json={"from": "101", "to": "7916"})
    _err(r, 401)
    assert env.ami.actions == []


async def test_list_filters_and_cursor_pagination(env: Env, client: httpx.AsyncClient) -> None:
    await _many(env, 25)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/calls", params=params, headers=env.auth)
        assert r.status_code == 200
        body = r.json()
        seen += [c["id"] for c in body["calls"]]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"c{i:03d}" for i in reversed(range(25))]  # newest first, no repeats
    r = await client.get("/api/calls", params={"status": "missed"}, headers=env.auth)
    assert {c["status"] for c in r.json()["calls"]} == {"missed"}
    r = await client.get("/api/calls", params={"direction": "outbound"}, headers=env.auth)
    assert len(r.json()["calls"]) == 9
    r = await client.get(
        "/api/calls", params={"since": "2026-11-24T01:00:20Z", "until": "2026-11-24T01:00:22Z"},
        headers=env.auth,
    )
    assert [c["id"] for c in r.json()["calls"]] == ["c021", "c020"]
    r = await client.get("/api/calls", params={"ext": "101", "limit": 500}, headers=env.auth)
    assert len(r.json()["calls"]) == 25  # every call rang 101
    r = await client.get("/api/calls", params={"ext": "102"}, headers=env.auth)
    assert r.json()["calls"] == []
    r = await client.get("/api/calls", params={"number": "+79161234567"}, headers=env.auth)
    assert len(r.json()["calls"]) == 9


@pytest.mark.parametrize(
    "params",
    [{"status": "bogus"}, {"direction": "sideways"}, {"limit": "0"}, {"limit": "501"},
     {"limit": "x"}, {"since": "yesterday"}, {"cursor": "not a cursor!"}, {"cursor": "abc"},
     {"ext": "101\n"}, {"number": "12a"}],
)
async def test_list_bad_filters(env: Env, client: httpx.AsyncClient, params: dict) -> None:
    r = await client.get("/api/calls", params=params, headers=env.auth)
    _err(r, 400, "bad_request")


async def test_get_one_call_with_changes(env: Env, client: httpx.AsyncClient) -> None:
    ringing = call_dict("k1")
    answered = call_dict("k1", status="answered", answered_by="101")
    ended = call_dict("k1", status="completed", answered_by="101", talk=3)
    await env.put([change("call.started", ringing), change("call.answered", answered),
                   change("call.ended", ended)])
    r = await client.get("/api/calls/k1", headers=env.auth)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed" and body["legs"][0]["ext"] == "101"
    assert [c["type"] for c in body["changes"]] == ["call.started", "call.answered", "call.ended"]
    _err(await client.get("/api/calls/zzz", headers=env.auth), 404, "not_found")
    _err(await client.get("/api/calls/a%20b", headers=env.auth), 400, "bad_request")
    _err(await client.get("/api/nothing-here", headers=env.auth), 404)
    _err(await client.delete("/api/calls/k1", headers=env.auth), 405)


async def test_no_token_in_a_query_string(env: Env, client: httpx.AsyncClient) -> None:
    """0.1.0 took ``?token=`` on every route: it landed in histories and proxy logs."""
    for path in ("/api/calls", "/api/live", "/metrics", "/"):
        r = await client.get(path, params={"token": TOKEN})
        assert r.status_code == 401, path
    r = await client.get("/api/calls", headers=env.auth)
    assert r.status_code == 200


async def test_click_to_call_json(env: Env, client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/calls", headers=env.auth,
        json={"from": "101", "to": "+79161234567", "record": "12", "variables": {"deal": "7"}},
    )
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "originating" and body["to"] == "79161234567"
    with trio.fail_after(5):
        while not env.ami.actions:  # noqa: ASYNC110 (polls state another task owns)
            await trio.sleep(0.005)
    fields = env.ami.actions[0][1]
    assert ("ChannelId", body["channel_id"]) in fields
    assert ("Variable", "deal=7") in fields
    assert env.ingest.notes[0][1]["record_id"] == "12"


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1,2]", b'{"from": "101"}', b'{"from": "10\\n1", "to": "79161234567"}',
     b'{"from": "101", "to": "7916,1"}', b'{"from": {"a": 1}, "to": "79161234567"}',
     b'{"from": "101", "to": "79161234567", "variables": {"CALLERID(num)": "1"}}',
     b'{"from": "101", "to": "79161234567", "context": "x\\r\\ny"}'],
)
async def test_click_to_call_bad_bodies(env: Env, client: httpx.AsyncClient, body: bytes) -> None:
    r = await client.post(
        "/api/calls", headers={**env.auth, "Content-Type": "application/json"}, content=body
    )
    _err(r, 400, "bad_request")
    await trio.sleep(0.02)
    assert env.ami.actions == []


async def test_click_to_call_without_ami(env: Env, client: httpx.AsyncClient) -> None:
    env.ami.connected = False
    r = await client.post("/api/calls", headers=env.auth,
                          json={"from": "101", "to": "79161234567"})
    _err(r, 503, "ami_unavailable")


async def test_body_too_large(env: Env, client: httpx.AsyncClient) -> None:
    json_type = {**env.auth, "Content-Type": "application/json"}
    r = await client.post("/api/calls", headers=json_type, content=b"{" + b" " * 70_000 + b"}")
    _err(r, 413)


async def test_api_transfer(env: Env, client: httpx.AsyncClient) -> None:
    env.ingest.channels["t1"] = [
        {"channel": "PJSIP/trunk-01", "uniqueid": "1.1", "ext": "", "role": "customer",
         "bridge": "b-1", "partner": "employee"},
        {"channel": "PJSIP/101-02", "uniqueid": "1.2", "ext": "101", "role": "employee",
         "bridge": "b-1", "partner": "customer"},
    ]
    r = await client.post("/api/calls/t1/transfer", headers=env.auth, json={"to": "102"})
    assert r.status_code == 200 and r.json()["status"] == "sent"
    assert env.ami.actions[-1][0] == "BlindTransfer"
    r = await client.post(
        "/api/calls/t1/transfer", headers=env.auth, json={"to": "102", "mode": "attended"}
    )
    assert env.ami.actions[-1] == (
        "Atxfer", [("Channel", "PJSIP/101-02"), ("Exten", "102"), ("Context", "from-internal")]
    )
    _err(await client.post("/api/calls/t1/transfer", headers=env.auth, json={"to": "1@2"}), 400)
    _err(await client.post("/api/calls/t1/transfer", headers=env.auth,
                           json={"to": "102", "mode": "psychic"}), 400)
    _err(await client.post("/api/calls/none/transfer", headers=env.auth, json={"to": "102"}),
         404, "not_found")
    await env.put([change("call.ended", call_dict("old", status="missed"))])
    _err(await client.post("/api/calls/old/transfer", headers=env.auth, json={"to": "102"}),
         409, "not_live")
    env.ingest.channels["q1"] = [{"channel": "PJSIP/trunk-03", "uniqueid": "2.1", "ext": "",
                                  "role": "customer"}]
    _err(await client.post("/api/calls/q1/transfer", headers=env.auth,
                           json={"to": "102", "mode": "attended"}), 409, "not_answered")


async def test_live_endpoint(env: Env, client: httpx.AsyncClient) -> None:
    await env.put([change("call.started", call_dict("l1")),
                   change("call.started", call_dict("l2", legs=[{"ext": "102"}]))])
    r = await client.get("/api/live", headers=env.auth)
    assert [c["id"] for c in r.json()["calls"]] == ["l1", "l2"]
    r = await client.get("/api/live", params={"ext": "102"}, headers=env.auth)
    assert [c["id"] for c in r.json()["calls"]] == ["l2"]


async def test_openapi_matches_the_routes(env: Env, client: httpx.AsyncClient) -> None:
    r = await client.get("/api/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    documented = {
        (path, method.upper())
        for path, ops in spec["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "delete", "patch", "head")
    }
    app = create_app(None)
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method in ("OPTIONS", "HEAD"):
                continue
            served.add((path, method))
    assert documented == served
    spec_file = trio.Path(__file__).parents[2] / "pinc" / "web" / "openapi.json"
    assert json.loads(await spec_file.read_text()) == spec
