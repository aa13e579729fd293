"""The AMI client's deadlines and backoff on trio's autojump clock, over memory streams:
minutes of reconnecting and silent peers in milliseconds of test, exactly timed."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from pinc.ami.client import AmiClient
from pinc.ami.events import Connected, Disconnected
from pinc.ami.link import AmiNotConnected
from pinc.config import AmiConfig

CONFIG = AmiConfig(
    secret="pincsecret", auth="plain", reconnect_min=0.5, reconnect_max=30.0,
    ping_interval=20.0, ping_timeout=10.0, action_timeout=10.0, connect_timeout=5.0,
)


class Peer:
    """Asterisk's side of one memory-stream connection: banner, login, then as told."""

    def __init__(self, stream: trio.abc.Stream, *, pong: bool = True) -> None:
        self.stream = stream
        self.pong = pong
        self.actions: list[dict[str, str]] = []

    async def run(self) -> None:
        await self.stream.send_all(b"Asterisk Call Manager/11.0.0\r\n")
        buf = b""
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                block, buf = buf.split(b"\r\n\r\n", 1)
                fields = dict(
                    line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line
                )
                self.actions.append(fields)
                if fields.get("Action") == "Ping" and not self.pong:
                    continue
                if fields.get("Action") == "Slow":
                    continue  # never answered
                reply = f"Response: Success\r\nActionID: {fields.get('ActionID', '')}\r\n"
                if fields.get("Action") == "CoreSettings":
                    reply += "AsteriskVersion: 22.10.1\r\n"
                await self.stream.send_all(reply.encode() + b"\r\n")


async def test_backoff_doubles_with_jitter_up_to_the_cap(autojump_clock: object) -> None:
    attempts: list[float] = []

    async def refuse(config: AmiConfig) -> trio.abc.Stream:
        attempts.append(trio.current_time())
        raise OSError("connection refused")

    client = AmiClient(CONFIG, open_stream=refuse)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        with trio.fail_after(3600):
            while len(attempts) < 12:  # noqa: ASYNC110 (the autojump clock runs the client)
                await trio.sleep(1)
        nursery.cancel_scope.cancel()
    pauses = [b - a for a, b in itertools.pairwise(attempts)]
    delay = CONFIG.reconnect_min
    for pause in pauses:
        # each pause is the current delay times a jitter of 0.5-1.0, then the delay doubles
        assert delay * 0.5 <= pause <= delay * 1.0 + 1e-6, (pause, delay, pauses)
        delay = min(CONFIG.reconnect_max, delay * 2)
    assert max(pauses) <= CONFIG.reconnect_max and max(pauses) >= CONFIG.reconnect_max * 0.5
    assert client.status()["connected"] is False and "refused" in client.status()["last_error"]


async def test_no_pong_drops_the_link_at_the_deadline_then_reconnects(
    autojump_clock: object,
) -> None:
    peers: list[Peer] = []
    peer_nursery: list[trio.Nursery] = []

    async def open_stream(config: AmiConfig) -> trio.abc.Stream:
        ours, theirs = trio.testing.memory_stream_pair()
        peer = Peer(theirs, pong=bool(peers))  # the first Asterisk goes silent on Ping
        peers.append(peer)
        peer_nursery[0].start_soon(peer.run)
        return ours

    client = AmiClient(CONFIG, open_stream=open_stream)
    events: list[tuple[float, str]] = []
    async with trio.open_nursery() as nursery:
        peer_nursery.append(nursery)
        await nursery.start(client.run)
        while len(events) < 3:
            with trio.fail_after(600):  # clock seconds: a stuck client fails, never spins
                item = await client.events.receive()
            if isinstance(item, Connected | Disconnected):
                events.append((trio.current_time(), type(item).__name__))
        nursery.cancel_scope.cancel()
    (t0, first), (t1, lost), (t2, again) = events
    assert (first, lost, again) == ("Connected", "Disconnected", "Connected")
    # the first Ping goes out after ping_interval; no pong within ping_timeout: dropped
    assert t1 - t0 == pytest.approx(CONFIG.ping_interval + CONFIG.ping_timeout, abs=0.1)
    assert CONFIG.reconnect_min * 0.5 <= t2 - t1 <= CONFIG.reconnect_min + 0.1
    assert [a["Action"] for a in peers[0].actions].count("Ping") == 1


async def test_an_unanswered_action_fails_at_its_deadline(autojump_clock: object) -> None:
    async def open_stream(config: AmiConfig) -> trio.abc.Stream:
        ours, theirs = trio.testing.memory_stream_pair()
        nursery.start_soon(Peer(theirs).run)
        return ours

    client = AmiClient(CONFIG, open_stream=open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        while not client.status()["connected"]:  # noqa: ASYNC110 (autojump clock)
            await trio.sleep(0.01)
        started = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await client.action("Slow", timeout=3.0)
        assert trio.current_time() - started == pytest.approx(3.0, abs=0.01)
        ok = await client.action("Ping")
        assert ok.ok
        nursery.cancel_scope.cancel()
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")
