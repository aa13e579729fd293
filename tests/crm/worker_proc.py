"""A process running the real journal + the CRM delivery worker, for the kill -9 test.

``python -m tests.crm.worker_proc OVERRIDES_JSON [SEED_CALLS]``: opens the journal named
in the overrides, optionally submits SEED_CALLS synthetic answered inbound calls (their
outbox rows come from the real batch hook), then delivers until killed.
"""

from __future__ import annotations

import json
import sys

import trio

from pinc.config import load_config
from pinc.crm.delivery import DeliveryWorker
from pinc.crm.outbox import make_outbox_hook
from pinc.feed import FeedHub
from pinc.journal.store import Journal
from tests.crm.scenarios import answered_inbound_changes


async def main(overrides: dict[str, dict[str, object]], seed: int) -> None:
    config = load_config(None, env={}, overrides=overrides)
    feed = FeedHub()
    journal = Journal(config, feed)
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, feed)
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        for i in range(seed):
            await journal.submit(answered_inbound_changes(f"k{i:04d}"))
        await nursery.start(worker.run)
        print("ready", flush=True)


if __name__ == "__main__":
    trio.run(main, json.loads(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
