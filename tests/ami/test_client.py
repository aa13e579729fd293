"""AmiClient against the fake Asterisk (AmiSimServer) over real TCP on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from pinc.ami.client import AmiClient
from pinc.ami.events import Connected, Disconnected, ListCompleted, Received
from pinc.ami.link import AmiNotConnected, check_connection
from pinc.ami.protocol import MAX_LINE, LocalProtocolError
from pinc.config import AmiConfig, Config
from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript

StartServer = Callable[..., Awaitable[AmiSimServer]]
SECRET = "pincsecret"


def config(port: int, **kw: Any) -> AmiConfig:
    base: dict[str, Any] = {
        "port": port,
        "username": "pinc",
        "secret": SECRET,
        "events": "on",
        "connect_timeout": 2.0,
        "action_timeout": 2.0,
        "ping_interval": 5.0,
        "ping_timeout": 2.0,
        "reconnect_min": 0.01,
        "reconnect_max": 0.05,
    }
    base.update(kw)
    return AmiConfig(**base)


def transcript(fixtures_dir: Path, name: str = "inbound_answered") -> list[bytes]:
    return load_transcript(fixtures_dir / "asterisk-local" / f"{name}.ami")


async def collect(client: AmiClient, count: int) -> list[Received | Connected | Disconnected]:
    """Read from the events channel until ``count`` Received items arrived."""
    out: list[Received | Connected | Disconnected] = []
    received = 0
    while received < count:
        item = await client.events.receive()
        out.append(item)
        received += isinstance(item, Received)
    return out


@pytest.mark.parametrize("auth", ["md5", "plain"])
async def test_login_and_every_event(
    ami_server: StartServer, fixtures_dir: Path, auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events = transcript(fixtures_dir)
    server = await ami_server(events)
    client = AmiClient(config(server.port, auth=auth))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            items = await collect(client, len(events))
            first = items[0]
            assert isinstance(first, Connected)
            assert first.reconnect is False and first.asterisk_version == "22.10.1"
            got = [i.message.to_bytes() for i in items if isinstance(i, Received)]
            assert [g.replace(b"\r\n", b"\n") for g in got] == [
                e.replace(b"\r\n", b"\n") for e in events
            ]
            assert server.auth_types == [auth]
            status = client.status()
            assert status["connected"] and status["reconnects"] == 0
            assert status["ami_version"] == "11.0.0"
            nursery.cancel_scope.cancel()
    # Logoff on shutdown, and the secret never logged.
    assert any(m.get("Action") == "Logoff" for m, _ in server.actions)
    assert SECRET not in caplog.text


async def test_events_and_filters_sent_at_login(ami_server: StartServer) -> None:
    server = await ami_server()
    client = AmiClient(config(server.port, events="call,cdr", filters=("Event: Hangup",)))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            assert isinstance(await client.events.receive(), Connected)
            login = next(m for m, _ in server.actions if m.get("Action") == "Login")
            assert login.get("Events") == "call,cdr"
            filt = next(m for m, _ in server.actions if m.get("Action") == "Filter")
            assert filt.get("Filter") == "Event: Hangup" and filt.get("Operation") == "Add"
            nursery.cancel_scope.cancel()


async def test_reconnect_after_drop_loses_nothing(
    ami_server: StartServer, fixtures_dir: Path
) -> None:
    events = transcript(fixtures_dir)
    half = len(events) // 2
    server = await ami_server(events[:half])
    client = AmiClient(config(server.port))
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await server.wait_replayed()
            await server.drop_clients()
            server.feed(events[half:])
            items = await collect(client, len(events))
            kinds = [type(i).__name__ for i in items]
            assert kinds.count("Connected") == 2 and kinds.count("Disconnected") == 1
            # Everything written before the drop arrived before the Disconnected notice.
            assert kinds.index("Disconnected") == half + 1
            received = [i for i in items if isinstance(i, Received)]
            assert len(received) == len(events)
            assert [r.message.get("Event") for r in received] == [
                e.split(b"\r\n", 1)[0].decode().split(": ")[1] for e in events
            ]
            second = next(i for i in items[1:] if isinstance(i, Connected))
            assert second.reconnect is True
            assert client.status()["reconnects"] == 1
            nursery.cancel_scope.cancel()


async def test_refused_then_server_appears(fixtures_dir: Path) -> None:
    # Find a free port, leave it closed: the first attempt is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events = transcript(fixtures_dir, "inbound_busy")
    client = AmiClient(config(port))
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)  # returns after the refused attempt
            assert client.status()["connected"] is False
            assert client.status()["last_error"]
            with pytest.raises(AmiNotConnected):
                await client.action("Ping")
            server = AmiSimServer(events, port=port)
            await nursery.start(server.run)
            items = await collect(client, len(events))
            assert isinstance(items[0], Connected) and items[0].reconnect is False
            nursery.cancel_scope.cancel()


async def test_auth_failure_backs_off_and_logs_once(
    ami_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await ami_server()
    server.fail_auth = True
    client = AmiClient(config(server.port, secret="wrong-secret-value"))
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await server.wait_for(lambda: server.failed_logins >= 4)
            assert not client.status()["connected"]
            server.fail_auth = False
            nursery.cancel_scope.cancel()
    refused = [r for r in caplog.records if "login refused" in r.getMessage()]
    assert len(refused) == 1
    assert "wrong-secret-value" not in caplog.text


async def test_wrong_secret_then_fixed(ami_server: StartServer) -> None:
    server = await ami_server(secret="other")
    client = AmiClient(config(server.port))
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            assert server.failed_logins >= 1 and server.logins == 0
            server.secret = SECRET
            assert isinstance(await client.events.receive(), Connected)
            nursery.cancel_scope.cancel()


async def test_stall_ping_timeout_reconnect(ami_server: StartServer, fixtures_dir: Path) -> None:
    events = transcript(fixtures_dir, "inbound_busy")
    server = await ami_server(events[:10])
    client = AmiClient(config(server.port, ping_interval=0.1, ping_timeout=0.2))
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await collect(client, 10)
            server.stall = True
            item = await client.events.receive()
            assert isinstance(item, Disconnected)
            assert "pong" in item.reason or "no data" in item.reason
            server.stall = False
            server.feed(events[10:])
            items = await collect(client, len(events) - 10)
            assert isinstance(items[0], Connected) and items[0].reconnect
            nursery.cancel_scope.cancel()


async def test_action_list_reply_matched_by_action_id(
    ami_server: StartServer, fixtures_dir: Path
) -> None:
    events = transcript(fixtures_dir, "inbound_answered")
    # Stop in the middle of the call: some channels are live.
    server = await ami_server(events[:60])
    client = AmiClient(config(server.port))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await collect(client, 60)
            live = server.live_channels()
            assert live
            result, pong = await client.action("CoreShowChannels"), await client.action("Ping")
            assert result.ok and result.response.get("EventList") == "start"
            assert [e.name for e in result.events] == ["CoreShowChannel"] * len(live)
            assert {e.get("Uniqueid") for e in result.events} == {c["Uniqueid"] for c in live}
            assert all(e.action_id == result.response.action_id for e in result.events)
            assert pong.response.get("Ping") == "Pong"
            assert pong.response.action_id != result.response.action_id
            cmd = await client.action("Command", {"Command": "core show version"})
            assert cmd.response.output and cmd.response.output[0].startswith("Asterisk 22")
            orig = await client.action(
                "Originate", {"Channel": "PJSIP/101", "Variable": ["A=1", "B=2"]}
            )
            assert orig.ok
            sent = [m for m, _ in server.actions if m.get("Action") == "Originate"][-1]
            assert sent.get_all("Variable") == ["A=1", "B=2"]
            with pytest.raises(LocalProtocolError):
                await client.action("Originate", {"Channel": "PJSIP/101\r\nAction: Hangup"})
            # Nothing is queued for the events consumer from the list reply.
            assert client.events.statistics().current_buffer_used == 0
            nursery.cancel_scope.cancel()


async def test_list_reply_in_stream_keeps_its_place_among_events(
    ami_server: StartServer, fixtures_dir: Path
) -> None:
    """With ``in_stream`` the CoreShowChannels list also arrives on ``events``, after the
    events Asterisk sent before it and before those it sent after: the ingest applies a
    resync there, so the snapshot matches the tracker's state exactly."""
    events = transcript(fixtures_dir, "inbound_answered")
    server = await ami_server(events[:60])
    client = AmiClient(config(server.port))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await collect(client, 60)
            result = await client.action("CoreShowChannels", in_stream=True)
            server.feed(events[60:80])
            item = await client.events.receive()
            assert isinstance(item, ListCompleted)
            assert item.action == "CoreShowChannels"
            assert item.events == result.events and item.events
            after = await collect(client, 20)
            assert all(isinstance(i, Received) for i in after)
            nursery.cancel_scope.cancel()


async def test_action_deadline(ami_server: StartServer) -> None:
    server = await ami_server()
    client = AmiClient(config(server.port))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            server.stall = True
            with pytest.raises(trio.TooSlowError):
                await client.action("Ping", timeout=0.1)
            nursery.cancel_scope.cancel()


async def test_backpressure_never_drops(ami_server: StartServer, fixtures_dir: Path) -> None:
    events = transcript(fixtures_dir)
    server = await ami_server(events)
    client = AmiClient(config(server.port, queue_size=5, ping_interval=0.05, ping_timeout=0.1))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            got = 0
            while got < len(events):
                item = await client.events.receive()
                assert not isinstance(item, Disconnected)
                got += isinstance(item, Received)
                if got % 20 == 0:
                    await trio.sleep(0.2)  # a slow consumer: longer than the ping timeout
            nursery.cancel_scope.cancel()
    assert server.logins == 1


BAD_INPUT = {
    "nul": b"Event: Bad\r\nKey: a\x00b\r\n\r\n",
    "long-line": b"Event: Bad\r\nKey: " + b"x" * (MAX_LINE + 100),
    "10000-headers": b"Event: Bad\r\n" + b"H: v\r\n" * 10_000 + b"\r\n",
    "no-blank-line-at-eof": b"Event: Bad\r\nKey: v\r\n",
    "banner": b"",  # the banner itself is wrong
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
async def test_bad_input_logged_once_dropped_and_reconnected(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that breaks the protocol: one error line with the byte offset, the link
    dropped and re-established, what came before the bad bytes delivered."""
    connections = 0
    third = trio.Event()

    async def bad_asterisk(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        if connections == 3:
            third.set()
        if case == "banner":
            await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n")
            await trio.sleep_forever()
        await stream.send_all(b"Asterisk Call Manager/11.0.0\r\n")
        buf = b""
        while b"Action: Login" not in buf or not buf.endswith(b"\r\n\r\n"):
            buf += await stream.receive_some(4096)
            if b"Action: Challenge" in buf and buf.endswith(b"\r\n\r\n"):
                await stream.send_all(
                    b"Response: Success\r\nActionID: pinc-challenge\r\nChallenge: 1\r\n\r\n"
                )
                buf = b""
        await stream.send_all(b"Response: Success\r\nActionID: pinc-login\r\n\r\n")
        await stream.send_all(b"Event: Good\r\nN: %d\r\n\r\n" % connections)
        await stream.send_all(BAD_INPUT[case])
        if case == "no-blank-line-at-eof":
            await stream.send_eof()  # a FIN after the cut-off message
        await trio.sleep_forever()

    good: list[str] = []
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, bad_asterisk, 0)
            port = listeners[0].socket.getsockname()[1]
            client = AmiClient(config(port, action_timeout=0.2))

            async def consume() -> None:
                async for item in client.events:
                    if isinstance(item, Received):
                        good.append(item.message.get("N"))

            nursery.start_soon(consume)
            await nursery.start(client.run)
            await third.wait()
            nursery.cancel_scope.cancel()
    errors = [r for r in caplog.records if "protocol error" in r.getMessage()]
    assert errors and all("at byte" in r.getMessage() for r in errors)
    assert len(errors) <= connections  # once per broken connection, not per byte or try
    if case != "banner":
        assert good[:2] == ["1", "2"]  # nothing before the bad bytes was lost


async def test_non_utf8_is_not_fatal(ami_server: StartServer) -> None:
    server = await ami_server(
        [b"Event: Newchannel\r\nCallerIDName: \xd0\xff\r\n\r\n", b"Event: Next\r\n\r\n"]
    )
    client = AmiClient(config(server.port))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            items = await collect(client, 2)
            received = [i.message for i in items if isinstance(i, Received)]
            assert received[0]["CallerIDName"] == "\ufffd\ufffd"
            assert received[1].name == "Next" and server.logins == 1
            nursery.cancel_scope.cancel()


def test_check_connection(fixtures_dir: Path) -> None:
    async def main() -> tuple[tuple[bool, str], tuple[bool, str], tuple[bool, str]]:
        server = AmiSimServer()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)
            good = await trio.to_thread.run_sync(check_connection, Config(ami=config(port)))
            bad = await trio.to_thread.run_sync(
                check_connection, Config(ami=config(port, secret="nope"))
            )
            nursery.cancel_scope.cancel()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
        refused = await trio.to_thread.run_sync(check_connection, Config(ami=config(closed)))
        return good, bad, refused

    good, bad, refused = trio.run(main)
    assert good[0] and "22.10.1" in good[1]
    assert not bad[0] and "refused" in bad[1] and "nope" not in bad[1]
    assert not refused[0]
