"""The fake Asterisk itself: transcripts, id rewriting, replay modes, event classes."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import trio

from pinc.ami.protocol import NEED_DATA, AMIConnection, Message, parse_block
from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript, rewrite_ids

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("asterisk-*/*.ami")), ids=lambda p: p.name)
def test_load_transcript_counts_every_event(path: Path) -> None:
    grep = subprocess.run(["grep", "-c", "^Event:", str(path)], capture_output=True, text=True)
    events = load_transcript(path)
    assert len(events) == int(grep.stdout)
    assert all(e.startswith(b"Event: ") and e.endswith(b"\r\n\r\n") for e in events)


def test_rewrite_ids_makes_fresh_calls() -> None:
    events = load_transcript(FIXTURES / "asterisk-local" / "inbound_answered.ami")
    fresh = rewrite_ids(events, epoch=1_900_000_000, seq_offset=1000)
    old = [parse_block(e.decode().rstrip("\r\n")) for e in events]
    new = [parse_block(e.decode().rstrip("\r\n")) for e in fresh]
    pairs = [(o, n) for o, n in zip(old, new, strict=True) if o.get("Uniqueid")]
    assert pairs
    for o, n in pairs:
        if re.fullmatch(r"\d+\.\d+", o["Uniqueid"]):
            _, s_old = map(int, o["Uniqueid"].split("."))
            e_new, s_new = map(int, n["Uniqueid"].split("."))
            assert s_new == s_old + 1000 and e_new >= 1_900_000_000
            assert n.get("Linkedid") != o.get("Linkedid") or "Linkedid" not in o
    assert {n.get("Channel") for _, n in pairs}.isdisjoint({o.get("Channel") for o, _ in pairs})
    cdr_old = [m for m in old if m.name == "Cdr"]
    cdr_new = [m for m in new if m.name == "Cdr"]
    assert cdr_new and cdr_new[0]["StartTime"] != cdr_old[0]["StartTime"]
    assert [m.name for m in old] == [m.name for m in new]


async def login(port: int, *, md5: bool = True, events: str = "on") -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = AMIConnection()
    buf = b""

    async def reply() -> Message:
        nonlocal buf
        while True:
            msg = conn.next_message()
            if isinstance(msg, Message) and msg.kind.value == "response":
                return msg
            if msg is NEED_DATA:
                conn.feed(await stream.receive_some(65536))

    if md5:
        await stream.send_all(b"Action: Challenge\r\nAuthType: MD5\r\n\r\n")
        challenge = (await reply())["Challenge"]
        key = hashlib.md5((challenge + "pincsecret").encode()).hexdigest()
        await stream.send_all(
            f"Action: Login\r\nAuthType: MD5\r\nUsername: pinc\r\nKey: {key}\r\n"
            f"Events: {events}\r\n\r\n".encode()
        )
    else:
        await stream.send_all(
            b"Action: Login\r\nUsername: pinc\r\nSecret: pincsecret\r\n"
            + f"Events: {events}\r\n\r\n".encode()
        )
    assert (await reply()).name == "Success"
    return stream


async def read_events(stream: trio.SocketStream, count: int) -> list[str]:
    conn = AMIConnection(expect_banner=False)
    names: list[str] = []
    while len(names) < count:
        conn.feed(await stream.receive_some(65536))
        names += [m.name for m in conn.messages() if isinstance(m, Message) and m.is_event]
    return names


async def test_event_classes_and_replay_order(ami_server: object) -> None:
    events = [
        b"Event: A\r\nPrivilege: call,all\r\n\r\n",
        b"Event: B\r\nPrivilege: system,all\r\n\r\n",
        (0.01, b"Event: C\r\nPrivilege: cdr,all\r\n\r\n"),
    ]
    server = AmiSimServer(events)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)
            stream = await login(port, events="call,cdr")
            assert await read_events(stream, 2) == ["A", "C"]
            await server.wait_replayed()
            assert server.auth_types == ["md5"]
            nursery.cancel_scope.cancel()


async def test_replay_waits_for_a_login_unless_told_not_to() -> None:
    events = [b"Event: A\r\nPrivilege: call,all\r\n\r\n"] * 3
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            patient = AmiSimServer(events)
            await nursery.start(patient.run)
            await trio.sleep(0.05)
            assert patient.replayed == 0  # nobody logged in yet
            live = AmiSimServer(events, replay_on_login=False)
            await nursery.start(live.run)
            await live.wait_replayed()  # played to nobody, like a real PBX
            stream = await login(patient.port, md5=False)
            assert await read_events(stream, 3) == ["A", "A", "A"]
            nursery.cancel_scope.cancel()


async def test_actions_recorded_raw_and_parsed() -> None:
    server = AmiSimServer()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)
            stream = await login(port)
            raw = b"Action: Originate\r\nActionID: o1\r\nChannel: PJSIP/101\r\nAsync: true\r\n\r\n"
            await stream.send_all(raw)
            await server.wait_for(lambda: len(server.actions) >= 3)
            msg, got = server.actions[-1]
            assert got == raw and msg["Channel"] == "PJSIP/101"
            nursery.cancel_scope.cancel()
