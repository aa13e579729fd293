"""``serve`` in process: start order, the handle, and a drained shutdown."""

from __future__ import annotations

from pathlib import Path

import trio

from pinc.app import serve
from pinc.config import Config, replace
from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript

from .conftest import FIXTURES, SECRET, TOKEN


async def test_serve_starts_everything_and_drains(tmp_path: Path) -> None:
    sim = AmiSimServer(load_transcript(FIXTURES / "inbound_answered.ami"))
    db = tmp_path / "pinc.db"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sim.run)
            config = replace(
                Config(),
                ami={"port": port, "secret": SECRET, "reconnect_min": 0.1},
                journal={"path": str(db)},
                web={"listen": "127.0.0.1:0", "token": TOKEN},
                agi={"listen": "127.0.0.1:0"},
            )
            handle = await nursery.start(serve, config)
            assert handle.agi_port and handle.agi_port > 0
            services = handle.services
            assert services.journal is handle.journal and services.feed is handle.feed
            assert services.crm.status()["state"] == "disabled"
            sub = services.feed.subscribe()
            await sim.wait_replayed()
            while True:  # the call ends a moment after the replay (its Cdr grace)
                change = await sub.receive()
                assert change is not None
                if change.kind == "call.ended":
                    break
            nursery.cancel_scope.cancel()
    assert handle.journal.pending() == 0
    assert handle.journal.status()["committed"] >= 1
