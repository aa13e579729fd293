"""The in-process feed of committed CallChanges (``pinc.services.Feed``).

The journal publishes a batch only after its transaction committed. Every
subscriber has its own bounded queue; publishing never waits: a subscriber whose
queue is full misses the change, its ``dropped`` counter goes up and the next
change it receives carries that news (``lagged``), so ingest is never slowed by a
slow websocket.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import trio

from pinc import metrics
from pinc.calls.model import CallChange

log = logging.getLogger(__name__)


class FeedSubscription:
    """One subscriber's bounded queue of changes (``pinc.services.Subscription``)."""

    def __init__(self, hub: FeedHub, maxsize: int) -> None:
        self._hub = hub
        self.maxsize = max(1, maxsize)
        self._queue: deque[CallChange] = deque()
        self._wakeup = trio.Event()
        self._closed = False
        self.dropped = 0  # changes missed because the queue was full
        self.lagged = False  # set when a drop happened; cleared once the subscriber looked

    def _offer(self, change: CallChange) -> None:
        if len(self._queue) >= self.maxsize:
            if not self.lagged:
                log.warning(
                    "feed subscriber fell behind (%d queued): it misses changes", self.maxsize
                )
            self.dropped += 1
            self.lagged = True
            metrics.FEED_DROPPED.inc()
            return
        self._queue.append(change)
        self._wakeup.set()

    def _close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> AsyncIterator[CallChange]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[CallChange]:
        while True:
            change = await self.receive()
            if change is None:
                return
            yield change

    async def receive(self) -> CallChange | None:
        """The next change; None once the feed or this subscription is closed."""
        if self._queue:
            await trio.lowlevel.checkpoint()
        while not self._queue:  # waiting is the checkpoint: one scheduler step, not two
            if self._closed:
                return None
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        return self._queue.popleft()

    def receive_nowait(self) -> CallChange | None:
        """A queued change without waiting, or None (for batching consumers)."""
        return self._queue.popleft() if self._queue else None

    def pending(self) -> int:
        return len(self._queue)

    async def aclose(self) -> None:
        self._hub._remove(self)
        self._close()
        await trio.lowlevel.checkpoint()


class Listener(Protocol):
    """Called inside ``publish`` (the journal's task, after the commit): must not wait."""

    def publish(self, changes: Sequence[CallChange]) -> None: ...

    def close(self) -> None: ...


class FeedHub:
    """Fan-out of committed changes to any number of bounded subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[FeedSubscription] = []
        self._listeners: list[Listener] = []
        self.published = 0
        self.last_seq = 0  # journal sequence number of the last change published
        self._closed = False

    def subscribe(self, maxsize: int = 256) -> FeedSubscription:
        sub = FeedSubscription(self, maxsize)
        if self._closed:
            sub._close()
        else:
            self._subscribers.append(sub)
        return sub

    def _remove(self, sub: FeedSubscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def add_listener(self, listener: Listener) -> None:
        """``listener.publish`` sees every batch as it is published (the websocket fan-out,
        pinc/web/fanout.py, which encodes each change once for all its clients)."""
        if self._closed:
            listener.close()
        else:
            self._listeners.append(listener)

    def publish(self, changes: Sequence[CallChange]) -> None:
        """Hand committed changes to every subscriber. Never blocks."""
        for sub in self._subscribers:
            for change in changes:
                sub._offer(change)
        self.published += len(changes)
        for listener in self._listeners:
            try:
                listener.publish(changes)
            except Exception:  # a listener's bug must not stop the journal
                log.exception("feed listener %r failed", listener)

    def close(self) -> None:
        """End every subscription (shutdown): iterators finish once their queue is empty."""
        self._closed = True
        for sub in self._subscribers:
            sub._close()
        self._subscribers.clear()
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()

    def statistics(self) -> dict[str, Any]:
        return {
            "subscribers": len(self._subscribers),
            "published": self.published,
            "dropped": sum(s.dropped for s in self._subscribers),
        }
