"""AMI events -> tracker -> journal (``pinc.services.Ingest``).

The ingest is the AMI client's only consumer. It feeds every event to the pure
tracker and submits the resulting changes to the journal, which commits, then
publishes them. When the journal cannot write, ``Journal.submit`` waits once
``journal.max_pending`` changes are held, so the AMI client's bounded channel fills
and the client stops reading: backpressure, never a dropped event.

At start the tracker is given the calls the journal still has open, so a call that
began before a restart and ends after it stays one call. After every AMI login,
``CoreShowChannels`` tells which of them are still up (``Tracker.resync``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from pinc import metrics
from pinc.ami.protocol import Message
from pinc.calls.model import CallChange, random_call_id
from pinc.calls.tracker import Tracker
from pinc.config import Config
from pinc.journal import queries
from pinc.journal.store import Journal
from pinc.services import AmiActions

log = logging.getLogger(__name__)

DRAIN_MAX = 64  # events handled per wake-up without yielding to the scheduler
EXPIRE_EVERY = 1.0


class TrackerLike(Protocol):
    """The part of ``pinc.calls.tracker.Tracker`` the ingest uses."""

    def feed(self, msg: Message, at: float | None = None) -> list[CallChange]: ...

    def note_originate(
        self, channel_id: str, *, ext: str, number: str, record_id: str | None, origin: str
    ) -> None: ...

    def note_transfer(self, call_id: str, to: str = "") -> None: ...

    def transfer_result(self, call_id: str, to: str, accepted: bool) -> None: ...

    def resync(
        self, snapshot: Sequence[Message], at: float, *, periodic: bool = False
    ) -> list[CallChange]: ...

    def oddities(self) -> dict[str, int]: ...

    def oddity_example(self, kind: str) -> str: ...

    def expire(self, at: float) -> list[CallChange]: ...

    def restore(self, calls: Sequence[dict[str, Any]]) -> None: ...

    def live_calls(self) -> list[Any]: ...

    def live_count(self) -> int: ...

    def call_of_extension(self, ext: str) -> str | None: ...

    def channels_of(self, call_id: str) -> list[dict[str, str]]: ...


class AmiSource(AmiActions, Protocol):
    """The AMI client as the ingest sees it: its event channel plus actions."""

    @property
    def events(self) -> trio.MemoryReceiveChannel[Any]: ...


def make_tracker(config: Config) -> TrackerLike:
    return Tracker(config.pbx, new_id=random_call_id)


class Ingest:
    def __init__(
        self,
        config: Config,
        client: AmiSource,
        journal: Journal,
        *,
        tracker: TrackerLike | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.journal = journal
        self.tracker = tracker if tracker is not None else make_tracker(config)
        self.events = 0
        self.changes = 0
        self.errors = 0
        self.resyncs = 0
        self.restored = 0
        self.connected = False
        self._periodic = False  # the CoreShowChannels in flight is a periodic check
        self._resyncing = False  # a CoreShowChannels is in flight
        self._oddities: dict[str, int] = {}  # what the metric and the log already show

    # ---- pinc.services.Ingest ---------------------------------------------------------

    def note_originate(
        self, channel_id: str, *, ext: str, number: str, record_id: str | None, origin: str
    ) -> None:
        self.tracker.note_originate(
            channel_id, ext=ext, number=number, record_id=record_id, origin=origin
        )

    def note_transfer(self, call_id: str, to: str = "") -> None:
        self.tracker.note_transfer(call_id, to)

    def transfer_result(self, call_id: str, to: str, accepted: bool) -> None:
        # a relabelled transfer comes out of the tracker with the next event or expire()
        self.tracker.transfer_result(call_id, to, accepted)

    def live_calls(self) -> list[dict[str, Any]]:
        return [
            c.to_dict() if hasattr(c, "to_dict") else dict(c) for c in self.tracker.live_calls()
        ]

    def live_count(self) -> int:
        return self.tracker.live_count()

    def call_of_extension(self, ext: str) -> str | None:
        return self.tracker.call_of_extension(ext)

    def channels_of(self, call_id: str) -> list[dict[str, str]]:
        return self.tracker.channels_of(call_id)

    def statistics(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "changes": self.changes,
            "errors": self.errors,
            "resyncs": self.resyncs,
            "restored": self.restored,
            "connected": self.connected,
            "oddities": dict(self._oddities),
        }

    # ---- service ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        live = await self.journal.read(queries.live_calls)
        if live:
            self.tracker.restore(live)
            self.restored = len(live)
            log.info("ingest: %d calls still open in the journal restored", len(live))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire_loop)
                task_status.started()
                await self._consume(nursery)
                nursery.cancel_scope.cancel()
        finally:
            self._flush()

    def _flush(self) -> None:
        """At shutdown: calls that hung up and only wait for their Cdr events end now."""
        flush = getattr(self.tracker, "flush", None)
        if flush is None:
            return
        try:
            changes = flush()
        except Exception:
            log.exception("ingest: the tracker failed to flush at shutdown")
            return
        if changes:
            self.changes += len(changes)
            self.journal.submit_nowait(changes)

    async def _consume(self, nursery: trio.Nursery) -> None:
        channel = self.client.events
        while True:
            try:
                item = await channel.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                log.info("ingest: the AMI event channel closed")
                return
            batch = [item]
            # take what is already queued without a checkpoint per event
            while len(batch) < DRAIN_MAX:
                try:
                    batch.append(channel.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            for item in batch:
                message = getattr(item, "message", None)
                if message is not None:
                    await self._event(message, float(getattr(item, "at", 0.0)) or time.time())
                elif getattr(item, "action", None) == "CoreShowChannels":
                    await self._apply_resync(item.events, float(item.at) or time.time())
                elif hasattr(item, "asterisk_version"):
                    self.connected = True
                    log.info(
                        "ingest: AMI logged in (Asterisk %s); resyncing live calls",
                        item.asterisk_version,
                    )
                    nursery.start_soon(self._resync, False)
                else:
                    self.connected = False
                    log.warning("ingest: AMI disconnected (%s)", getattr(item, "reason", "?"))

    async def _event(self, message: Message, at: float) -> None:
        self.events += 1
        try:
            changes = self.tracker.feed(message, at)
        except Exception:
            self.errors += 1
            log.exception(
                "ingest: the tracker failed on %s event at byte %d; event skipped",
                message.name,
                message.offset,
            )
            return
        if changes:
            self.changes += len(changes)
            await self.journal.submit(changes, arrived_at=at)

    async def _resync(self, periodic: bool) -> None:
        # The snapshot is applied where its list ended in the event stream (the client
        # delivers it there as a ListCompleted), not when this task gets the answer:
        # Asterisk keeps sending events meanwhile, and a snapshot applied to a tracker
        # that is behind (or ahead of) it would end calls whose Hangup is still queued.
        timeout = self.config.ami.action_timeout
        self._periodic = periodic
        self._resyncing = True
        try:
            with trio.fail_after(timeout + 1):
                await self.client.action("CoreShowChannels", timeout=timeout, in_stream=True)
        except Exception as exc:
            log.warning("ingest: CoreShowChannels failed (%s); live calls not resynced", exc)
        finally:
            self._resyncing = False

    async def _apply_resync(self, events: Sequence[Message], at: float) -> None:
        channels = [m for m in events if m.name == "CoreShowChannel"]
        try:
            changes = self.tracker.resync(channels, at, periodic=self._periodic)
        except Exception:
            log.exception("ingest: the tracker failed to resync")
            return
        self.resyncs += 1
        if changes:
            ended = sum(1 for c in changes if c.kind == "call.ended")
            log.info(
                "ingest: resync with %d live channels: %d changes, %d calls ended",
                len(channels),
                len(changes),
                ended,
            )
            self.changes += len(changes)
            await self.journal.submit(changes)

    async def _expire_loop(self) -> None:
        # every second: ended calls stop waiting for their Cdr events after a grace time,
        # and calls silent for pbx.stale_call_seconds are closed; every
        # pbx.resync_seconds, CoreShowChannels finds calls whose Hangups were lost
        every = self.config.pbx.resync_seconds
        next_resync = time.monotonic() + every
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(EXPIRE_EVERY)
                try:
                    changes = self.tracker.expire(time.time())
                    metrics.LIVE_CALLS.set(self.tracker.live_count())
                    self._note_oddities()
                except Exception:
                    log.exception("ingest: the tracker failed to expire calls")
                    continue
                if changes:
                    self.changes += len(changes)
                    await self.journal.submit(changes)
                due = every > 0 and time.monotonic() >= next_resync
                if due and self.connected and not self._resyncing:
                    next_resync = time.monotonic() + every
                    nursery.start_soon(self._resync, True)

    def _note_oddities(self) -> None:
        """The tracker counts input it did not expect; the metric follows its counts and
        each kind is logged once, with its first example."""
        for kind, count in self.tracker.oddities().items():
            seen = self._oddities.get(kind, 0)
            if count <= seen:
                continue
            metrics.AMI_ODDITIES.labels(kind).inc(count - seen)
            self._oddities[kind] = count
            if seen == 0:
                log.warning(
                    "ingest: AMI input the tracker did not expect (%s), e.g. %r; counted in "
                    "pinc_ami_oddities_total, logged once per kind",
                    kind,
                    self.tracker.oddity_example(kind),
                )
