"""AMI messages, sans-IO: the typed message, parsing one framed block, encoding actions.

pinc.ami.protocol frames the byte stream into blocks and hands each one here; the fakes
and the demo PBX encode with the same helpers. No I/O, no clock.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

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
