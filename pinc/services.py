"""The seams between pinc's services, as Protocols.

``app.py`` builds the concrete services and hands a :class:`Services` to the web
app, the AGI server and the CRM worker. Each side depends only on these
Protocols, so every service is tested with real peers or small fakes of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pinc.ami.protocol import Message
from pinc.calls.model import CallChange
from pinc.config import Config

T = TypeVar("T")


@dataclass(frozen=True)
class ActionResult:
    """An AMI action's reply, with the events of a list reply (EventList: start...Complete)."""

    response: Message
    events: tuple[Message, ...] = ()

    @property
    def ok(self) -> bool:
        return self.response.name in ("Success", "Follows", "Goodbye")


class AmiActions(Protocol):
    """What the web app and the ingest need from the AMI client."""

    async def action(
        self,
        name: str,
        fields: Mapping[str, str | int | Iterable[str]] | Iterable[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
        in_stream: bool = False,
    ) -> ActionResult: ...

    def status(self) -> dict[str, Any]:
        """connected (bool), since (ISO or None), asterisk_version, reconnects, last_error."""
        ...


class Subscription(Protocol):
    """One subscriber's bounded view of the feed of committed CallChanges."""

    dropped: int  # changes this subscriber missed because it fell behind

    def __aiter__(self) -> AsyncIterator[CallChange]: ...

    async def aclose(self) -> None: ...


class Feed(Protocol):
    def subscribe(self, maxsize: int = 256) -> Subscription: ...

    def statistics(self) -> dict[str, Any]: ...


class JournalAccess(Protocol):
    """The journal, as the other services see it. One writer; readers apart."""

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the writer connection inside one transaction."""
        ...

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader connection in a worker thread."""
        ...

    def add_batch_hook(
        self, hook: Callable[[sqlite3.Connection, Sequence[CallChange]], None]
    ) -> None:
        """``hook`` runs inside every batch's transaction (the CRM outbox rows go there)."""
        ...

    def status(self) -> dict[str, Any]:
        """ok (bool), path, pending, last_error."""
        ...


class Ingest(Protocol):
    """The AMI -> tracker -> journal pipeline, as the web app needs it."""

    def note_originate(
        self, channel_id: str, *, ext: str, number: str, record_id: str | None, origin: str
    ) -> None:
        """Tell the tracker that an Originate with ChannelId ``channel_id`` is ours."""
        ...

    def note_transfer(self, call_id: str, to: str = "") -> None:
        """pinc's /transfer is about to ask Asterisk to move this call to ``to``."""
        ...

    def transfer_result(self, call_id: str, to: str, accepted: bool) -> None:
        """Asterisk's answer to it: only an accepted one is recorded as a ``crm`` transfer."""
        ...

    def channels_of(self, call_id: str) -> list[dict[str, str]]:
        """Live channels of a call: [{"channel", "uniqueid", "ext", "role", "bridge",
        "partner"}] (``Tracker.channels_of``)."""
        ...

    def live_calls(self) -> list[dict[str, Any]]: ...

    def live_count(self) -> int:
        """len(live_calls()) without building them: /ping and /metrics ask it often."""
        ...

    def call_of_extension(self, ext: str) -> str | None:
        """The live call in which the employee on ``ext`` has a channel up, if any."""
        ...



@dataclass(frozen=True)
class Responsible:
    """Who should take a call from a number (routing's answer)."""

    ext: str | None = None
    user: str | None = None
    customer_name: str | None = None
    source: str = "none"  # cache, crm, journal, none


class Router(Protocol):
    async def responsible(self, number: str) -> Responsible: ...


class CrmState(Protocol):
    def status(self) -> dict[str, Any]:
        """state (ok, auth-failed, unreachable, disabled), backlog, oldest_age, last_error."""
        ...

    def request_retry(self) -> None: ...


@dataclass(frozen=True)
class CrmUser:
    """A CRM user who has a phone extension (vtiger's ``phone_crm_extension``)."""

    id: str  # the CRM's own id of the user (webservice id, e.g. "19x5")
    user_name: str
    name: str  # for people: first and last name
    extension: str
    active: bool = True


class Directory(Protocol):
    """The CRM's users and their extensions (``pinc.crm.directory``), cached and refreshed.

    ``known()`` is False until the first successful read, and when pinc runs without a
    CRM: then nothing can be said about an extension and callers must not refuse on it.
    """

    def known(self) -> bool: ...

    def user_of(self, ext: str) -> CrmUser | None: ...

    def users(self) -> list[CrmUser]: ...


class NoDirectory:
    """The Directory when pinc runs without a CRM (or before the real one lands)."""

    def known(self) -> bool:
        return False

    def user_of(self, ext: str) -> CrmUser | None:
        return None

    def users(self) -> list[CrmUser]:
        return []


@dataclass
class Services:
    config: Config
    ami: AmiActions
    journal: JournalAccess
    feed: Feed
    ingest: Ingest
    router: Router
    crm: CrmState
    directory: Directory = field(default_factory=NoDirectory)
    started_at: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
