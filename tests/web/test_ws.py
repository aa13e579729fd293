"""WS /ws: snapshot, changes in order, the ext filter, auth, ping/pong, slow clients."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio_websocket
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from pinc import metrics
from pinc.calls.model import CallChange
from tests.web.harness import TOKEN, Env, call_dict, change, make_config, start_env

AUTH = [(b"Authorization", f"Bearer {TOKEN}".encode())]  # never ?token=: refused now


def url(env: Env, query: str = "") -> str:
    return f"ws://127.0.0.1:{env.port}/ws" + (f"?{query}" if query else "")


async def recv(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(5):
        message = json.loads(await ws.get_message())
    assert isinstance(message, dict)
    return message


async def test_snapshot_then_changes(env: Env) -> None:
    await env.put([change("call.started", call_dict("s1"))])
    with trio.fail_after(10):
        async with open_websocket_url(url(env), extra_headers=AUTH) as ws:
            snap = await recv(ws)
            assert snap["type"] == "snapshot"
            assert [c["id"] for c in snap["calls"]] == ["s1"]
            answered = call_dict("s1", status="answered", answered_by="101")
            ended = call_dict("s1", status="completed", answered_by="101", talk=4)
            await env.put([change("call.answered", answered), change("call.ended", ended)])
            m1, m2 = await recv(ws), await recv(ws)
            assert (m1["type"], m2["type"]) == ("call.answered", "call.ended")
            assert m2["call_id"] == "s1" and m2["call"]["talk"] == 4
            assert set(m2) == {"type", "call_id", "at", "data", "call"}
            await ws.send_message(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}
            await ws.send_message("not json")  # ignored, connection stays
            await ws.send_message(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}


async def test_ext_filter(env: Env) -> None:
    await env.put([change("call.started", call_dict("a1", legs=[{"ext": "101"}])),
                   change("call.started", call_dict("b1", legs=[{"ext": "102"}]))])
    with trio.fail_after(10):
        async with open_websocket_url(url(env, "ext=102"), extra_headers=AUTH) as ws:
            snap = await recv(ws)
            assert [c["id"] for c in snap["calls"]] == ["b1"]
            await env.put([
                change("call.ended", call_dict("a1", status="missed", legs=[{"ext": "101"}])),
                change("call.ended", call_dict("b1", status="missed", legs=[{"ext": "102"}])),
            ])
            m = await recv(ws)
            assert (m["type"], m["call_id"]) == ("call.ended", "b1")


@pytest.mark.parametrize(
    ("query", "token", "status"),
    [("", None, 401), ("", "wrong", 401),
     (f"token={TOKEN}", None, 401),  # 0.1.0 took the token in the URL: refused now
     ("ext=10%0A1", TOKEN, 400), ("ext=PJSIP/101", TOKEN, 400)],
)
async def test_refused(env: Env, query: str, token: str | None, status: int) -> None:
    before = metrics.AUTH_FAILURES.labels(route="/ws")._value.get()
    headers = [(b"Authorization", f"Bearer {token}".encode())] if token else []
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(url(env, query), extra_headers=headers):
            pass
    assert info.value.status_code == status
    if status == 401:
        assert metrics.AUTH_FAILURES.labels(route="/ws")._value.get() == before + 1


async def test_token_in_header(env: Env) -> None:
    with trio.fail_after(10):
        async with open_websocket_url(
            url(env, ""), extra_headers=[(b"Authorization", f"Bearer {TOKEN}".encode())]
        ) as ws:
            assert (await recv(ws))["type"] == "snapshot"


async def _small_buffer_client(
    nursery: trio.Nursery, port: int, resource: str
) -> trio_websocket.WebSocketConnection:
    """A websocket client with a tiny socket buffer, so not reading backs up the server."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    return await trio_websocket.wrap_client_stream(
        nursery, stream, "127.0.0.1", resource, message_queue_size=1, extra_headers=AUTH
    )


async def test_slow_client_dropped_fast_client_gets_everything(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = make_config(tmp_path, web={"ws_queue": 16})
    env = await start_env(nursery, tmp_path, config=config, write_timeout=60)
    total = 3000
    pad = "x" * 3000  # ~3 KB a message: ~9 MB in all, far more than socket buffers
    with trio.fail_after(60):
        async with open_websocket_url(url(env), message_queue_size=64,
                                      extra_headers=AUTH) as fast:
            slow = await _small_buffer_client(nursery, env.port, "/ws")
            assert (await recv(fast))["type"] == "snapshot"
            got: list[int] = []
            done = trio.Event()

            async def read_fast() -> None:
                while len(got) < total:
                    got.append(json.loads(await fast.get_message())["data"]["n"])
                done.set()

            nursery.start_soon(read_fast)
            for n in range(total):
                # paced by the fast client only: it never falls 16 behind; the slow one does
                while len(got) < n - 8:  # noqa: ASYNC110 (polls state another task owns)
                    await trio.sleep(0.001)
                c = call_dict(f"f{n}", notes=pad)
                env.feed.publish([CallChange("call.ringing", c["id"], "2026-11-24T00:42:06Z", c,
                                             {"n": n})])
                await trio.lowlevel.checkpoint()
            await done.wait()
            assert got == list(range(total))  # everything, in order
            # Now the slow client reads: what was buffered, then the close code.
            received = 0
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await slow.get_message()
                    received += 1
            assert info.value.reason.code == 4008
            assert 0 < received < total


async def test_client_that_stops_reading_is_cut_by_the_write_deadline(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = make_config(tmp_path, web={"ws_queue": 8})
    env = await start_env(nursery, tmp_path, config=config, write_timeout=0.3)
    with trio.fail_after(30):
        stuck = await _small_buffer_client(nursery, env.port, "/ws")
        assert stuck is not None
        while env.feed.statistics()["subscribers"] < 1:  # noqa: ASYNC110 (polls state another task owns)
            await trio.sleep(0.01)
        pad = "y" * 3000
        while env.feed.statistics()["subscribers"] > 0:  # gone once the deadline cut it
            env.feed.publish([change("call.ringing", call_dict("z", notes=pad))])
            await trio.sleep(0.005)


class CountingJournal:
    """The real journal, counting the live-calls snapshots read through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.snapshots = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def read(self, fn: Any) -> Any:
        from pinc.journal import queries

        if fn is queries.live_calls:
            self.snapshots += 1
        return await self.inner.read(fn)


async def test_connecting_clients_share_one_snapshot(env: Env) -> None:
    """200 clients arriving together once held 200 copies of a 1 MB snapshot (1.7 GB)."""
    await env.put([change("call.started", call_dict(f"k{i}")) for i in range(50)])
    counting = CountingJournal(env.services.journal)
    env.services.journal = counting  # type: ignore[assignment]
    sizes: list[int] = []

    async def connect() -> None:
        async with open_websocket_url(url(env), extra_headers=AUTH) as ws:
            snap = await recv(ws)
            sizes.append(len(snap["calls"]))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(connect)
    assert sizes == [50] * 20
    assert counting.snapshots == 1
    # After a change is published, the next client gets a fresh snapshot that holds it.
    await env.put([change("call.started", call_dict("k-new"))])
    with trio.fail_after(10):
        async with open_websocket_url(url(env), extra_headers=AUTH) as ws:
            snap = await recv(ws)
    assert "k-new" in {c["id"] for c in snap["calls"]}
    assert counting.snapshots == 2


async def test_module_ticket_shows_only_its_extension(env: Env) -> None:
    import time

    from pinc.web import tickets
    from tests.web.harness import SECRET

    await env.put([change("call.started", call_dict("a1", legs=[{"ext": "101"}])),
                   change("call.started", call_dict("b1", legs=[{"ext": "102"}]))])
    ticket = tickets.mint(SECRET, "ws", "102", now=time.time(), ttl=60)
    with trio.fail_after(10):
        async with open_websocket_url(url(env, f"ticket={ticket}")) as ws:
            snap = await recv(ws)
            assert [c["id"] for c in snap["calls"]] == ["b1"]
            await env.put([
                change("call.ended", call_dict("a1", status="missed", legs=[{"ext": "101"}])),
                change("call.ended", call_dict("b1", status="missed", legs=[{"ext": "102"}])),
            ])
            m = await recv(ws)
            assert (m["type"], m["call_id"]) == ("call.ended", "b1")


@pytest.mark.parametrize("why", ["expired", "forged", "other-ext", "token-as-ticket"])
async def test_bad_module_ticket_is_refused(env: Env, why: str) -> None:
    import time

    from pinc.web import tickets
    from tests.web.harness import SECRET

    now = time.time()
    ticket = {
        "expired": tickets.mint(SECRET, "ws", "102", now=now - 120, ttl=60),
        "forged": tickets.mint("not-the-secret", "ws", "102", now=now, ttl=60),
        "other-ext": tickets.mint(SECRET, "ws", "101", now=now, ttl=60) + "&ext=102",
        "token-as-ticket": TOKEN,
    }[why]
    before = metrics.AUTH_FAILURES.labels(route="/ws")._value.get()
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(url(env, f"ticket={ticket}")):
            pass
    assert info.value.status_code == 401
    assert metrics.AUTH_FAILURES.labels(route="/ws")._value.get() == before + 1
