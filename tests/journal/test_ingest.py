"""The ingest: AMI events -> tracker -> journal, restore at start, resync after login.

The AMI side is a small in-test source (a bounded channel plus ``action``) behaving as the
real client does; the tracker and the journal are the real ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import trio

from pinc.ami.events import Connected, ListCompleted, Received
from pinc.ami.protocol import Kind, Message, parse_block
from pinc.calls.tracker import Tracker
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.ingest import Ingest
from pinc.journal import queries
from pinc.journal.store import Journal
from pinc.services import ActionResult

from .conftest import call, change

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def event(name: str, **fields: str) -> Message:
    lines = [f"Event: {name}", *(f"{k}: {v}" for k, v in fields.items())]
    return parse_block("\r\n".join(lines))


class Source:
    def __init__(self, live_linkedids: Iterable[str] = ()) -> None:
        self.send, self.events = trio.open_memory_channel[Any](100)
        self.live = list(live_linkedids)
        self.actions: list[str] = []

    async def action(
        self,
        name: str,
        fields: Mapping[str, Any] | Iterable[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
        in_stream: bool = False,
    ) -> ActionResult:
        self.actions.append(name)
        items = tuple(event("CoreShowChannel", Linkedid=lid, Uniqueid=lid) for lid in self.live)
        ok = parse_block("Response: Success\r\nEventList: start")
        assert ok.kind is Kind.RESPONSE
        if in_stream:  # as the real client does: the list also goes into the event stream
            await self.send.send(ListCompleted(name, items, time.time()))
        return ActionResult(ok, items)

    def status(self) -> dict[str, Any]:
        return {"connected": True}


def transcript(name: str) -> list[Message]:
    from pinc.ami.protocol import AMIConnection

    conn = AMIConnection()
    conn.feed((FIXTURES / name).read_bytes())
    return [m for m in conn.messages() if isinstance(m, Message) and m.is_event]


async def test_events_become_journal_calls(config: Config, db_path: Path) -> None:
    """The real tracker behind the ingest: a recorded call, an unknown event among its
    events, everything in the journal and on the feed, in order."""
    feed = FeedHub()
    journal = Journal(config, feed)
    source = Source()
    ingest = Ingest(config, source, journal)
    sub = feed.subscribe()
    events = transcript("asterisk-pjsip/pjsip_inbound_answered.ami")
    kinds: list[str] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await nursery.start(ingest.run)
            await source.send.send(Received(event("Bogus"), time.time()))
            for msg in events:
                await source.send.send(Received(msg, time.time()))
            while not kinds or kinds[-1] != "call.ended":  # after the Cdr grace
                got = await sub.receive()
                assert got is not None
                kinds.append(got.kind)
            calls, _ = await journal.read(queries.list_calls)
            nursery.cancel_scope.cancel()
    assert kinds[0] == "call.started" and "call.answered" in kinds
    ((call_,),) = (calls,)
    assert (call_["direction"], call_["status"], call_["from"], call_["answered_by"]) == (
        "inbound", "completed", "79035550011", "101")
    assert ingest.statistics()["events"] == len(events) + 1 and ingest.errors == 0


async def test_tracker_errors_skip_the_event(config: Config) -> None:
    class Broken(Tracker):
        def feed(self, msg: Message, at: float | None = None) -> list[Any]:
            if msg.name == "Bad":
                raise ValueError("tracker bug")
            return super().feed(msg, at)

    journal = Journal(config, FeedHub())
    source = Source()
    ingest = Ingest(config, source, journal, tracker=Broken(config.pbx))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await nursery.start(ingest.run)
            await source.send.send(Received(event("Bad"), time.time()))
            for msg in transcript("asterisk-pjsip/pjsip_inbound_answered.ami"):
                await source.send.send(Received(msg, time.time()))
            while journal.committed < 1:  # noqa: ASYNC110 (polls the journal)
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert ingest.statistics()["errors"] == 1


async def test_restart_restores_then_resyncs_after_login(config: Config, db_path: Path) -> None:
    gone, alive = call(1), call(2)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:  # the previous run left two calls open
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            await journal.submit([change("call.started", gone), change("call.started", alive)])
            nursery.cancel_scope.cancel()

        feed = FeedHub()
        journal = Journal(config, feed)
        source = Source(live_linkedids=[alive.linkedid])
        ingest = Ingest(config, source, journal)
        sub = feed.subscribe()
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await nursery.start(ingest.run)
            assert ingest.restored == 2
            assert sorted(c["id"] for c in ingest.live_calls()) == ["c00001", "c00002"]
            await source.send.send(Connected("Asterisk 22", time.time(), reconnect=False))
            ended = await sub.receive()
            live = await journal.read(queries.live_calls)
            gone_now = await journal.read(lambda c: queries.get_call(c, "c00001"))
            nursery.cancel_scope.cancel()
    assert source.actions == ["CoreShowChannels"]
    assert ended is not None and ended.kind == "call.ended" and ended.call_id == "c00001"
    assert gone_now is not None and gone_now["end_reason"] == "ended while pinc was disconnected"
    assert [c["id"] for c in live] == ["c00002"]
    assert [c["id"] for c in ingest.live_calls()] == ["c00002"]
