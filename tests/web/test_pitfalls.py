"""The stack traps of stack-pitfalls.md ("HTTP and websockets"), each pinned by a test,
plus metrics and idle connections."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.web.harness import TOKEN, Env, call_dict, start_env


async def _read_to_eof(stream: trio.SocketStream) -> bytes:
    out = b""
    while chunk := await stream.receive_some(65536):
        out += chunk
    return out


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"GET /ping HTTP/1.0\r\n\r\n",
        b"POST /makecall?secret=x&from=101&to=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_connection_close_gets_eof(env: Env, request_bytes: bytes) -> None:
    """Trap 1: quart-trio on hypercorn never closed such connections."""
    with trio.fail_after(3):  # below the 5 s keep-alive timeout: EOF must come at once
        stream = await trio.open_tcp_stream("127.0.0.1", env.port)
        async with stream:
            await stream.send_all(request_bytes)
            answer = await _read_to_eof(stream)
    assert answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))


async def test_idle_keepalive_connection_is_closed(nursery: trio.Nursery, tmp_path: Path) -> None:
    env = await start_env(nursery, tmp_path)
    with trio.fail_after(15):  # keep-alive is 5 s
        stream = await trio.open_tcp_stream("127.0.0.1", env.port)
        async with stream:
            await stream.send_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = await _read_to_eof(stream)
    assert answer.startswith(b"HTTP/1.1 200")


def _upgrade(trailing: bytes) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
        + b"\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\n" + trailing
    )


async def test_malformed_websocket_upgrade_gets_400_and_server_survives(env: Env) -> None:
    """Trap 2: h11's LocalProtocolError escaped hypercorn.trio.serve and killed the server."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", env.port)
        async with stream:
            await stream.send_all(_upgrade(b"hello trailing bytes"))
            answer = await _read_to_eof(stream)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
        async with httpx.AsyncClient(base_url=env.base) as client:
            r = await client.get("/ping")
            assert r.status_code == 200


async def test_garbage_does_not_hurt(env: Env) -> None:
    with trio.fail_after(10):
        for junk in (b"\x00\xff" * 100 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                     b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n"):
            stream = await trio.open_tcp_stream("127.0.0.1", env.port)
            async with stream:
                await stream.send_all(junk)
                with trio.move_on_after(3):
                    await _read_to_eof(stream)
        async with httpx.AsyncClient(base_url=env.base) as client:
            assert (await client.get("/ping")).status_code == 200


async def test_hundreds_of_idle_connections_do_not_stop_ping(env: Env) -> None:
    """10,000 were checked by hand (docs/api.md); CI keeps a few hundred."""
    idle: list[trio.SocketStream] = []
    try:
        with trio.fail_after(20):
            for i in range(400):
                s = await trio.open_tcp_stream("127.0.0.1", env.port)
                if i % 2:
                    await s.send_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
                idle.append(s)
            async with httpx.AsyncClient(base_url=env.base) as client:
                for _ in range(5):
                    assert (await client.get("/ping")).status_code == 200
    finally:
        for s in idle:
            await trio.aclose_forcefully(s)


async def test_ping_has_no_secrets(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.base) as client:
        assert (await client.get("/ping")).json() == {"status": "ok"}  # no credential
        r = await client.get("/ping", headers=env.auth)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["ami"]["connected"] is True
    assert body["crm"] == {"state": "ok", "backlog": 3, "oldest_age": 1.5, "enabled": False}
    assert body["journal"]["ok"] is True
    text = r.text
    for secret in (TOKEN, "pinc-lab-secret-42", "pincsecret"):
        assert secret not in text


async def test_metrics(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.base) as client:
        await client.get("/ping")
        await client.get("/api/calls")  # 401
        refused = await client.get("/metrics")  # loopback proves nothing (a local proxy)
        r = await client.get("/metrics", headers=env.auth)
    assert refused.status_code == 401
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert 'pinc_http_requests_total{code="200",route="/ping"}' in text
    assert 'pinc_auth_failures_total{route="/api/calls"}' in text
    assert "pinc_outbox_backlog 3.0" in text
    assert "pinc_ws_clients" in text and "pinc_ami_events_total" in text


async def test_metrics_off_loopback_needs_a_token(env: Env) -> None:
    # Hypercorn takes the client address from the socket; emulate a remote peer by
    # asking the app directly with a non-loopback remote address.
    from pinc.web.app import create_app

    app = create_app(env.services, spawn=lambda fn: None)
    test_client = app.test_client()
    r = await test_client.get("/metrics", scope_base={"client": ("192.0.2.7", 5555)})
    assert r.status_code == 401
    r = await test_client.get(
        "/metrics", scope_base={"client": ("192.0.2.7", 5555)},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 200


async def test_ping_counts_live_calls_without_building_them(env: Env) -> None:
    # With 2,000 live calls, building each one's dict made every /ping 25-90 ms of
    # stopped loop (docs/performance.md, fix 6): /ping and /metrics must only count.
    env.ingest.live = [call_dict(f"c{n:05d}") for n in range(3)]

    def refuse() -> list[dict[str, Any]]:
        raise AssertionError("/ping must not build the live calls")

    env.ingest.live_calls = refuse  # type: ignore[method-assign]
    async with httpx.AsyncClient(base_url=env.base) as client:
        r = await client.get("/ping", headers=env.auth)
        metrics_text = (await client.get("/metrics", headers=env.auth)).text
    assert r.status_code == 200 and r.json()["live_calls"] == 3
    assert "pinc_live_calls 3.0" in metrics_text
