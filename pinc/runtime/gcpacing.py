"""Keep the cyclic garbage collector's pauses short while pinc holds many live calls.

A full (generation 2) collection walks every object the collector tracks, with the event
loop stopped. With 2,000 live calls and 200 websocket clients that is ~130,000 objects:
40-60 ms, about once a second under load, the whole of a /ping's 50 ms budget
(docs/performance.md). Almost none of it is garbage (20-80 objects a time). So after
each full collection the survivors are moved out of the collector's sight
(``gc.freeze``), and the next full collections walk only what was allocated since.

Frozen objects are still freed by reference counting the moment they are unused; only
garbage *cycles* among them would wait. So every ``full_every`` seconds everything is
unfrozen and collected once (one pause of the old size, rare enough not to matter).
"""

from __future__ import annotations

import gc
import logging

import trio

from pinc import metrics

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
FULL_EVERY_SECONDS = 300.0


def full_collections() -> int:
    """How many generation-2 collections this process has run."""
    return int(gc.get_stats()[2]["collections"])


class GcPacer:
    """A service: freeze after each full collection, collect everything now and then."""

    def __init__(
        self, *, poll: float = POLL_SECONDS, full_every: float = FULL_EVERY_SECONDS
    ) -> None:
        self.poll = poll
        self.full_every = full_every
        self.freezes = 0
        self.full_passes = 0
        self.reclaimed = 0  # objects found garbage by the periodic full passes

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # What start-up built (imports, the app, the services) lives as long as pinc.
        gc.collect()
        gc.freeze()
        metrics.GC_FROZEN.set(gc.get_freeze_count())
        task_status.started()
        last_full = trio.current_time()
        seen = full_collections()
        try:
            while True:
                await trio.sleep(self.poll)
                if trio.current_time() - last_full >= self.full_every:
                    self.full_pass()
                    last_full = trio.current_time()
                    seen = full_collections()
                elif full_collections() != seen:
                    gc.freeze()
                    self.freezes += 1
                    metrics.GC_FREEZES.inc()
                    metrics.GC_FROZEN.set(gc.get_freeze_count())
                    seen = full_collections()
        finally:
            # Hand every object back to the collector (in-process users, tests).
            gc.unfreeze()
            metrics.GC_FROZEN.set(0)

    def full_pass(self) -> int:
        """Unfreeze, collect everything, freeze the survivors: garbage cycles go."""
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.full_passes += 1
        self.reclaimed += found
        metrics.GC_FULL_PASSES.inc()
        metrics.GC_FROZEN.set(gc.get_freeze_count())
        log.debug("gc: full pass found %d garbage objects; %d frozen", found, gc.get_freeze_count())
        return found

    def statistics(self) -> dict[str, int]:
        return {
            "freezes": self.freezes,
            "full_passes": self.full_passes,
            "reclaimed": self.reclaimed,
            "frozen": gc.get_freeze_count(),
        }
