"""Hostile bytes against the sans-IO AMI and AGI parsers (hypothesis).

Default run: a few hundred inputs per property. ``--run-slow`` (or
``PINC_FUZZ_EXAMPLES=N``) raises the budget to minutes. Every input tried is counted
and shown in the run's figures (``fuzz.*``).

The properties: any bytes in any chunking give messages, NEED_DATA or the parser's own
protocol error, nothing else, and a broken connection stays broken; well-formed streams
parse the same whatever the chunking; nothing passed to ``encode_action`` or
``encode_command`` can add a line of its own (header/command injection).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinc.agi.protocol import (
    NEED_DATA as AGI_NEED_DATA,
)
from pinc.agi.protocol import (
    AgiConnection,
    AgiProtocolError,
    Closed,
    Environment,
    State,
    encode_command,
)
from pinc.ami.protocol import (
    NEED_DATA,
    AMIConnection,
    Banner,
    LocalProtocolError,
    Message,
    RemoteProtocolError,
    encode_action,
)
from tests.agi.test_protocol import asterisk_parse_args
from tests.reliability.conftest import add

DEFAULT_EXAMPLES = 300
SLOW_EXAMPLES = 20_000


def budget(run_slow: bool, default: int = DEFAULT_EXAMPLES) -> int:
    env = os.environ.get("PINC_FUZZ_EXAMPLES")
    if env:
        return int(env)
    return SLOW_EXAMPLES if run_slow else default


def run_property(name: str, examples: int, strategy: Any, check: Callable[..., None]) -> None:
    """Run ``check`` over ``examples`` inputs from ``strategy``, counting the inputs tried."""
    tried = 0

    def body(value: Any) -> None:
        nonlocal tried
        tried += 1
        check(value)

    prop = settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )(given(strategy)(body))
    try:
        prop()
    finally:
        add(f"fuzz.{name}", tried)
        add("fuzz.total_inputs", tried)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


# ---- AMI -------------------------------------------------------------------------------

AMI_ATOMS = [
    b"Asterisk Call Manager/11.0.0\r\n",
    b"Event: Newchannel\r\n",
    b"Response: Success\r\n",
    b"Response: Follows\r\n",
    b"--END COMMAND--\r\n",
    b"Uniqueid: 1795480926.22\r\n",
    b"ActionID: pinc-1\r\n",
    b"EventList: start\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b"\x00",
    b"\xff\xfe",
    "Имя: Звонок\r\n".encode(),
    b"A" * 70_000,
]
ami_stream = st.tuples(
    st.lists(st.one_of(st.sampled_from(AMI_ATOMS), st.binary(max_size=40)), max_size=40),
    st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12),
    st.booleans(),
)


def drain_ami(conn: AMIConnection) -> list[Banner | Message]:
    out: list[Banner | Message] = []
    while True:
        msg = conn.next_message()
        if msg is NEED_DATA:
            return out
        assert isinstance(msg, (Banner, Message))
        out.append(msg)


def check_ami_garbage(value: tuple[list[bytes], list[int], bool]) -> None:
    atoms, cuts, banner = value
    data = b"".join(atoms)
    conn = AMIConnection(expect_banner=banner)
    try:
        for chunk in split(data, cuts):
            conn.feed(chunk)
            for msg in drain_ami(conn):
                if isinstance(msg, Message):
                    # decoded text only: nothing undecodable leaks out
                    assert all(isinstance(k, str) and isinstance(v, str) for k, v in msg.headers)
    except RemoteProtocolError:
        # broken for good: the transport must drop the connection
        with pytest.raises(RemoteProtocolError):
            conn.next_message()


def test_ami_parser_any_bytes(run_slow: bool) -> None:
    run_property("ami_any_bytes", budget(run_slow), ami_stream, check_ami_garbage)


ami_key = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
ami_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=30,
)
ami_message = st.lists(st.tuples(ami_key, ami_value), min_size=1, max_size=8).filter(
    lambda hs: not (hs[0][0] == "Response" and hs[0][1].startswith("Follows"))
)
ami_messages = st.tuples(
    st.lists(ami_message, min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=10),
    st.sampled_from([b"\r\n", b"\n"]),
)


def check_ami_chunking(value: tuple[list[list[tuple[str, str]]], list[int], bytes]) -> None:
    messages, cuts, eol = value
    wire = b"Asterisk Call Manager/11.0.0" + eol
    for headers in messages:
        wire += b"".join(f"{k}: {v}".encode() + eol for k, v in headers) + eol
    whole = AMIConnection()
    whole.feed(wire)
    expected = drain_ami(whole)
    pieces = AMIConnection()
    got: list[Banner | Message] = []
    for chunk in split(wire, cuts):
        pieces.feed(chunk)
        got.extend(drain_ami(pieces))
    assert [m for m in got] == expected
    parsed = [m.headers for m in expected if isinstance(m, Message)]
    # a value's leading space is the separator's; the rest round-trips exactly
    assert parsed == [tuple(headers) for headers in messages]


def test_ami_parser_chunking_invariant(run_slow: bool) -> None:
    run_property("ami_chunking", budget(run_slow), ami_messages, check_ami_chunking)


injection_fields = st.lists(
    st.tuples(
        st.text(max_size=12).filter(lambda k: "\x00" not in k),
        st.text(max_size=30).filter(lambda v: "\x00" not in v),
    ),
    max_size=5,
)


def check_ami_injection(fields: list[tuple[str, str]]) -> None:
    try:
        data = encode_action("Originate", fields, action_id="pinc-7")
    except LocalProtocolError:
        assert any(
            "\r" in k + v or "\n" in k + v or not k or ":" in k or not k.isprintable()
            for k, v in fields
        )
        return
    conn = AMIConnection(expect_banner=False)
    conn.feed(data)
    msgs = drain_ami(conn)
    assert len(msgs) == 1 and isinstance(msgs[0], Message)
    assert list(msgs[0].headers) == [("Action", "Originate"), ("ActionID", "pinc-7"), *fields]


def test_ami_encode_action_no_injection(run_slow: bool) -> None:
    run_property("ami_encode", budget(run_slow), injection_fields, check_ami_injection)


# ---- AGI -------------------------------------------------------------------------------

AGI_ATOMS = [
    b"agi_network: yes\n",
    b"agi_callerid: 79161234567\n",
    b"agi_arg_1: 79161234567\n",
    b"agi_request: agi://127.0.0.1:4573/responsible?x=1\n",
    b"\n",
    b"\r\n",
    b"200 result=1\n",
    b"200 result=0 (timeout) endpos=1234\n",
    b"510 Invalid or unknown command\n",
    b"520-Invalid command syntax.  Proper usage follows:\n",
    b"520 End of proper usage.\n",
    b"HANGUP\n",
    b"\x00",
    b"\xff",
    b"x" * 20_000,
]
agi_stream = st.tuples(
    st.lists(st.one_of(st.sampled_from(AGI_ATOMS), st.binary(max_size=40)), max_size=40),
    st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12),
    st.booleans(),
)


def check_agi_garbage(value: tuple[list[bytes], list[int], bool]) -> None:
    atoms, cuts, eof = value
    conn = AgiConnection()
    try:
        for chunk in split(b"".join(atoms), cuts):
            conn.feed(chunk)
            for _ in range(10_000):
                if conn.state is State.IDLE:
                    conn.send_command("NOOP")
                ev = conn.next_event()
                if ev is AGI_NEED_DATA or isinstance(ev, Closed):
                    break
                if isinstance(ev, Environment):
                    assert all(k.startswith("agi_") for k in ev.variables)
        if eof:
            conn.feed_eof()
            for _ in range(10_000):
                if conn.state is State.IDLE:
                    conn.send_command("NOOP")
                if isinstance(conn.next_event(), Closed):
                    break
            else:
                raise AssertionError("no end after EOF")
    except AgiProtocolError:
        assert conn.state in (State.ERROR, State.CLOSED, State.ENVIRONMENT, State.IDLE,
                              State.AWAITING_REPLY)


def test_agi_parser_any_bytes(run_slow: bool) -> None:
    run_property("agi_any_bytes", budget(run_slow), agi_stream, check_agi_garbage)


agi_env = st.tuples(
    st.dictionaries(
        st.from_regex(r"agi_[a-z0-9_]{1,12}", fullmatch=True),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
            max_size=40,
        ).map(str.strip),
        min_size=1,
        max_size=20,
    ),
    st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=10),
)


def check_agi_environment(value: tuple[dict[str, str], list[int]]) -> None:
    variables, cuts = value
    wire = b"".join(f"{k}: {v}\n".encode() for k, v in variables.items()) + b"\n"
    conn = AgiConnection()
    got: list[Any] = []
    for chunk in split(wire, cuts):
        conn.feed(chunk)
        while (ev := conn.next_event()) is not AGI_NEED_DATA:
            got.append(ev)
            break
    assert len(got) == 1 and isinstance(got[0], Environment)
    assert dict(got[0].variables) == variables


def test_agi_environment_chunking_invariant(run_slow: bool) -> None:
    run_property("agi_environment", budget(run_slow), agi_env, check_agi_environment)


agi_args = st.lists(st.text(max_size=40), min_size=1, max_size=4)


def check_agi_injection(args: list[str]) -> None:
    try:
        line = encode_command("SET VARIABLE", *args)
    except AgiProtocolError:
        assert any(c in a for a in args for c in "\r\n\x00") or sum(map(len, args)) > 2000
        return
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert asterisk_parse_args(line.decode()[:-1]) == ["SET", "VARIABLE", *args]


def test_agi_encode_command_no_injection(run_slow: bool) -> None:
    run_property("agi_encode", budget(run_slow), agi_args, check_agi_injection)
