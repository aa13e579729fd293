"""AMI wire protocol, sans-IO (the h11 model): bytes in, typed messages out.

No sockets, no clock, no globals. ``AMIConnection.feed(data)`` buffers bytes;
``next_message()`` returns the next complete message, ``NEED_DATA`` when more bytes
are needed, or raises :class:`RemoteProtocolError` when the peer broke the protocol.
After a remote error the connection stays broken for good: the transport drops it
and starts a new one.

Framing happens on bytes; text is decoded only after a whole message is framed, so
a UTF-8 character split across two reads survives, and invalid UTF-8 is replaced
rather than fatal. The message type, parsing one framed block and encoding actions
live in pinc.ami.message; this module re-exports them.
"""

from __future__ import annotations

import collections
import enum
import itertools
import operator
from collections.abc import Iterator
from typing import Final

from pinc.ami.message import (
    _REPEAT_ONE,
    _REPEAT_SEP,
    END_COMMAND,
    Banner,
    Kind,
    LocalProtocolError,
    Message,
    ProtocolError,
    RemoteProtocolError,
    _Event,
    _message,
    _parse_follows,
    _split_header,
    encode_action,
    encode_headers,
    parse_block,
)

__all__ = [
    "BANNER_PREFIX",
    "END_COMMAND",
    "MAX_HEADERS",
    "MAX_LINE",
    "MAX_MESSAGE",
    "NEED_DATA",
    "AMIConnection",
    "Banner",
    "Kind",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "RemoteProtocolError",
    "encode_action",
    "encode_headers",
    "parse_block",
]

BANNER_PREFIX: Final = "Asterisk Call Manager/"
MAX_LINE: Final = 64 * 1024
MAX_MESSAGE: Final = 1024 * 1024
MAX_HEADERS: Final = 1000


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
_EVENT: Final = Kind.EVENT


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
