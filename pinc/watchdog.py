"""The ingest watchdog: events wait and nothing moves -> say so, loudly, once.

The AMI reader blocks when the ingest does (backpressure), and the AMI client's ping
loop rightly excuses a blocked reader, so a stuck ingest looks healthy from outside.
The watchdog looks every second: when work is waiting (AMI events queued for the
ingest, or a submitter held by the journal) and the ingest's progress counter has not
moved for ``journal.stall_seconds``, it marks the ingest stalled: ``/ping`` answers
``degraded`` with the reason, ``pinc_ingest_stalled`` is 1 and one log line names what
is stuck. The first progress clears it (one more log line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import trio

from pinc import metrics

log = logging.getLogger("pinc.ingest")

WATCH_EVERY: Final = 1.0


class Watchdog:
    def __init__(
        self,
        *,
        limit: float,
        progress: Callable[[], int],
        queued: Callable[[], int],
        journal: Any,
    ) -> None:
        self.limit = limit  # seconds; 0 turns the watchdog off
        self._progress = progress
        self._queued = queued
        self._journal = journal
        self.stalled = False
        self.reason: str | None = None
        self.stalls = 0  # how many times it fired
        self._since: float | None = None  # trio clock: first look that saw no progress

    def status(self) -> dict[str, Any]:
        return {"stalled": self.stalled, "reason": self.reason, "stalls": self.stalls}

    async def run(self) -> None:
        metrics.INGEST_STALLED.set(0)
        if self.limit <= 0:
            return
        seen = self._progress()
        while True:
            await trio.sleep(WATCH_EVERY)
            now = trio.current_time()
            progress = self._progress()
            if progress != seen or not self._waiting():
                seen = progress
                self._since = None
                if self.stalled:
                    self._clear()
                continue
            if self._since is None:
                self._since = now
            elif not self.stalled and now - self._since >= self.limit:
                self._fire(now - self._since)

    def _waiting(self) -> bool:
        return self._queued() > 0 or self._journal.blocked_submitters() > 0

    def _what(self) -> str:
        queued = self._queued()
        blocked = self._journal.blocked_submitters()
        if blocked:
            status = self._journal.status()
            error = status.get("last_error")
            return (
                f"the journal has not taken changes: {status.get('pending')} changes wait "
                f"for the disk (journal.max_pending), {blocked} submitter(s) blocked, "
                f"{queued} AMI events queued; last write error: {error or 'none'}"
            )
        return f"{queued} AMI events queued and the ingest handled none of them"

    def _fire(self, idle: float) -> None:
        self.stalled = True
        self.stalls += 1
        self.reason = f"ingest stalled for {idle:.0f} s: {self._what()}"
        metrics.INGEST_STALLED.set(1)
        log.error("WATCHDOG: %s", self.reason)

    def _clear(self) -> None:
        log.warning("watchdog: the ingest moves again (%s)", self.reason)
        self.stalled = False
        self.reason = None
        metrics.INGEST_STALLED.set(0)
