"""The sans-IO AMI parser: recorded transcripts, odd framing, bad input, a fuzz property."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinc.ami.protocol import (
    MAX_HEADERS,
    MAX_LINE,
    NEED_DATA,
    AMIConnection,
    Banner,
    Kind,
    LocalProtocolError,
    Message,
    RemoteProtocolError,
    encode_action,
    parse_block,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRANSCRIPTS = sorted(FIXTURES.glob("asterisk-*/*.ami"))
Parsed = tuple[str, str, tuple[tuple[str, str], ...], int, tuple[str, ...]]


def summary(msg: Banner | Message) -> Parsed:
    if isinstance(msg, Banner):
        return ("banner", msg.version, (), msg.offset, ())
    return (msg.kind.value, msg.name, msg.headers, msg.offset, msg.output)


def parse(data: bytes, sizes: list[int] | None = None, **kw: int | bool) -> list[Parsed]:
    """Feed ``data`` in pieces of ``sizes`` (cycled; whole when None), drain after each."""
    conn = AMIConnection(**kw)  # type: ignore[arg-type]
    out: list[Parsed] = []
    pos = 0
    i = 0
    while pos < len(data) or pos == 0:
        size = len(data) if not sizes else sizes[i % len(sizes)]
        conn.feed(data[pos : pos + size])
        pos += size
        i += 1
        out.extend(summary(m) for m in conn.messages())
        if not data:
            break
    return out


def event_count(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.startswith(b"Event:"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.name)
def test_transcript_whole_and_random_chunks(path: Path) -> None:
    data = path.read_bytes()
    whole = parse(data)
    assert whole[0][0] == "banner"
    events = [m for m in whole if m[0] == "event"]
    assert len(events) == event_count(path)
    rng = random.Random(path.name)
    chunked = parse(data, [rng.randint(1, 3000) for _ in range(200)])
    assert chunked == whole
    # Offsets point at the message in the stream.
    for kind, name, _h, offset, _o in whole[1:50]:
        assert data[offset:].startswith(b"Event: " + name.encode() if kind == "event" else b"R")


SMALL = [p for p in TRANSCRIPTS if p.stat().st_size < 150_000][:4]


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.name)
def test_transcript_byte_by_byte(path: Path) -> None:
    data = path.read_bytes()
    assert parse(data, [1]) == parse(data)


def test_originate_response_is_an_event() -> None:
    data = (FIXTURES / "asterisk-local" / "outbound_click_to_call.ami").read_bytes()
    conn = AMIConnection()
    conn.feed(data)
    found = [m for m in conn.messages() if isinstance(m, Message) and m.name == "OriginateResponse"]
    assert found and all(m.kind is Kind.EVENT and m.is_event for m in found)
    assert found[0].get("Response") == "Success" and found[0].action_id == "orig-1"


def test_repeated_keys_kept_in_order() -> None:
    raw = (
        b"Event: Newchannel\r\nChannel: PJSIP/101-00000001\r\n"
        b"ChanVariable: A=1\r\nChanVariable: B=x=y\r\nChanVariable: A=2\r\n\r\n"
    )
    conn = AMIConnection(expect_banner=False)
    conn.feed(raw)
    msg = conn.next_message()
    assert isinstance(msg, Message)
    assert msg.get_all("ChanVariable") == ["A=1", "B=x=y", "A=2"]
    assert msg["ChanVariable"] == "A=2"
    assert msg.chan_variables() == {"A": "2", "B": "x=y"}
    assert msg.to_bytes() == raw


def test_values_empty_colons_and_no_space() -> None:
    raw = b"Event: X\r\nAccountCode: \r\nAuths:\r\nURI: sip:101@host:5060\r\nNote: a: b\r\n\r\n"
    conn = AMIConnection(expect_banner=False)
    conn.feed(raw)
    msg = conn.next_message()
    assert isinstance(msg, Message)
    assert msg.fields == {
        "Event": "X",
        "AccountCode": "",
        "Auths": "",
        "URI": "sip:101@host:5060",
        "Note": "a: b",
    }


COMMAND_13 = (
    b"Asterisk Call Manager/2.10.6\r\n"
    b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
    b"Channel              Location             State   Application(Data)\n"
    b"\n"
    b"Key: looks like a header\n"
    b"0 active channels\n"
    b"--END COMMAND--\r\n\r\n"
    b"Event: Next\r\nA: 1\r\n\r\n"
)
COMMAND_14 = (
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Response: Success\r\nActionID: c1\r\nMessage: Command output follows\r\n"
    b"Output: Channel              Location             State   Application(Data)\r\n"
    b"Output: \r\n"
    b"Output: Key: looks like a header\r\n"
    b"Output: 0 active channels\r\n\r\n"
    b"Event: Next\r\nA: 1\r\n\r\n"
)


@pytest.mark.parametrize("data", [COMMAND_13, COMMAND_14], ids=["follows", "output"])
def test_command_output_both_formats(data: bytes) -> None:
    results = [parse(data), parse(data, [1]), parse(data, [7, 3, 50])]
    assert results[0] == results[1] == results[2]
    conn = AMIConnection()
    conn.feed(data)
    msgs = list(conn.messages())
    reply = msgs[1]
    assert isinstance(reply, Message) and reply.kind is Kind.RESPONSE
    assert reply.action_id == "c1"
    assert reply.output == (
        "Channel              Location             State   Application(Data)",
        "",
        "Key: looks like a header",
        "0 active channels",
    )
    assert reply.get_all("Output") == list(reply.output)
    assert isinstance(msgs[2], Message) and msgs[2].name == "Next"


def test_list_reply_framing() -> None:
    data = (
        b"Response: Success\r\nActionID: l1\r\nEventList: start\r\n"
        b"Message: Channels will follow\r\n\r\n"
        b"Event: CoreShowChannel\r\nActionID: l1\r\nChannel: PJSIP/101-00000001\r\n\r\n"
        b"Event: CoreShowChannel\r\nActionID: l1\r\nChannel: PJSIP/102-00000002\r\n\r\n"
        b"Event: CoreShowChannelsComplete\r\nActionID: l1\r\nEventList: Complete\r\n"
        b"ListItems: 2\r\n\r\n"
    )
    got = parse(data, expect_banner=False)
    assert [(k, n) for k, n, *_ in got] == [
        ("response", "Success"),
        ("event", "CoreShowChannel"),
        ("event", "CoreShowChannel"),
        ("event", "CoreShowChannelsComplete"),
    ]
    assert parse(data, [1], expect_banner=False) == got


def test_bare_lf_and_broken_terminators() -> None:
    crlf = b"Event: A\r\nX: 1\r\n\r\nEvent: B\r\nY: 2\r\n\r\n"
    lf = b"Event: A\nX: 1\n\nEvent: B\nY: 2\n\n"
    mixed = b"Event: A\r\nX: 1\r\n\nEvent: B\r\nY: 2\r\n\r\n\r\n"  # asterisk#761
    want = [(k, n, h) for k, n, h, _o, _x in parse(crlf, expect_banner=False)]
    for data in (lf, mixed):
        for sizes in (None, [1], [5]):
            got = parse(data, sizes, expect_banner=False)
            assert [(k, n, h) for k, n, h, _o, _x in got] == want


def test_utf8_split_across_reads() -> None:
    raw = "Event: Newchannel\r\nCallerIDName: Иван Петров ☎\r\n\r\n".encode()
    cut = raw.index("Иван".encode()) + 1  # inside the first Cyrillic letter
    for at in range(cut - 1, cut + 12):
        conn = AMIConnection(expect_banner=False)
        conn.feed(raw[:at])
        assert conn.next_message() is NEED_DATA
        conn.feed(raw[at:])
        msg = conn.next_message()
        assert isinstance(msg, Message) and msg["CallerIDName"] == "Иван Петров ☎"


def test_invalid_utf8_is_replaced() -> None:
    conn = AMIConnection(expect_banner=False)
    conn.feed(b"Event: X\r\nCallerIDName: \xff\xfeabc\r\n\r\nEvent: Y\r\n\r\n")
    msg = conn.next_message()
    assert isinstance(msg, Message) and msg["CallerIDName"] == "\ufffd\ufffdabc"
    nxt = conn.next_message()
    assert isinstance(nxt, Message) and nxt.name == "Y"


def test_missing_blank_line_at_eof() -> None:
    conn = AMIConnection(expect_banner=False)
    conn.feed(b"Event: A\r\nX: 1\r\n\r\nEvent: B\r\nY: 2\r\n")
    assert isinstance(conn.next_message(), Message)
    assert conn.next_message() is NEED_DATA
    with pytest.raises(RemoteProtocolError, match=r"at byte 18"):
        conn.end_of_stream()
    clean = AMIConnection(expect_banner=False)
    clean.feed(b"Event: A\r\n\r\n")
    list(clean.messages())
    clean.end_of_stream()  # nothing pending: no error


def error_of(data: bytes, sizes: list[int] | None = None, **kw: int | bool) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        parse(data, sizes, **kw)
    return info.value


@pytest.mark.parametrize("sizes", [None, [4096]], ids=["whole", "chunks"])
def test_line_over_the_limit(sizes: list[int] | None) -> None:
    data = b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\nEvent: B\r\nX: " + b"x" * (
        MAX_LINE + 10
    )
    err = error_of(data, sizes)
    assert "line longer" in str(err) and err.offset == data.index(b"Event: B")
    err = error_of(data + b"\r\n\r\n", sizes)
    assert "line longer" in str(err) and err.offset == data.index(b"Event: B")


@pytest.mark.parametrize("sizes", [None, [4096]], ids=["whole", "chunks"])
def test_ten_thousand_headers(sizes: list[int] | None) -> None:
    body = b"".join(b"H%d: v\r\n" % i for i in range(10_000))
    data = b"Event: A\r\n\r\nEvent: B\r\n" + body + b"\r\n"
    err = error_of(data, sizes, expect_banner=False)
    assert f"more than {MAX_HEADERS} headers" in str(err) and err.offset == 12


def test_nul_byte() -> None:
    data = b"Event: A\r\n\r\nEvent: B\r\nX: a\x00b\r\n\r\n"
    err = error_of(data, expect_banner=False)
    assert "NUL" in str(err) and err.offset == data.index(b"\x00")
    conn = AMIConnection(expect_banner=False)
    conn.feed(data)
    assert isinstance(conn.next_message(), Message)  # what came before is delivered
    with pytest.raises(RemoteProtocolError):
        conn.next_message()
    with pytest.raises(RemoteProtocolError):  # broken for good
        conn.next_message()


@pytest.mark.parametrize(
    "banner", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 400 Bad Request\r\n", b"\x16\x03\x01\x02\x00"]
)
def test_not_an_asterisk_banner(banner: bytes) -> None:
    err = error_of(banner + b"Response: Success\r\n\r\n")
    assert "banner" in str(err) and err.offset == 0


def test_encode_action() -> None:
    raw = encode_action(
        "Originate",
        {"Channel": "PJSIP/101", "Variable": ["A=1", "B=2"], "Timeout": 30000},
        action_id="x1",
    )
    assert raw == (
        b"Action: Originate\r\nActionID: x1\r\nChannel: PJSIP/101\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\nTimeout: 30000\r\n\r\n"
    )
    assert parse_block(raw.decode().rstrip("\r\n")).get_all("Variable") == ["A=1", "B=2"]


@pytest.mark.parametrize(
    "fields",
    [
        {"Channel": "PJSIP/101\r\nAction: Hangup"},
        {"Channel": "PJSIP/101\nX: y"},
        {"Channel": "PJSIP/101\r"},
        {"Variable": ["A=1", "B=2\r\nAction: Redirect"]},
        {"Bad\r\nKey": "v"},
        {"Bad: Key": "v"},
    ],
)
def test_encode_action_refuses_cr_lf(fields: dict[str, str | list[str]]) -> None:
    with pytest.raises(LocalProtocolError):
        encode_action("Originate", fields, action_id="x1")
    with pytest.raises(LocalProtocolError):
        encode_action("Ping", {}, action_id="")
    with pytest.raises(LocalProtocolError):
        encode_action("Ping", {}, action_id="a\r\nb")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 500), min_size=1, max_size=8))
def test_any_bytes_parse_or_protocol_error(data: bytes, sizes: list[int]) -> None:
    for expect_banner in (True, False):
        try:
            whole = parse(data, None, expect_banner=expect_banner, max_line=200, max_headers=20)
        except RemoteProtocolError:
            whole = None
        try:
            chunked = parse(data, sizes, expect_banner=expect_banner, max_line=200, max_headers=20)
        except RemoteProtocolError:
            chunked = None
        if whole is not None and chunked is not None:
            assert whole == chunked


ami_line = st.builds(
    lambda k, v: f"{k}: {v}",
    st.from_regex(re.compile(r"[A-Za-z][A-Za-z0-9-]{0,12}"), fullmatch=True),
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=30
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(ami_line, min_size=1, max_size=8), min_size=1, max_size=10),
    st.lists(st.integers(1, 64), min_size=1, max_size=5),
)
def test_wellformed_messages_roundtrip(blocks: list[list[str]], sizes: list[int]) -> None:
    messages = [["Event: E", *lines] for lines in blocks]
    data = "".join("\r\n".join(lines) + "\r\n\r\n" for lines in messages).encode()
    whole = parse(data, expect_banner=False)
    assert parse(data, sizes, expect_banner=False) == whole
    assert len(whole) == len(messages)
    for got, lines in zip(whole, messages, strict=True):
        assert got[2] == tuple(tuple(line.split(": ", 1)) for line in lines)
