"""What the AMI client hands its one consumer (the ingest) on ``AmiClient.events``.

Small frozen dataclasses, one per kind of news, so the consumer matches on types.
"""

from __future__ import annotations

from dataclasses import dataclass

from pinc.ami.protocol import Message


@dataclass(frozen=True, slots=True)
class Received:
    """One AMI event, with the wall-clock time (time.time()) it arrived."""

    message: Message
    at: float


@dataclass(frozen=True, slots=True)
class ListCompleted:
    """A list reply asked for with ``in_stream``, at its place in the event stream."""

    action: str
    events: tuple[Message, ...]
    at: float


@dataclass(frozen=True, slots=True)
class Connected:
    """Logged in (again). ``reconnect`` is False only for the first login of this client."""

    asterisk_version: str
    at: float
    reconnect: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    """A logged-in link ended; events may have been missed until the next ``Connected``."""

    reason: str
    at: float


ClientEvent = Received | ListCompleted | Connected | Disconnected
