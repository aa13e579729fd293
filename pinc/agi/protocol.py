"""FastAGI wire protocol, sans-IO (the h11 model): bytes in, typed events out.

``AgiConnection.feed(data)`` buffers what Asterisk sent; ``next_event()`` returns the
next :class:`Environment`, :class:`Reply`, :class:`Hangup` or :class:`Closed`, or
``NEED_DATA``; ``send_command(verb, *args)`` returns the bytes of one command line.
Every failure is an :class:`AgiProtocolError` (remote: the peer broke the protocol;
local: we were asked to send something a command line cannot carry). After a remote
error the connection stays broken for good.

Wire facts (res/res_agi.c): lines end in LF; the environment is ``agi_key: value``
lines up to an empty line; a command is one line of at most 8192 bytes whose
arguments are split on blanks with ``"…"`` quoting and ``\\`` escapes (``parse_args``);
``HANGUP`` may arrive where a reply was expected, and again at the end.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_LINE: Final = 16 * 1024  # longer than any line Asterisk writes
MAX_ENV_LINES: Final = 512
MAX_ENV_BYTES: Final = 64 * 1024
MAX_USAGE_LINES: Final = 1000  # lines of a 520- usage text
MAX_COMMAND: Final = 8192  # AGI_BUF_LEN in res_agi.c, newline included

# complete environment lines; checked as they arrive so garbage fails before any blank line
_ENV_LINES = re.compile(rb"(?:agi_[a-z0-9_]+:[^\n]*\n)*")
_ENV_LINE = re.compile(rb"agi_[a-z0-9_]+:[^\n]*")
_ENV_PAIR = re.compile(r"^(agi_[a-z0-9_]+): ?(.*)$", re.MULTILINE)
_ENV_ARG = re.compile(r"^agi_arg_(\d{1,5}): ?(.*)$", re.MULTILINE)
_REPLY_200 = re.compile(r"200 result=(-?\d+)(?: \((.*)\))?(?: endpos=(-?\d+))?")
_CODE = re.compile(r"(\d{3})([ -])(.*)", re.DOTALL)
_VERB = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*")
_NEEDS_QUOTES = re.compile(r'[\s"\\]')


class AgiProtocolError(Exception):
    """Base of the FastAGI protocol errors; nothing else leaves this module."""


class RemoteProtocolError(AgiProtocolError):
    """The peer sent bytes that are not FastAGI (garbage, a huge line, a stray reply)."""


class LocalProtocolError(AgiProtocolError):
    """We were asked to send something a command line cannot carry (CR/LF, too long)."""


class State(enum.Enum):
    ENVIRONMENT = "environment"  # reading the agi_* block
    IDLE = "idle"  # environment read, no command outstanding
    AWAITING_REPLY = "awaiting-reply"  # a command was sent, its reply not yet read
    CLOSED = "closed"  # the peer closed the connection cleanly
    ERROR = "error"  # the peer broke the protocol; nothing more will parse


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class Environment:
    """The ``agi_*`` block Asterisk sends first. ``variables`` keeps the full keys."""

    variables: Mapping[str, str]
    script: str  # the path after host/ without the query, e.g. "responsible"
    query: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()  # agi_arg_1 … agi_arg_N

    def get(self, key: str, default: str = "") -> str:
        """A variable by its name with or without the ``agi_`` prefix."""
        if not key.startswith("agi_"):
            key = "agi_" + key
        return self.variables.get(key, default)


@dataclass(frozen=True, slots=True)
class Reply:
    """The reply to one command: ``200 result=N (data) endpos=N``, 510, 511 or 520."""

    code: int
    text: str  # the line after the code (the first line for a multi-line 520)
    result: int | None = None  # 200 only
    data: str | None = None  # the text in parentheses, if any
    endpos: int | None = None
    usage: tuple[str, ...] = field(default=())  # the usage lines of a multi-line 520

    @property
    def ok(self) -> bool:
        return self.code == 200


@dataclass(frozen=True, slots=True)
class Hangup:
    """Asterisk's ``HANGUP`` line: the channel hung up (or the AGI ended)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed the connection at a line boundary."""


Event = Environment | Reply | Hangup | Closed


def quote_argument(value: str) -> str:
    """One command argument as Asterisk's ``parse_args`` reads it back unchanged.

    Plain tokens go bare (``SET VARIABLE RESPONSIBLE 102``, as the lab stub sent);
    anything with a blank, a quote or a backslash, and the empty string, is quoted
    with ``"`` and ``\\`` escaped.
    """
    if "\r" in value or "\n" in value or "\x00" in value:
        raise LocalProtocolError(f"AGI argument contains CR, LF or NUL: {value!r}")
    if value and not _NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_command(verb: str, *args: str) -> bytes:
    """``verb`` (e.g. ``SET VARIABLE``) followed by quoted ``args``, as one LF-ended line."""
    if not _VERB.fullmatch(verb):
        raise LocalProtocolError(f"not an AGI command verb: {verb!r}")
    line = " ".join([verb, *(quote_argument(a) for a in args)]).encode("utf-8") + b"\n"
    if len(line) > MAX_COMMAND:
        raise LocalProtocolError(f"AGI command is {len(line)} bytes (limit {MAX_COMMAND})")
    return line


def _decode(line: bytes) -> str:
    # Framing is done on bytes; text is decoded per whole line, bad UTF-8 replaced.
    return line.decode("utf-8", errors="replace")


def _script_and_query(variables: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    raw = variables.get("agi_network_script")
    if raw is None:
        # Asterisk omits agi_network_script when the path is empty; agi_request still has it.
        request = variables.get("agi_request", "")
        try:
            parts = urlsplit(request)
        except ValueError:
            return "", ()
        raw = parts.path + ("?" + parts.query if parts.query else "")
    path, _, query = raw.partition("?")
    pairs = tuple(parse_qsl(query, keep_blank_values=True)) if query else ()
    return unquote(path).strip("/"), pairs


def parse_reply_line(line: str) -> Reply:
    """One single-line reply (``200 …``, ``510 …``, ``511 …``, ``520 …``)."""
    m = _REPLY_200.fullmatch(line)
    if m:
        endpos = m.group(3)
        return Reply(
            code=200,
            text=line[4:],
            result=int(m.group(1)),
            data=m.group(2),
            endpos=int(endpos) if endpos is not None else None,
        )
    c = _CODE.fullmatch(line)
    if c is None or c.group(2) != " " or c.group(1) == "200":
        raise RemoteProtocolError(f"not an AGI reply: {line[:200]!r}")
    return Reply(code=int(c.group(1)), text=c.group(3))


class AgiConnection:
    """One FastAGI session, seen from the server (pinc) side."""

    def __init__(self) -> None:
        self.state = State.ENVIRONMENT
        self.hangup_received = False
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf already known to hold no LF
        self._eof = False
        self._checked = 0  # bytes of the environment known to be well-formed lines
        self._usage: list[str] | None = None  # inside a 520- multi-line reply
        self._usage_first = ""

    # -- input -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Buffer bytes that arrived from Asterisk."""
        if self._eof:
            raise RemoteProtocolError("data after end of stream")
        self._buf += data

    def feed_eof(self) -> None:
        """The peer closed its side."""
        self._eof = True

    def _next_line(self) -> bytes | None:
        idx = self._buf.find(b"\n", self._scan)
        if idx < 0:
            self._scan = len(self._buf)
            if len(self._buf) > MAX_LINE:
                self._fail(f"line longer than {MAX_LINE} bytes")
            return None
        if idx > MAX_LINE:
            self._fail(f"line longer than {MAX_LINE} bytes")
        line = bytes(self._buf[:idx])
        del self._buf[: idx + 1]
        self._scan = 0
        return line[:-1] if line.endswith(b"\r") else line

    def _fail(self, message: str) -> NoReturn:
        self.state = State.ERROR
        raise RemoteProtocolError(message)

    def next_event(self) -> Event | _NeedData:
        """The next complete event, ``NEED_DATA``, or :class:`RemoteProtocolError`."""
        if self.state is State.ERROR:
            raise RemoteProtocolError("connection already failed")
        if self.state is State.CLOSED:
            return Closed()
        if self.state is State.ENVIRONMENT:
            env = self._environment()
            if env is not None:
                return env
            if not self._eof:
                return NEED_DATA
            if self._buf:
                self._fail("connection closed in the middle of the environment")
            self.state = State.CLOSED
            return Closed()
        while True:
            raw = self._next_line()
            if raw is None:
                if not self._eof:
                    return NEED_DATA
                if self._buf:
                    self._fail("connection closed in the middle of a line")
                if self._usage is not None:
                    self._fail("connection closed in the middle of a 520 reply")
                self.state = State.CLOSED
                return Closed()
            event = self._line(_decode(raw))
            if event is not None:
                return event

    def _line(self, line: str) -> Event | None:
        if self._usage is not None:
            return self._usage_line(line)
        if line == "HANGUP":
            self.hangup_received = True
            return Hangup()
        if self.state is not State.AWAITING_REPLY:
            self._fail(f"unexpected line with no command outstanding: {line[:200]!r}")
        c = _CODE.fullmatch(line)
        if c is not None and c.group(1) == "520" and c.group(2) == "-":
            self._usage = []
            self._usage_first = c.group(3)
            return None
        try:
            reply = parse_reply_line(line)
        except RemoteProtocolError:
            self.state = State.ERROR
            raise
        self.state = State.IDLE
        return reply

    def _usage_line(self, line: str) -> Event | None:
        assert self._usage is not None
        if line.startswith("520 "):
            usage = tuple(self._usage)
            self._usage = None
            self.state = State.IDLE
            return Reply(code=520, text=self._usage_first, usage=usage)
        if len(self._usage) >= MAX_USAGE_LINES:
            self._fail(f"520 usage text longer than {MAX_USAGE_LINES} lines")
        self._usage.append(line)
        return None

    def _environment(self) -> Environment | None:
        """The whole agi_* block once its blank line is in; None while it is not."""
        buf = self._buf
        if not buf:
            return None
        if buf[:1] == b"\n" or buf[:2] == b"\r\n":
            self._fail("empty line before any agi_ variable")
        end = buf.find(b"\n\n", max(self._checked - 1, 0))
        end_cr = buf.find(b"\n\r\n", max(self._checked - 1, 0))
        if end < 0 or 0 <= end_cr < end:
            end = end_cr
        complete = len(buf) if end < 0 else end + 1
        last = buf.rfind(b"\n", 0, complete) + 1
        if last > self._checked:
            raw = bytes(buf[self._checked : last]).replace(b"\r\n", b"\n")
            if _ENV_LINES.fullmatch(raw) is None:
                bad = next(x for x in raw.split(b"\n") if not _ENV_LINE.fullmatch(x))
                self._fail(f"not an agi_ environment line: {_decode(bad)[:200]!r}")
            self._checked = last
        if end < 0:
            if len(buf) - last > MAX_LINE:
                self._fail(f"line longer than {MAX_LINE} bytes")
            if len(buf) > MAX_ENV_BYTES:
                self._fail(f"environment longer than {MAX_ENV_BYTES} bytes")
            return None
        block = _decode(bytes(buf[: end + 1]).replace(b"\r\n", b"\n")[:-1])
        del buf[: end + (3 if buf[end + 1 : end + 2] == b"\r" else 2)]
        self._checked = 0
        pairs = _ENV_PAIR.findall(block)
        if len(pairs) > MAX_ENV_LINES:
            self._fail(f"environment longer than {MAX_ENV_LINES} lines")
        variables = dict(pairs)
        self.state = State.IDLE
        script, query = _script_and_query(variables)
        args = tuple(v for _, v in sorted((int(n), v) for n, v in _ENV_ARG.findall(block)))
        return Environment(variables=variables, script=script, query=query, args=args)

    # -- output ------------------------------------------------------------------------

    def send_command(self, verb: str, *args: str) -> bytes:
        """The bytes of one command; the next reply read answers it."""
        if self.state is not State.IDLE:
            raise LocalProtocolError(f"cannot send a command in state {self.state.value}")
        line = encode_command(verb, *args)
        self.state = State.AWAITING_REPLY
        return line
