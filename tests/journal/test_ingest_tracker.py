"""The real tracker behind the ingest: concurrent_load into the journal, as `pinc replay`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import trio

from pinc.ami.events import Received
from pinc.ami.protocol import AMIConnection, Message
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.ingest import Ingest
from pinc.journal import queries
from pinc.journal.store import Journal

from .test_ingest import Source

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "asterisk-local"


def messages(name: str) -> list[Message]:
    conn = AMIConnection()
    data = (FIXTURE / name).read_bytes()
    out: list[Message] = []
    for i in range(0, len(data), 65536):  # as a socket would deliver it
        conn.feed(data[i : i + 65536])
        out.extend(m for m in conn.messages() if isinstance(m, Message) and m.is_event)
    return out


def essentials(call: dict[str, Any]) -> dict[str, Any]:
    return {  # a live ingest gives random ids: calls are matched by Asterisk's Linkedid
        "linkedid": call["linkedid"],
        "direction": call["direction"],
        "status": call["status"],
        "from": call["from"],
        "to": call["to"],
        "answered_by": call["answered_by"],
        "legs": [(leg["ext"], leg["result"]) for leg in call["legs"]],
        "transfers": [(t["kind"], t["from"], t["to"]) for t in call["transfers"]],
        "recording": call["recording"],
    }


async def test_concurrent_load_through_ingest_matches_replay(config: Config) -> None:
    from pinc.calls.replay import replay_files

    expected = [
        json.loads(line) for line in replay_files(config, [FIXTURE / "concurrent_load.ami"])
    ]
    feed = FeedHub()
    journal = Journal(config, feed)
    source = Source()
    ingest = Ingest(config, source, journal)
    sub = feed.subscribe(100_000)
    with trio.fail_after(60):
        async with trio.open_nursery() as outer:
            await outer.start(journal.run)
            async with trio.open_nursery() as nursery:
                await nursery.start(ingest.run)
                for msg in messages("concurrent_load.ami"):
                    await source.send.send(Received(msg, time.time()))
                while source.events.statistics().current_buffer_used:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()  # shutdown: the ingest flushes ended calls
            while journal.pending():  # noqa: ASYNC110 (polls the journal)
                await trio.sleep(0.01)
            calls, _ = await journal.read(lambda c: queries.list_calls(c, limit=1000))
            outer.cancel_scope.cancel()
    got = sorted((essentials(c) for c in calls), key=lambda c: c["linkedid"])
    assert got == sorted((essentials(c) for c in expected), key=lambda c: c["linkedid"])
    published = []
    while (ch := sub.receive_nowait()) is not None:
        published.append(ch)
    assert sum(1 for ch in published if ch.kind == "call.ended") == len(expected)
