"""The FastAGI server over real TCP on 127.0.0.1: the recorded conversation and the bad cases."""

from __future__ import annotations

import logging
import time

import pytest
import trio

from pinc import metrics
from pinc.routing import Customer
from pinc.services import Responsible

from .conftest import (
    FIXTURES,
    FakeCrm,
    FakeJournal,
    agi_client,
    environment,
    fixture_environment,
    make_config,
    start,
)

ONLY_EXT = Customer("", user_extension="102")
IVAN = Customer("Ivan Petrov", "Contacts", "12x34", "Anna Smirnova", "102")
LAB_VARS = {"var_responsible": "RESPONSIBLE"}


def sessions(result: str) -> float:
    value = metrics.REGISTRY.get_sample_value("pinc_agi_sessions_total", {"result": result})
    return value or 0.0


@pytest.mark.parametrize(
    ("agi", "stub"),
    [
        ("asterisk-local/agi_responsible.agi", "asterisk-local/agi_responsible.agi.stub"),
        (
            "asterisk-pjsip/pjsip_agi_responsible.agi",
            "asterisk-pjsip/pjsip_agi_responsible.agi.stub",
        ),
    ],
)
async def test_recorded_conversation_byte_for_byte(
    nursery: trio.Nursery, agi: str, stub: str
) -> None:
    """Asterisk's recorded environment in, exactly the lab stub's answer out, then close."""
    crm = FakeCrm({"79161234567": ONLY_EXT})
    running = await start(nursery, make_config(agi=LAB_VARS), crm, None)
    before = sessions("ok")
    # what Asterisk answered the stub, from the recording, after the blank line
    recorded = (FIXTURES / agi).read_bytes()
    asterisk_reply = recorded[len(fixture_environment(agi)) :]
    with trio.fail_after(10):
        sent = await agi_client(running.port, fixture_environment(agi), answer=asterisk_reply)
    assert b"".join(sent) == (FIXTURES / stub).read_bytes()
    assert crm.calls == ["79161234567"]  # agi_arg_1, normalised
    assert sessions("ok") == before + 1


async def test_all_three_variables_with_default_names(nursery: trio.Nursery) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    running = await start(nursery, make_config(), crm, None)
    with trio.fail_after(10):
        sent = await agi_client(running.port, fixture_environment())
    assert sent == [
        b"SET VARIABLE PINC_RESPONSIBLE 102\n",
        b'SET VARIABLE PINC_RESPONSIBLE_USER "Anna Smirnova"\n',
        b'SET VARIABLE PINC_CUSTOMER_NAME "Ivan Petrov"\n',
    ]


async def test_callerid_without_args_uses_agi_callerid(nursery: trio.Nursery) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    running = await start(nursery, make_config(), crm, None)
    with trio.fail_after(10):
        sent = await agi_client(running.port, environment("callerid", "+7 916 123-45-67"))
    assert sent == [b'SET VARIABLE CALLERID(name) "Ivan Petrov"\n']


async def test_crm_values_cannot_inject_lines(nursery: trio.Nursery) -> None:
    evil = Customer('Evil\n"HANGUP\r\nEXEC Dial', user_name="A\\B", user_extension="10\n2")
    running = await start(nursery, make_config(), FakeCrm({"79161234567": evil}), None)
    with trio.fail_after(10):
        sent = await agi_client(running.port, environment())
    # "10\n2" is not an extension (pbx.extension_pattern): no manager, only the name
    assert sent == [b'SET VARIABLE PINC_CUSTOMER_NAME "Evil \\"HANGUP EXEC Dial"\n']


@pytest.mark.parametrize("ext", ["102&PJSIP/evil", "PJSIP/102", "1", "123456"])
async def test_responsible_must_be_an_extension(nursery: trio.Nursery, ext: str) -> None:
    crm = FakeCrm({"79161234567": Customer("Ivan", user_extension=ext)})
    running = await start(nursery, make_config(agi=LAB_VARS), crm, None)
    with trio.fail_after(10):
        sent = await agi_client(running.port, environment())
    assert sent == [b"SET VARIABLE PINC_CUSTOMER_NAME Ivan\n"]


async def test_unknown_caller_sets_nothing_and_closes(nursery: trio.Nursery) -> None:
    running = await start(nursery, make_config(), FakeCrm(), None)
    with trio.fail_after(10):
        assert await agi_client(running.port, environment(callerid="unknown")) == []
        assert await agi_client(running.port, environment(callerid="79990000000")) == []


async def test_unknown_script_logged_and_closed(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    running = await start(nursery, make_config(), crm, None)
    before = sessions("unknown")
    with trio.fail_after(10), caplog.at_level(logging.WARNING, "pinc.agi.server"):
        assert await agi_client(running.port, environment("does/not/exist")) == []
    assert "unknown script 'does/not/exist'" in caplog.text
    assert crm.calls == []
    assert sessions("unknown") == before + 1


async def test_hangup_mid_session(nursery: trio.Nursery) -> None:
    """HANGUP where a reply was expected: pinc sends nothing more and closes."""
    crm = FakeCrm({"79161234567": IVAN})
    running = await start(nursery, make_config(), crm, None)
    before = sessions("hangup")
    with trio.fail_after(10):
        sent = await agi_client(running.port, environment(), replies=[b"HANGUP\n200 result=1\n"])
    assert sent == [b"SET VARIABLE PINC_RESPONSIBLE 102\n"]
    assert sessions("hangup") == before + 1


async def test_hangup_during_lookup_ends_session(nursery: trio.Nursery) -> None:
    crm = FakeCrm()
    crm.never = True
    running = await start(nursery, make_config(agi={"session_timeout": 30.0}), crm, None)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", running.port)
        async with stream:
            await stream.send_all(environment() + b"HANGUP\n")
            assert await stream.receive_some(100) == b""  # closed at once, nothing sent


async def test_reply_error_codes_do_not_break_session(nursery: trio.Nursery) -> None:
    running = await start(nursery, make_config(), FakeCrm({"79161234567": IVAN}), None)
    usage = (
        b"520-Invalid command syntax.  Proper usage follows:\nUsage: x\n520 End of proper usage.\n"
    )
    with trio.fail_after(10):
        sent = await agi_client(
            running.port, environment(), replies=[b"510 Invalid or unknown command\n", usage]
        )
    assert len(sent) == 3


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(256)) + b"\n\n",
        b"200 result=1\n",
        b"agi_network: yes\n" + b"x" * 70_000,
    ],
    ids=["http", "tls", "reply-first", "huge-line"],
)
async def test_garbage_instead_of_environment(
    nursery: trio.Nursery, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    running = await start(nursery, make_config(), crm, None)
    before = sessions("error")
    with trio.fail_after(10), caplog.at_level(logging.WARNING, "pinc.agi.server"):
        stream = await trio.open_tcp_stream("127.0.0.1", running.port)
        async with stream:
            try:
                await stream.send_all(garbage)
                data = await stream.receive_some(100)
            except trio.BrokenResourceError:
                data = b""
            assert data == b""
    assert sessions("error") == before + 1
    assert crm.calls == []
    assert "agi 127.0.0.1:" in caplog.text
    # the server is still serving
    with trio.fail_after(10):
        assert await agi_client(running.port, environment()) != []


async def test_silent_client_closed_at_read_deadline(nursery: trio.Nursery) -> None:
    config = make_config(agi={"read_timeout": 0.2, "session_timeout": 5.0})
    running = await start(nursery, config, FakeCrm(), None)
    before = sessions("timeout")
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", running.port)
        async with stream:
            assert await stream.receive_some(100) == b""
    assert sessions("timeout") == before + 1


async def test_trickling_client_closed_at_session_deadline(nursery: trio.Nursery) -> None:
    """Each read is in time, but the whole session is not."""
    config = make_config(agi={"read_timeout": 1.0, "session_timeout": 0.3})
    running = await start(nursery, config, FakeCrm(), None)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", running.port)
        async with stream:
            with pytest.raises((trio.BrokenResourceError, trio.ClosedResourceError)):
                for _ in range(200):
                    await stream.send_all(b"agi_x: 1\n")
                    await trio.sleep(0.05)
            assert running.server.active == 0


async def test_crm_never_answers_dialplan_gets_answer_in_time(
    nursery: trio.Nursery, journal: FakeJournal
) -> None:
    """routing.deadline (0.3 s) cuts the lookup well inside the AGI session deadline."""
    crm = FakeCrm()
    crm.never = True
    journal.add("79161234567", "105", time.time() - 60)
    config = make_config(agi={"session_timeout": 10.0}, routing={"deadline": 0.3})
    running = await start(nursery, config, crm, journal)
    before = sessions("ok")
    with trio.fail_after(5):
        sent = await agi_client(running.port, environment())
    assert sent == [b"SET VARIABLE PINC_RESPONSIBLE 105\n"]
    assert sessions("ok") == before + 1


async def test_500_concurrent_sessions(nursery: trio.Nursery) -> None:
    crm = FakeCrm({f"7916000{i:04d}": IVAN for i in range(500)})
    running = await start(nursery, make_config(), crm, None)
    results: list[list[bytes]] = []

    async def one(i: int) -> None:
        results.append(await agi_client(running.port, environment(callerid=f"7916000{i:04d}")))

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            for i in range(500):
                n.start_soon(one, i)
    assert len(results) == 500
    assert all(r[0] == b"SET VARIABLE PINC_RESPONSIBLE 102\n" and len(r) == 3 for r in results)
    assert len(crm.calls) == 500
    assert running.server.active == 0


async def test_sessions_beyond_max_are_refused_at_once(nursery: trio.Nursery) -> None:
    crm = FakeCrm()
    crm.never = True
    config = make_config(agi={"max_sessions": 2, "session_timeout": 30.0})
    running = await start(nursery, config, crm, None)
    before = sessions("refused")
    with trio.fail_after(10):
        held = [await trio.open_tcp_stream("127.0.0.1", running.port) for _ in range(2)]
        for i, s in enumerate(held):
            await s.send_all(environment(callerid=f"7916000000{i}"))
        while len(crm.calls) < 2:
            await crm.called.wait()
        assert running.server.active == 2
        third = await trio.open_tcp_stream("127.0.0.1", running.port)
        async with third:
            assert await third.receive_some(100) == b""
        for s in held:
            await s.aclose()
    assert sessions("refused") == before + 1


async def test_second_call_answered_from_cache(nursery: trio.Nursery) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    running = await start(nursery, make_config(agi=LAB_VARS), crm, None)
    with trio.fail_after(10):
        first = await agi_client(running.port, fixture_environment())
        second = await agi_client(running.port, environment(callerid="+7 916 123 45 67"))
    assert first == second
    assert crm.calls == ["79161234567"]
    assert running.router.statistics()["cache_hits"] == 1


@pytest.mark.parametrize(
    ("after_env", "result"),
    [(b"", "closed"), (b"GET / HTTP/1.0\n", "error"), (b"200 result=1\n", "error")],
    ids=["close", "garbage", "stray-reply"],
)
async def test_peer_ends_session_during_lookup(
    nursery: trio.Nursery, after_env: bytes, result: str
) -> None:
    crm = FakeCrm()
    crm.never = True
    running = await start(nursery, make_config(agi={"session_timeout": 30.0}), crm, None)
    before = sessions(result)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", running.port)
        await stream.send_all(environment() + after_env)
        await crm.called.wait()
        if after_env:
            assert await stream.receive_some(100) == b""
        await stream.aclose()
        while sessions(result) == before:  # noqa: ASYNC110 (the server ends it on its own)
            await trio.sleep(0.01)
    assert running.server.active == 0


class PlainRouter:
    """Only the services.Router protocol: no cache fast path, no checks of its own."""

    def __init__(self, ext: str) -> None:
        self.ext = ext

    async def responsible(self, number: str) -> Responsible:
        await trio.lowlevel.checkpoint()
        return Responsible(ext=self.ext, user="A\\B", source="crm")


async def test_any_router_protocol_works(nursery: trio.Nursery) -> None:
    from pinc.agi.server import AgiServer

    server = AgiServer(make_config(), PlainRouter("101"))
    port = await nursery.start(server.run)
    with trio.fail_after(10):
        assert await agi_client(port, environment()) == [
            b"SET VARIABLE PINC_RESPONSIBLE 101\n",
            b'SET VARIABLE PINC_RESPONSIBLE_USER "A\\\\B"\n',
        ]


@pytest.mark.parametrize("ext", ["10\n2", "102&PJSIP/evil"])
async def test_server_checks_extension_from_any_router(nursery: trio.Nursery, ext: str) -> None:
    from pinc.agi.server import AgiServer

    server = AgiServer(make_config(), PlainRouter(ext))
    port = await nursery.start(server.run)
    with trio.fail_after(10):
        sent = await agi_client(port, environment())
    assert sent == [b'SET VARIABLE PINC_RESPONSIBLE_USER "A\\\\B"\n']


async def test_no_reply_to_a_command_closed_at_read_deadline(nursery: trio.Nursery) -> None:
    config = make_config(agi={"read_timeout": 0.2, "session_timeout": 5.0})
    running = await start(nursery, config, FakeCrm({"79161234567": IVAN}), None)
    before = sessions("timeout")
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", running.port)
        async with stream:
            await stream.send_all(environment())
            got = b""
            while True:
                data = await stream.receive_some(1000)
                if not data:
                    break
                got += data
    assert got == b"SET VARIABLE PINC_RESPONSIBLE 102\n"  # then silence: no reply, closed
    assert sessions("timeout") == before + 1


async def test_idle_sockets_cannot_starve_asterisk(nursery: trio.Nursery) -> None:
    """pinc 0.1.0: 1,000 idle local sockets (no AGI environment) took every session slot,
    and Asterisk's own sessions were refused. Now a new connection takes the place of the
    oldest one still waiting for its environment."""
    crm = FakeCrm({"79161234567": IVAN})
    config = make_config(agi={"max_sessions": 50, "session_timeout": 30.0,
                              "read_timeout": 30.0})
    running = await start(nursery, config, crm, None)
    before = sessions("evicted")
    with trio.fail_after(20):
        idle = [await trio.open_tcp_stream("127.0.0.1", running.port) for _ in range(200)]
        while running.server.active < 50:  # noqa: ASYNC110 (the server's accepts, not ours)
            await trio.sleep(0.01)
        sent = await agi_client(running.port, fixture_environment())
        assert sent[0] == b"SET VARIABLE PINC_RESPONSIBLE 102\n"
        for s in idle:
            await s.aclose()
    # 150 displaced by the later idle ones, one more by Asterisk's session
    assert sessions("evicted") == before + 151
    assert running.server.active <= 50


async def test_per_peer_limit(nursery: trio.Nursery) -> None:
    """One address may hold max_sessions_per_peer; beyond that its oldest idle one goes,
    and a peer whose sessions are all busy gets refused while another peer still gets in."""
    crm = FakeCrm()
    crm.never = True
    config = make_config(agi={"max_sessions": 100, "max_sessions_per_peer": 2,
                              "session_timeout": 30.0})
    running = await start(nursery, config, crm, None)
    before = sessions("refused")
    with trio.fail_after(10):
        busy = [await trio.open_tcp_stream("127.0.0.1", running.port) for _ in range(2)]
        for i, s in enumerate(busy):
            await s.send_all(environment(callerid=f"7916000000{i}"))
        while len(crm.calls) < 2:
            await crm.called.wait()
        third = await trio.open_tcp_stream("127.0.0.1", running.port)
        async with third:
            assert await third.receive_some(100) == b""  # refused: both slots are busy
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.2", 0))
        await sock.connect(("127.0.0.1", running.port))
        other = trio.SocketStream(sock)
        async with other:
            await other.send_all(environment(callerid="79160000009"))
            while len(crm.calls) < 3:
                await crm.called.wait()
            assert running.server.active == 3
        for s in busy:
            await s.aclose()
    assert sessions("refused") == before + 1
