"""The ingest shows the tracker's oddity counts in /metrics and logs each kind once (#13)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
import trio

from pinc import metrics
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.ingest import Ingest
from pinc.journal.store import Journal

from .test_ingest import Connected, Received, Source, event


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (under the test's deadline)."""
    for _ in range(10_000):
        if condition():
            return
        await trio.sleep(0.02)


def _metric(kind: str) -> float:
    return metrics.REGISTRY.get_sample_value("pinc_ami_oddities_total", {"kind": kind}) or 0.0


async def test_oddities_reach_the_metric_and_are_logged_once(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    before = {k: _metric(k) for k in ("unknown_event", "missing_field", "unseen_channel")}
    journal = Journal(config, FeedHub())
    source = Source()
    ingest = Ingest(config, source, journal)  # the real tracker
    caplog.set_level(logging.WARNING, logger="pinc.ingest")
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await nursery.start(ingest.run)
            for n in range(3):
                now = time.time()
                await source.send.send(Received(event("Asterisk11Dial", SubEvent="Begin"), now))
                await source.send.send(Received(event("DialEnd", Uniqueid=f"9.{n}"), now))
            # the ingest looks at the counts every second
            await _until(lambda: ingest.statistics()["oddities"].get("unknown_event", 0) >= 3)
            nursery.cancel_scope.cancel()
    assert _metric("unknown_event") - before["unknown_event"] == 3
    assert _metric("missing_field") - before["missing_field"] == 6  # DestUniqueid, DialStatus
    assert _metric("unseen_channel") - before["unseen_channel"] == 3
    lines = [r.getMessage() for r in caplog.records if "did not expect" in r.getMessage()]
    assert len(lines) == 4  # one per kind (a nameless channel too), however often it came
    assert any("unknown_event" in line and "Asterisk11Dial" in line for line in lines)


async def test_a_periodic_resync_closes_calls_whose_hangups_were_lost(config: Config) -> None:
    from dataclasses import replace

    from pinc.calls.closing import GONE_REASON
    from pinc.journal import queries

    config = replace(config, pbx=replace(config.pbx, resync_seconds=0.5))
    journal = Journal(config, FeedHub())
    source = Source()  # CoreShowChannels: nothing is up
    ingest = Ingest(config, source, journal)
    long_ago = time.time() - 120  # the call's last event: its Hangup never came
    fields = {"Channel": "PJSIP/trunk-1", "Context": "from-trunk", "Exten": "74951230000"}
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await nursery.start(ingest.run)
            await source.send.send(Connected("22.10.1", time.time()))
            await _until(lambda: ingest.resyncs >= 1)  # the login's: nothing up, nothing ends
            for name in ("Newchannel", "QueueCallerJoin"):
                msg = event(name, Uniqueid="1700000000.1", Linkedid="1700000000.1", **fields)
                await source.send.send(Received(msg, long_ago))
            while True:
                calls, _ = await journal.read(queries.list_calls)
                if calls and calls[0]["status"] == "missed":
                    break
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert calls[0]["end_reason"] == GONE_REASON
    assert source.actions.count("CoreShowChannels") >= 2  # the login's, then periodic ones
