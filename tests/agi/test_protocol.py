"""The sans-IO FastAGI protocol: environment, replies, HANGUP, command encoding, fuzz."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinc.agi.protocol import (
    NEED_DATA,
    AgiConnection,
    AgiProtocolError,
    Closed,
    Environment,
    Event,
    Hangup,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    State,
    encode_command,
    quote_argument,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LOCAL_AGI = FIXTURES / "asterisk-local" / "agi_responsible.agi"
PJSIP_AGI = FIXTURES / "asterisk-pjsip" / "pjsip_agi_responsible.agi"


def environment_bytes(path: Path) -> bytes:
    """What Asterisk sent before the first command: everything up to the blank line."""
    data = path.read_bytes()
    end = data.index(b"\n\n") + 2
    return data[:end]


def drain(conn: AgiConnection) -> list[Event]:
    out: list[Event] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return out
        out.append(ev)
        if isinstance(ev, Closed):
            return out


def feed_chunks(conn: AgiConnection, data: bytes, size: int) -> list[Event]:
    out: list[Event] = []
    for i in range(0, len(data), size):
        conn.feed(data[i : i + size])
        out.extend(drain(conn))
    return out


@pytest.mark.parametrize("path", [LOCAL_AGI, PJSIP_AGI], ids=["local", "pjsip"])
@pytest.mark.parametrize("chunk", [1, 7, 100_000])
def test_fixture_environment(path: Path, chunk: int) -> None:
    conn = AgiConnection()
    events = feed_chunks(conn, environment_bytes(path), chunk)
    assert len(events) == 1
    env = events[0]
    assert isinstance(env, Environment)
    assert env.script == "responsible"
    assert env.query == ()
    assert env.args == ("79161234567", "74951230000")
    assert env.get("callerid") == "79161234567"
    assert env.get("agi_context") == "from-trunk"
    assert env.get("accountcode") == ""  # "agi_accountcode: " with an empty value
    assert env.get("version") == "22.10.1"
    assert conn.state is State.IDLE


def test_fixture_whole_conversation() -> None:
    """The recorded session: environment, our SET VARIABLE, Asterisk's 200 result=1, close."""
    data = LOCAL_AGI.read_bytes()
    env_part = environment_bytes(LOCAL_AGI)
    conn = AgiConnection()
    conn.feed(env_part)
    assert isinstance(conn.next_event(), Environment)
    stub = (LOCAL_AGI.parent / "agi_responsible.agi.stub").read_bytes()
    assert conn.send_command("SET VARIABLE", "RESPONSIBLE", "102") == stub
    conn.feed(data[len(env_part) :])
    reply = conn.next_event()
    assert reply == Reply(code=200, text="result=1", result=1)
    assert reply.ok
    conn.feed_eof()
    assert conn.next_event() == Closed()


def test_script_query_and_args() -> None:
    conn = AgiConnection()
    conn.feed(
        b"agi_network: yes\n"
        b"agi_network_script: pinc/responsible?number=%2B7916&x=\n"
        b"agi_request: agi://h/pinc/responsible?number=%2B7916&x=\n"
        b"agi_arg_2: b\nagi_arg_10: j\nagi_arg_1: a\n\n"
    )
    env = conn.next_event()
    assert isinstance(env, Environment)
    assert env.script == "pinc/responsible"
    assert env.query == (("number", "+7916"), ("x", ""))
    assert env.args == ("a", "b", "j")


def test_script_from_request_when_network_script_absent() -> None:
    conn = AgiConnection()
    conn.feed(b"agi_network: yes\nagi_request: agi://127.0.0.1/callerid?a=1\n\n")
    env = conn.next_event()
    assert isinstance(env, Environment)
    assert env.script == "callerid"
    assert env.query == (("a", "1"),)


def test_crlf_lines_tolerated() -> None:
    conn = AgiConnection()
    conn.feed(b"agi_network: yes\r\nagi_network_script: callerid\r\n\r\n")
    env = conn.next_event()
    assert isinstance(env, Environment) and env.script == "callerid"


def ready() -> AgiConnection:
    conn = AgiConnection()
    conn.feed(b"agi_network: yes\nagi_network_script: responsible\n\n")
    assert isinstance(conn.next_event(), Environment)
    return conn


REPLIES = [
    (b"200 result=1\n", Reply(200, "result=1", result=1)),
    (b"200 result=0\n", Reply(200, "result=0", result=0)),
    (b"200 result=-1\n", Reply(200, "result=-1", result=-1)),
    (b"200 result=1 (some value)\n", Reply(200, "result=1 (some value)", 1, "some value")),
    (b"200 result=1 (a (b) c)\n", Reply(200, "result=1 (a (b) c)", 1, "a (b) c")),
    (b"200 result=1 ()\n", Reply(200, "result=1 ()", 1, "")),
    (
        b"200 result=0 (timeout) endpos=12345\n",
        Reply(200, "result=0 (timeout) endpos=12345", 0, "timeout", 12345),
    ),
    (b"200 result=0 endpos=0\n", Reply(200, "result=0 endpos=0", 0, None, 0)),
    (b"510 Invalid or unknown command\n", Reply(510, "Invalid or unknown command")),
    (
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        Reply(511, "Command Not Permitted on a dead channel or intercept routine"),
    ),
    (
        b"520 Invalid command syntax.  Proper usage not available.\n",
        Reply(520, "Invalid command syntax.  Proper usage not available."),
    ),
    (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: SET VARIABLE <variablename> <value>\n"
        b"\n"
        b"520 End of proper usage.\n",
        Reply(
            520,
            "Invalid command syntax.  Proper usage follows:",
            usage=(" Usage: SET VARIABLE <variablename> <value>", ""),
        ),
    ),
]


@pytest.mark.parametrize(("raw", "expected"), REPLIES)
@pytest.mark.parametrize("chunk", [1, 1000])
def test_replies(raw: bytes, expected: Reply, chunk: int) -> None:
    conn = ready()
    conn.send_command("NOOP")
    events = feed_chunks(conn, raw + b"HANGUP\n", chunk)
    assert events == [expected, Hangup()]
    assert conn.state is State.IDLE
    assert conn.hangup_received


def test_hangup_where_a_reply_was_expected() -> None:
    """Asterisk writes HANGUP before reading the next command; the reply still follows."""
    conn = ready()
    conn.send_command("SET VARIABLE", "A", "1")
    conn.feed(b"HANGUP\n")
    assert conn.next_event() == Hangup()
    assert conn.state is State.AWAITING_REPLY
    conn.feed(b"200 result=1\nHANGUP\n")
    assert conn.next_event() == Reply(200, "result=1", result=1)
    assert conn.next_event() == Hangup()
    conn.feed_eof()
    assert conn.next_event() == Closed()
    assert conn.next_event() == Closed()


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\n",
        b"agi_network yes\n",
        b"AGI_NETWORK: yes\n",
        b"agi_network: yes\nnot-agi: 1\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
    ],
)
def test_garbage_instead_of_environment(raw: bytes) -> None:
    conn = AgiConnection()
    conn.feed(raw)
    with pytest.raises(RemoteProtocolError):
        drain(conn)
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


@pytest.mark.parametrize(
    "raw",
    [b"200 result=x\n", b"200 result=1 junk\n", b"hello\n", b"20 result=1\n", b"200-result=1\n"],
)
def test_bad_replies(raw: bytes) -> None:
    conn = ready()
    conn.send_command("NOOP")
    conn.feed(raw)
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_reply_with_no_command_outstanding() -> None:
    conn = ready()
    conn.feed(b"200 result=1\n")
    with pytest.raises(RemoteProtocolError, match="no command outstanding"):
        conn.next_event()


def test_huge_line_refused_without_newline() -> None:
    conn = AgiConnection()
    conn.feed(b"agi_network: " + b"x" * 20_000)
    with pytest.raises(RemoteProtocolError, match="longer"):
        conn.next_event()


@pytest.mark.parametrize(
    "raw",
    [b"agi_network: yes\n", b"agi_network: ye", b""],
    ids=["mid-environment", "mid-line", "nothing"],
)
def test_eof(raw: bytes) -> None:
    conn = AgiConnection()
    conn.feed(raw)
    assert conn.next_event() is NEED_DATA
    conn.feed_eof()
    if raw:
        with pytest.raises(RemoteProtocolError, match="closed"):
            conn.next_event()
    else:
        assert conn.next_event() == Closed()


def test_eof_inside_multiline_520() -> None:
    conn = ready()
    conn.send_command("NOOP")
    conn.feed(b"520-Invalid command syntax.  Proper usage follows:\nusage\n")
    assert conn.next_event() is NEED_DATA
    conn.feed_eof()
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_command_before_environment_or_twice() -> None:
    with pytest.raises(LocalProtocolError):
        AgiConnection().send_command("NOOP")
    conn = ready()
    conn.send_command("NOOP")
    with pytest.raises(LocalProtocolError):
        conn.send_command("NOOP")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("RESPONSIBLE", "102"), b"SET VARIABLE RESPONSIBLE 102\n"),
        (("CALLERID(name)", "Ivan Petrov"), b'SET VARIABLE CALLERID(name) "Ivan Petrov"\n'),
        (("X", ""), b'SET VARIABLE X ""\n'),
        (("X", 'say "hi"'), b'SET VARIABLE X "say \\"hi\\""\n'),
        (("X", "a\\b"), b'SET VARIABLE X "a\\\\b"\n'),
        (("X", "ООО Ромашка"), 'SET VARIABLE X "ООО Ромашка"\n'.encode()),
        (("X", "a\tb"), b'SET VARIABLE X "a\tb"\n'),
    ],
)
def test_encode_command(args: tuple[str, ...], line: bytes) -> None:
    assert encode_command("SET VARIABLE", *args) == line


def asterisk_parse_args(line: str) -> list[str]:
    """res_agi.c parse_args, transcribed, to check that quoting round-trips."""
    out: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                cur = []
                out.append("")
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            if cur is not None:
                out[-1] = "".join(cur)
                cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            cur = []
            out.append("")
            whitespace = False
        assert cur is not None
        cur.append(ch)
        escaped = False
    if cur is not None:
        out[-1] = "".join(cur)
    return out


@given(st.text().filter(lambda s: not any(c in s for c in "\r\n\x00")))
def test_quoting_round_trips_through_parse_args(value: str) -> None:
    line = encode_command("SET VARIABLE", "X", value).decode()[:-1]
    assert asterisk_parse_args(line) == ["SET", "VARIABLE", "X", value]


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "\n"])
def test_cr_lf_refused(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        quote_argument(value)
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send_command("SET VARIABLE", "X", value)
    assert conn.state is State.IDLE  # nothing was sent, the session can go on


@pytest.mark.parametrize("verb", ["", "SET\nVARIABLE", "EXEC Dial", "SET  VARIABLE", "NOOP;"])
def test_bad_verb_refused(verb: str) -> None:
    if verb == "EXEC Dial":  # words only: a verb of letters is fine
        assert encode_command(verb) == b"EXEC Dial\n"
        return
    with pytest.raises(LocalProtocolError):
        encode_command(verb)


def test_command_too_long() -> None:
    with pytest.raises(LocalProtocolError, match="8192"):
        encode_command("SET VARIABLE", "X", "y" * 9000)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.binary(max_size=64), max_size=20),
    st.booleans(),
    st.sampled_from([b"", b"agi_network: yes\n\n"]),
)
def test_fuzz_only_protocol_errors(chunks: list[bytes], eof: bool, prefix: bytes) -> None:
    """Any bytes, in any chunking: events, NEED_DATA, or AgiProtocolError, nothing else."""
    conn = AgiConnection()
    try:
        for chunk in [prefix, *chunks]:
            conn.feed(chunk)
            while True:
                if conn.state is State.IDLE:
                    conn.send_command("NOOP")
                ev = conn.next_event()
                if ev is NEED_DATA or isinstance(ev, Closed):
                    break
        if eof:
            conn.feed_eof()
            while not isinstance(conn.next_event(), Closed):
                pass
    except AgiProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"200 result=1",
                b"HANGUP",
                b"510 x",
                b"520-a",
                b"520 End",
                b"junk",
                b"agi_x: 1",
                b"",
                b"\r",
            ]
        ),
        max_size=30,
    )
)
def test_fuzz_wire_like_lines(lines: list[bytes]) -> None:
    conn = AgiConnection()
    try:
        conn.feed(b"\n".join(lines))
        conn.feed_eof()
        for _ in range(100):
            if conn.state is State.IDLE:
                conn.send_command("NOOP")
            if isinstance(conn.next_event(), Closed):
                break
    except AgiProtocolError:
        pass
