"""pinc.runtime.timeslice: bulk work gives way, nobody starves, nothing deadlocks."""

from __future__ import annotations

import time
from collections import Counter

import trio

from pinc.runtime.timeslice import TimeSlicer, give_way

UNIT = 0.0004  # seconds of CPU one bulk step burns
BULK_TASKS = 40
ROUNDS = 5


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class _BatchCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.batch = 0

    def after_io_wait(self, timeout: float) -> None:
        self.batch += 1


async def _bulk(units: Counter[int], batches: _BatchCounter, done: list[int], k: int) -> None:
    for _ in range(ROUNDS):
        await give_way()
        units[batches.batch] += 1
        _spin(UNIT)
        await trio.lowlevel.checkpoint()
    done.append(k)


async def _run_bulk(*, with_slicer: bool) -> tuple[Counter[int], list[int], int]:
    batches = _BatchCounter()
    trio.lowlevel.add_instrument(batches)
    units: Counter[int] = Counter()
    done: list[int] = []
    pings = 0
    try:
        async with trio.open_nursery() as outer:
            slicer = TimeSlicer(budget=0.001)
            if with_slicer:
                await outer.start(slicer.run)

            async def ping() -> None:
                nonlocal pings
                while True:
                    pings += 1
                    await trio.lowlevel.checkpoint()

            outer.start_soon(ping)
            async with trio.open_nursery() as nursery:
                for k in range(BULK_TASKS):
                    nursery.start_soon(_bulk, units, batches, done, k)
            outer.cancel_scope.cancel()
    finally:
        trio.lowlevel.remove_instrument(batches)
    return units, done, pings


async def test_bulk_work_is_spread_over_batches_and_all_of_it_is_done() -> None:
    units, done, pings = await _run_bulk(with_slicer=True)
    assert sorted(done) == list(range(BULK_TASKS))  # nobody starved, nothing stuck
    assert sum(units.values()) == BULK_TASKS * ROUNDS
    # 1 ms budget, 0.4 ms a unit: a batch takes a few units, never all 40 at once
    assert max(units.values()) <= 5
    # the other task ran between them: about once per batch, not once per 40 units
    assert pings >= len(units) // 2


async def test_without_the_slicer_a_batch_takes_everyone() -> None:
    # The contrast that makes the test above mean something: with the fallback,
    # give_way only yields, and the woken tasks all run together again.
    units, done, _ = await _run_bulk(with_slicer=False)
    assert sorted(done) == list(range(BULK_TASKS))
    assert max(units.values()) > 5


async def test_a_waiting_task_can_be_cancelled_and_stopping_lets_everyone_go() -> None:
    slicer = TimeSlicer(budget=0.0)  # every batch is spent: everyone waits
    async with trio.open_nursery() as outer:
        await outer.start(slicer.run)
        with trio.move_on_after(0.05) as scope:
            while True:  # a budget of 0 still lets some go; cancellation must work
                await give_way()
                _spin(0.0001)
        assert scope.cancelled_caught
        outer.cancel_scope.cancel()
    # after the slicer stopped, give_way falls back (does not wait forever)
    with trio.fail_after(1):
        for _ in range(10):
            await give_way()
    assert slicer.statistics()["queued"] >= 1


async def test_give_way_is_free_when_the_batch_is_young() -> None:
    slicer = TimeSlicer(budget=10.0)
    async with trio.open_nursery() as outer:
        await outer.start(slicer.run)
        await trio.sleep(0.01)  # a fresh batch
        for _ in range(100):
            await give_way()
        assert slicer.statistics()["queued"] == 0
        outer.cancel_scope.cancel()
