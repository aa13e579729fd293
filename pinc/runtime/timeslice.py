"""Cooperative time slices: bulk work gives way to the rest of the event loop.

Trio runs every runnable task once per scheduler batch, then polls the sockets again.
When 200 websocket clients each have frames to write, one batch is 200 writes (20-100
ms measured), and a /ping waits a whole batch at each of the half-dozen hops it takes
through Hypercorn and Quart. Bulk writers call ``give_way()`` before their work: while
the current batch is young and nobody is queued, they go on at once; otherwise they
queue, and the ``TimeSlicer`` service lets a few of them go per batch (halved when a
batch overran, more when it had room); each one let go checks the batch again, and
queues again if those before it spent it. Everything else (a /ping, an AGI answer,
the AMI reader) gets its turn within a few milliseconds; the bulk work is the same,
spread out, and what queues meanwhile goes out in fewer, larger writes.

Batch times come from a trio Instrument hooking only the two I/O-wait events (once
per batch each): nothing is added to each task step. Without a running ``TimeSlicer``
(a test that builds the web app alone), ``give_way`` only yields when the batch is old.
"""

from __future__ import annotations

import time

import trio

SLICE_SECONDS = 0.001
MAX_RELEASE = 64


class BatchClock(trio.abc.Instrument):
    """When the scheduler's current batch began, and how long the last one ran."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last = 0.0

    def after_io_wait(self, timeout: float) -> None:
        self.started = time.perf_counter()

    def before_io_wait(self, timeout: float) -> None:
        self.last = time.perf_counter() - self.started

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class TimeSlicer:
    """A service: the queue of bulk work waiting for room in a scheduler batch."""

    def __init__(self, *, budget: float = SLICE_SECONDS) -> None:
        self.budget = budget
        self.clock = BatchClock()
        self.release = 1  # tasks let go per batch (adapted)
        self.queued = 0  # give_way calls that had to wait, in all
        self.requeued = 0  # let go into a batch already spent, so waited again
        self._lot = trio.lowlevel.ParkingLot()
        self._someone = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        trio.lowlevel.add_instrument(self.clock)
        token = _SLICER.set(self)
        try:
            task_status.started()
            while True:
                if not self._lot:
                    self._someone = trio.Event()
                    await self._someone.wait()
                if self.clock.last > 2 * self.budget:
                    self.release = max(1, self.release // 2)
                elif self.clock.last < self.budget:
                    self.release = min(MAX_RELEASE, self.release + 1 + self.release // 4)
                # They run in the next batch, with this task again (it stays runnable
                # while anyone waits: the loop polls sockets between batches anyway).
                self._lot.unpark(count=self.release)
                await trio.lowlevel.checkpoint()
        finally:
            _SLICER.reset(token)
            self._lot.unpark_all()
            trio.lowlevel.remove_instrument(self.clock)

    async def give_way(self) -> None:
        if not self._lot and self.clock.elapsed() <= self.budget:
            return
        self.queued += 1
        while True:
            self._someone.set()
            await self._lot.park()
            # Those let go before this one may have spent the batch already.
            if self.clock.elapsed() <= self.budget:
                return
            self.requeued += 1

    def statistics(self) -> dict[str, float | int]:
        return {
            "waiting": len(self._lot),
            "queued": self.queued,
            "requeued": self.requeued,
            "release": self.release,
            "last_batch_ms": round(self.clock.last * 1000, 3),
        }


_SLICER: trio.lowlevel.RunVar[TimeSlicer | None] = trio.lowlevel.RunVar(
    "pinc_time_slicer", default=None
)
_FALLBACK: trio.lowlevel.RunVar[BatchClock | None] = trio.lowlevel.RunVar(
    "pinc_batch_clock", default=None
)


async def give_way(budget: float = SLICE_SECONDS) -> None:
    """Wait for room in a scheduler batch (see the module's docstring).

    Not a checkpoint when there is room (no cancellation either): call it next to
    real awaits.
    """
    slicer = _SLICER.get()
    if slicer is not None:
        await slicer.give_way()
        return
    clock = _FALLBACK.get()
    if clock is None:
        clock = BatchClock()
        trio.lowlevel.add_instrument(clock)
        _FALLBACK.set(clock)
    if clock.elapsed() > budget:
        await trio.lowlevel.checkpoint()
