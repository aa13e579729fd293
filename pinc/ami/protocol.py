"""AMI wire protocol, sans-IO (the h11 model): bytes in, typed messages out.

No sockets, no clock, no globals. ``AMIConnection.feed(data)`` buffers bytes;
``next_message()`` returns the next complete message, ``NEED_DATA`` when more bytes
are needed, or raises :class:`RemoteProtocolError` when the peer broke the protocol.
After a remote error the connection stays broken for good: the transport drops it
and starts a new one.

Framing happens on bytes; text is decoded only after a whole message is framed, so
a UTF-8 character split across two reads survives, and invalid UTF-8 is replaced
rather than fatal.
"""

from __future__ import annotations

import collections
import enum
import itertools
import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

BANNER_PREFIX: Final = "Asterisk Call Manager/"
MAX_LINE: Final = 64 * 1024
MAX_MESSAGE: Final = 1024 * 1024
MAX_HEADERS: Final = 1000
END_COMMAND: Final = b"--END COMMAND--"


class ProtocolError(Exception):
    """Base of the AMI protocol errors."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
        self.offset = offset


class RemoteProtocolError(ProtocolError):
    """Asterisk (or whatever is on the other end) sent bytes that are not AMI."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something AMI cannot carry safely (e.g. CR/LF in a value)."""


class Kind(enum.Enum):
    EVENT = "event"  # has Event: (classified first: OriginateResponse also has Response:)
    RESPONSE = "response"  # Response: Success|Error|Goodbye|Follows
    OTHER = "other"  # neither; kept rather than dropped


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
_EVENT: Final = Kind.EVENT


@dataclass(frozen=True, slots=True)
class Banner:
    """The first line Asterisk sends: ``Asterisk Call Manager/<AMI version>``."""

    version: str
    offset: int = 0


class Message:
    """One AMI message. ``headers`` keeps every line in order (repeats included);
    ``fields`` maps each key to its last value for fast lookups. Read-only by contract.

    The parser builds ``fields`` at once and ``headers`` on first use, from the message's
    lines (most consumers never look at it); the constructor takes both, as before.
    """

    __slots__ = ("_headers", "_lines", "fields", "kind", "name", "offset", "output")

    kind: Kind
    name: str  # the Event name, or the Response value
    fields: Mapping[str, str]
    offset: int  # byte offset of the message in the stream
    output: tuple[str, ...]  # Command output lines, either format

    def __init__(
        self,
        kind: Kind,
        name: str,
        headers: tuple[tuple[str, str], ...] | None,
        fields: Mapping[str, str],
        offset: int = 0,
        output: tuple[str, ...] = (),
        _lines: list[str] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self._headers = headers
        self._lines = _lines
        self.fields = fields
        self.offset = offset
        self.output = output

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        headers = getattr(self, "_headers", None)  # unset on bulk-built events
        if headers is None:
            headers = self._headers = tuple(map(_split_header, self._lines or ()))
            self._lines = None
        return headers

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.kind,
            self.name,
            self.headers,
            dict(self.fields),
            self.offset,
            self.output,
        ) == (other.kind, other.name, other.headers, dict(other.fields), other.offset, other.output)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Message(kind={self.kind!r}, name={self.name!r}, headers={self.headers!r}, "
            f"fields={self.fields!r}, offset={self.offset!r}, output={self.output!r})"
        )

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeated key (``ChanVariable``, ``Output``), in order."""
        return [v for k, v in self.headers if k == key]

    def chan_variables(self, prefix: str = "") -> dict[str, str]:
        """``ChanVariable`` (or ``<prefix>ChanVariable``) lines as a dict."""
        out: dict[str, str] = {}
        for value in self.get_all(prefix + "ChanVariable"):
            k, _, v = value.partition("=")
            out[k] = v
        return out

    @property
    def action_id(self) -> str:
        return self.fields.get("ActionID", "")

    @property
    def is_event(self) -> bool:
        return self.kind is Kind.EVENT

    def to_bytes(self) -> bytes:
        """The message as Asterisk would write it (used by fakes and the demo PBX)."""
        return encode_headers(self.headers)


class _Event(Message):
    """An event framed by the bulk path: what every event shares lives on the class."""

    __slots__ = ()
    kind = Kind.EVENT
    output = ()

    def __init__(self, name: str, fields: dict[str, str], offset: int, lines: list[str]) -> None:
        self.name = name
        self.fields = fields
        self.offset = offset
        self._lines = lines  # _headers stays unset until ``headers`` is read


def _split_header(line: str) -> tuple[str, str]:
    # The name ends at the first ": " (what Asterisk writes), else at the first ":" (a bare
    # "Key:" with an empty value). The fast path below splits the same way.
    key, sep, value = line.partition(": ")
    if sep:
        return key, value
    key, sep, value = line.partition(":")
    return (key, value) if sep else (line, "")


def _message(headers: tuple[tuple[str, str], ...], fields: dict[str, str], offset: int) -> Message:
    if "Event" in fields:
        return Message(Kind.EVENT, fields["Event"], headers, fields, offset)
    if "Response" in fields:
        output = tuple(v for k, v in headers if k == "Output") if "Output" in fields else ()
        return Message(Kind.RESPONSE, fields["Response"], headers, fields, offset, output)
    return Message(Kind.OTHER, "", headers, fields, offset)


def _parse_crlf(text: str, offset: int) -> Message:
    """A message whose lines all end in CRLF (no lone CR or LF): the fast path.

    C-level steps only: split the lines, split each once at ": "; a line without ": "
    (a bare "Key:", garbage) leaves a one-item list, dict() refuses it, and the
    line-by-line path decides.
    """
    pairs = list(map(str.split, text.split("\r\n"), _REPEAT_SEP, _REPEAT_ONE))
    try:
        fields: dict[str, str] = dict(pairs)
    except ValueError:
        headers = tuple(map(_split_header, text.split("\r\n")))
        return _message(headers, dict(headers), offset)
    return _message(tuple(map(tuple, pairs)), fields, offset)  # type: ignore[arg-type]


_REPEAT_SEP: Final = itertools.repeat(": ")
_REPEAT_ONE: Final = itertools.repeat(1)
_REPEAT_UTF8: Final = itertools.repeat("utf-8")
_REPEAT_REPLACE: Final = itertools.repeat("replace")
_REPEAT_CRLF: Final = itertools.repeat("\r\n")
_REPEAT_SPLIT: Final = itertools.repeat(str.split)
_REPEAT_SEP_ITER: Final = itertools.repeat(_REPEAT_SEP)
_REPEAT_ONE_ITER: Final = itertools.repeat(_REPEAT_ONE)
_REPEAT_EVENT: Final = itertools.repeat("Event")
_REPEAT_EVENT_PREFIX: Final = itertools.repeat(b"Event: ")
_REPEAT_EVENT_KIND: Final = itertools.repeat(Kind.EVENT)
_REPEAT_NONE: Final = itertools.repeat(None)
_REPEAT_EMPTY: Final = itertools.repeat(())
_REPEAT_FOUR: Final = itertools.repeat(4)  # the blank line after each message


def parse_block(text: str, offset: int = 0) -> Message:
    """Turn the text of one framed message (no terminating blank line) into a Message."""
    if "\r" in text:
        n_lf = text.count("\n")
        if n_lf == text.count("\r\n") == text.count("\r"):
            return _parse_crlf(text, offset)
        text = text.replace("\r\n", "\n")
    headers = tuple(map(_split_header, text.split("\n")))
    return _message(headers, dict(headers), offset)


def _parse_follows(raw: bytes, offset: int) -> Message:
    """Asterisk <= 13 Command reply: headers, then raw CLI text up to --END COMMAND--."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    body_end = text.rfind(END_COMMAND.decode())
    text = text[:body_end]
    headers: list[tuple[str, str]] = []
    rest = text
    # Header lines come first; the first line that is not "Key: value" starts the output.
    while rest:
        line, nl, tail = rest.partition("\n")
        key, sep, _ = line.partition(":")
        if not sep or " " in key or key not in ("Response", "Privilege", "ActionID", "Message"):
            break
        headers.append(_split_header(line))
        rest = tail if nl else ""
    output = tuple(rest.rstrip("\n").split("\n")) if rest.strip("\n") else ()
    headers.extend(("Output", line) for line in output)
    fields = dict(headers)
    return Message(Kind.RESPONSE, "Follows", tuple(headers), fields, offset, output)


class AMIConnection:
    """The client side of one AMI session's byte stream.

    >>> conn = AMIConnection()
    >>> conn.feed(b"Asterisk Call Manager/11.0.0\\r\\nResponse: Success\\r\\n\\r\\n")
    >>> conn.next_message()
    Banner(version='11.0.0', offset=0)
    """

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_message: int = MAX_MESSAGE,
        max_headers: int = MAX_HEADERS,
        expect_banner: bool = True,
    ) -> None:
        self._buf = bytearray()
        self._start = 0  # where the next message starts in _buf
        self._scan = 0  # how far the current message was searched for its end
        self._consumed = 0  # bytes dropped from the front of _buf so far
        self._expect_banner = expect_banner
        self._error: RemoteProtocolError | None = None
        # Messages framed ahead by the fast path; they lie back to back in the stream.
        self._ready: collections.deque[Message] = collections.deque()
        self.max_line = max_line
        self.max_message = max_message
        self.max_headers = max_headers
        self.banner: Banner | None = None

    @property
    def offset(self) -> int:
        """Stream offset just past the last message returned (where the next one starts)."""
        if self._ready:
            return self._ready[0].offset
        return self._consumed + self._start

    def feed(self, data: bytes | bytearray) -> None:
        if self._start > 65536 and self._start > len(self._buf) // 2:
            del self._buf[: self._start]
            self._scan -= self._start
            self._consumed += self._start
            self._start = 0
        self._buf += data

    def _fail(self, message: str, offset: int) -> RemoteProtocolError:
        self._error = RemoteProtocolError(message, offset)
        return self._error

    def next_message(self) -> Banner | Message | _NeedData:
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise self._error
        if not self._expect_banner and self._frame_many():
            return self._ready.popleft()
        buf = self._buf
        start = self._start
        if self._expect_banner:
            nl = buf.find(b"\n", start)
            if nl < 0:
                if len(buf) - start > 256 or (
                    len(buf) > start
                    and not BANNER_PREFIX.encode().startswith(
                        bytes(buf[start : start + len(BANNER_PREFIX)])
                    )
                ):
                    raise self._fail("not an AMI banner", self.offset)
                return NEED_DATA
            line = bytes(buf[start:nl]).rstrip(b"\r").decode("utf-8", errors="replace")
            if not line.startswith(BANNER_PREFIX):
                raise self._fail(f"not an AMI banner: {line[:80]!r}", self.offset)
            banner = Banner(line[len(BANNER_PREFIX) :], self.offset)
            self._start = self._scan = nl + 1
            self._expect_banner = False
            self.banner = banner
            return banner

        # Skip stray blank lines between messages (seen from some Asterisk versions).
        while start < len(buf) and buf[start] in (0x0D, 0x0A):
            if buf[start] == 0x0D and start + 1 >= len(buf):
                return NEED_DATA
            start += 1
        if start != self._start:
            self._start = start
            self._scan = max(self._scan, start)
        if start >= len(buf):
            return NEED_DATA

        if buf.startswith(b"Response: Follows", start):
            return self._next_follows()

        scan = max(self._scan, start)
        end_crlf = buf.find(b"\n\r\n", scan)
        # Search bare-LF terminators only up to the CRLF one: a CRLF stream has none, and
        # an unbounded search would rescan the whole buffer for every message.
        end_lf = buf.find(b"\n\n", scan, end_crlf + 2 if end_crlf >= 0 else len(buf))
        if end_lf < 0 and end_crlf < 0:
            self._check_limits(start)
            # Resume the search a little before the end: a terminator may straddle reads.
            self._scan = max(start, len(buf) - 2)
            return NEED_DATA
        if end_lf < 0 or (0 <= end_crlf < end_lf):
            end, skip = end_crlf, 3
        else:
            end, skip = end_lf, 2
        if end - start > self.max_message:
            raise self._fail(f"message longer than {self.max_message} bytes", self.offset)
        # The last line's CR sits before the terminator's LF: keep it out of the value.
        raw = bytes(buf[start : end - 1 if buf[end - 1] == 0x0D else end])
        if b"\x00" in raw:
            raise self._fail("NUL byte in an AMI message", self.offset + raw.index(b"\x00"))
        offset = self.offset
        self._start = self._scan = end + skip
        text = raw.decode("utf-8", errors="replace")
        if text.count("\n") >= self.max_headers:
            raise self._fail(f"message with more than {self.max_headers} headers", offset)
        if len(text) > self.max_line and max(map(len, text.split("\n"))) > self.max_line:
            raise self._fail(f"line longer than {self.max_line} bytes", offset)
        return parse_block(text, offset)

    def _frame_many(self) -> bool:
        """Fast path: frame every complete message in the buffer at once.

        Taken only when the bytes up to the last blank line are plain Asterisk output:
        CRLF line ends only, no stray blank lines, no NUL, no ``Response: Follows``,
        nothing over a limit. Anything else returns False before anything is committed,
        and the one-message-at-a-time path below, which knows every odd case and reports
        errors at their exact offset, takes the same bytes.
        """
        buf = self._buf
        start = self._start
        last = buf.rfind(b"\r\n\r\n", start)
        if last <= start:
            return False
        end = last + 4
        region = bytes(buf[start:end])
        if region[0] in (0x0D, 0x0A) or b"\x00" in region:
            return False
        blocks = region.split(b"\r\n\r\n")
        blocks.pop()  # after the last terminator: empty
        offset = self._consumed + start
        ready = self._frame_events(region, blocks, offset)
        if ready is not None:
            self._ready.extend(ready)
            self._start = self._scan = end
            return True
        max_line, max_message, max_headers = self.max_line, self.max_message, self.max_headers
        out: list[Message] = []
        append = out.append
        split, sep, one = str.split, _REPEAT_SEP, _REPEAT_ONE
        newlines = 0  # LFs accounted for by CRLF line ends and terminators
        for block in blocks:
            size = len(block)
            if size > max_line and (
                size > max_message or max(map(len, block.split(b"\r\n"))) > max_line
            ):
                return False
            lines = block.decode("utf-8", "replace").split("\r\n")
            n_lines = len(lines)
            if n_lines > max_headers:
                return False
            newlines += n_lines + 1
            # This loop is the whole cost of reading AMI: keep it C-level per line.
            # A line without ": " leaves a one-item list and dict() refuses it.
            try:
                fields: dict[str, str] = dict(map(split, lines, sep, one))
            except ValueError:
                if "" in lines or lines[0].startswith("Response: Follows"):
                    return False  # a stray blank line or CLI output: the slow path's job
                headers = tuple(map(_split_header, lines))
                append(_message(headers, dict(headers), offset))
            else:
                if "Event" in fields:
                    append(Message(_EVENT, fields["Event"], None, fields, offset, (), lines))
                elif lines[0].startswith("Response: Follows"):
                    return False
                else:
                    append(_message(tuple(map(_split_header, lines)), fields, offset))
            offset += size + 4
        if region.count(b"\n") != newlines:
            return False  # a bare LF somewhere (line end or the "\r\n\n" terminator bug)
        self._ready.extend(out)
        self._start = self._scan = end
        return True

    def _frame_events(
        self, region: bytes, blocks: list[bytes], offset: int
    ) -> list[Message] | None:
        """The common case in bulk: every block an ordinary event. None: not the case.

        Each step maps a C function over all the blocks, so no Python code runs per
        line and almost none per message; any exception or odd block hands the region
        to the per-message loop in ``_frame_many``.
        """
        if max(map(len, blocks)) > self.max_line or not all(
            map(bytes.startswith, blocks, _REPEAT_EVENT_PREFIX)
        ):
            return None  # a long line, a response (maybe CLI output), anything unusual
        texts = map(bytes.decode, blocks, _REPEAT_UTF8, _REPEAT_REPLACE)
        lines = list(map(str.split, texts, _REPEAT_CRLF))
        if max(map(len, lines)) > self.max_headers:
            return None
        if region.count(b"\n") != sum(map(len, lines)) + len(lines):
            return None  # a bare LF somewhere (a line end, or the "\r\n\n" terminator bug)
        try:
            fields = list(
                map(dict, map(map, _REPEAT_SPLIT, lines, _REPEAT_SEP_ITER, _REPEAT_ONE_ITER))
            )
        except ValueError:
            return None  # a line without ": "
        names = list(map(dict.get, fields, _REPEAT_EVENT))
        if None in names:
            return None  # a response or an unclassified message among them
        offsets = itertools.accumulate(
            map(operator.add, map(len, blocks), _REPEAT_FOUR), initial=offset
        )
        return list(map(_Event, names, fields, offsets, lines))  # type: ignore[arg-type]

    def _check_limits(self, start: int) -> None:
        buf = self._buf
        pending = len(buf) - start
        if pending > self.max_message:
            raise self._fail(f"message longer than {self.max_message} bytes", self.offset)
        last_nl = buf.rfind(b"\n", start)
        line_len = len(buf) - (last_nl + 1 if last_nl >= 0 else start)
        if line_len > self.max_line:
            raise self._fail(f"line longer than {self.max_line} bytes", self.offset)
        if buf.count(b"\n", start) >= self.max_headers:
            raise self._fail(f"message with more than {self.max_headers} headers", self.offset)

    def _next_follows(self) -> Message | _NeedData:
        buf = self._buf
        start = self._start
        idx = buf.find(END_COMMAND, max(self._scan, start))
        if idx < 0:
            if len(buf) - start > self.max_message:
                raise self._fail(
                    f"Command output longer than {self.max_message} bytes", self.offset
                )
            self._scan = max(start, len(buf) - len(END_COMMAND))
            return NEED_DATA
        after = idx + len(END_COMMAND)
        # --END COMMAND--\r\n\r\n (or bare LF); wait for the blank line.
        m_end = buf.find(b"\n", after)
        if m_end < 0:
            return NEED_DATA
        blank = m_end + 1
        if blank < len(buf) and buf[blank] == 0x0D:
            blank += 1
        if blank >= len(buf):
            return NEED_DATA
        if buf[blank] == 0x0A:
            blank += 1
        offset = self.offset
        raw = bytes(buf[start:after])
        self._start = self._scan = blank
        return _parse_follows(raw, offset)

    def end_of_stream(self) -> None:
        """The peer closed the stream. Raises RemoteProtocolError when it stopped in the
        middle of a message (e.g. the last blank line is missing); a clean end is fine."""
        if self._error is not None:
            raise self._error
        rest = bytes(self._buf[self._start :])
        stripped = rest.lstrip(b"\r\n")
        if stripped:
            offset = self._consumed + self._start + len(rest) - len(stripped)
            raise self._fail("stream ended inside a message (no blank line after it)", offset)

    def messages(self) -> Iterator[Banner | Message]:
        """Every complete message buffered so far."""
        while True:
            msg = self.next_message()
            if msg is NEED_DATA:
                return
            yield msg


def _check_value(text: str, what: str) -> None:
    if "\r" in text or "\n" in text:
        raise LocalProtocolError(f"{what} holds CR or LF: refused (header injection)")


def encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    parts = []
    for key, value in headers:
        parts.append(f"{key}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode_action(
    action: str,
    fields: Mapping[str, str | int | Iterable[str]] | Iterable[tuple[str, str]] = (),
    *,
    action_id: str,
) -> bytes:
    """Encode an action. Repeatable keys (``Variable``) take a list of values.

    Any key or value holding CR or LF raises :class:`LocalProtocolError`: nothing a
    caller passes can add a header line of its own.
    """
    if not action_id:
        raise LocalProtocolError("every action needs an ActionID")
    items: Iterable[tuple[str, object]]
    items = fields.items() if isinstance(fields, Mapping) else fields
    headers: list[tuple[str, str]] = [("Action", action), ("ActionID", action_id)]
    for key, value in items:
        values = [value] if isinstance(value, (str, int)) else list(value)
        for v in values:
            headers.append((key, str(v)))
    for key, value in headers:
        if not key or ":" in key or not key.isprintable():
            raise LocalProtocolError(f"bad AMI header name {key!r}")
        _check_value(value, f"value of {key}")
    return encode_headers(headers)
