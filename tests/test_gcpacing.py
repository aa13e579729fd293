"""pinc.runtime.gcpacing: survivors of full collections are frozen, cycles are still reclaimed."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import trio

from pinc.runtime.gcpacing import GcPacer, full_collections


class _Node:
    def __init__(self) -> None:
        self.other: Any = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def test_survivors_of_a_full_collection_are_frozen_then_handed_back() -> None:
    pacer = GcPacer(poll=0.01, full_every=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(pacer.run)
        assert gc.get_freeze_count() > 0  # start-up objects
        kept = [_Node() for _ in range(1000)]
        seen = full_collections()
        gc.collect()
        assert full_collections() > seen
        with trio.fail_after(5):
            while pacer.freezes == 0:  # noqa: ASYNC110 (polled, like the pacer)
                await trio.sleep(0.01)
        # frozen: in no generation the collector walks (the count alone can also fall,
        # when the pacer's pass reclaims start-up objects that became garbage meanwhile)
        walked = {id(o) for o in gc.get_objects()}
        assert not any(id(node) in walked for node in kept)
        assert gc.get_freeze_count() >= len(kept)
        nursery.cancel_scope.cancel()
    assert gc.get_freeze_count() == 0  # everything back in the collector's sight


async def test_a_cycle_frozen_with_the_survivors_is_reclaimed_by_the_full_pass() -> None:
    pacer = GcPacer(poll=3600, full_every=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(pacer.run)
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        gc.freeze()  # what the pacer does after a full collection
        del a, b
        gc.collect()
        assert ref() is not None  # frozen: ordinary collections do not see it
        found = pacer.full_pass()
        assert ref() is None and found >= 2
        assert pacer.statistics()["full_passes"] == 1
        nursery.cancel_scope.cancel()


async def test_the_periodic_full_pass_runs_on_its_own() -> None:
    pacer = GcPacer(poll=0.01, full_every=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(pacer.run)
        ref = _cycle()
        gc.freeze()
        with trio.fail_after(5):
            while ref() is not None:  # noqa: ASYNC110 (a weakref has no event)
                await trio.sleep(0.01)
        assert pacer.full_passes >= 1
        nursery.cancel_scope.cancel()


async def test_gc_pacing_is_a_switch_with_metrics() -> None:
    from pinc import metrics
    from pinc.config import Config, replace

    assert Config().runtime.gc_pacing is True
    off = replace(Config(), runtime={"gc_pacing": False})
    assert off.runtime.gc_pacing is False
    pacer = GcPacer(poll=0.01, full_every=3600)
    before = metrics.GC_FREEZES._value.get()
    async with trio.open_nursery() as nursery:
        await nursery.start(pacer.run)
        assert metrics.GC_FROZEN._value.get() > 0
        seen = full_collections()
        gc.collect()
        with trio.fail_after(5):
            while pacer.freezes == 0:  # noqa: ASYNC110 (the pacer's own poll)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert full_collections() > seen
    assert metrics.GC_FREEZES._value.get() == before + pacer.freezes
    assert metrics.GC_FROZEN._value.get() == 0  # unfrozen when the pacer stops
