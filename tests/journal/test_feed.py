"""The feed: bounded per subscriber; a slow subscriber misses changes and is told."""

from __future__ import annotations

import trio

from pinc.feed import FeedHub

from .conftest import lifecycle


async def test_slow_subscriber_drops_and_never_blocks() -> None:
    hub = FeedHub()
    fast = hub.subscribe(100)
    slow = hub.subscribe(2)
    changes = [ch for n in range(5) for ch in lifecycle(n)]  # 20
    hub.publish(changes)  # synchronous: returns at once whatever the subscribers do
    assert slow.dropped == 18 and slow.lagged
    assert fast.dropped == 0 and fast.pending() == 20
    with trio.fail_after(5):
        got = [await slow.receive() for _ in range(2)]
    assert got == changes[:2]
    assert hub.statistics()["dropped"] == 18


async def test_close_ends_iteration_after_the_queue() -> None:
    hub = FeedHub()
    sub = hub.subscribe(10)
    hub.publish(lifecycle(1))
    hub.close()
    with trio.fail_after(5):
        got = [ch async for ch in sub]
    assert len(got) == 4
    late = hub.subscribe()
    with trio.fail_after(5):
        assert await late.receive() is None


async def test_aclose_unsubscribes() -> None:
    hub = FeedHub()
    sub = hub.subscribe(10)
    await sub.aclose()
    hub.publish(lifecycle(1))
    assert sub.pending() == 0 and hub.statistics()["subscribers"] == 0
