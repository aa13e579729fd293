"""Fixtures for the CRM tests: a fake vtiger on 127.0.0.1, a journal over a real file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from pinc.config import Config, replace
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.minijournal import MiniFeed, MiniJournal
from tests.crm.scenarios import call_snapshot, change

__all__ = ["call_snapshot", "change"]

SECRET = "pinc-lab-secret-42"


def crm_config(port: int, tmp_path: Path, **crm: Any) -> Config:
    rec = tmp_path / "monitor"
    rec.mkdir(exist_ok=True)
    return replace(
        Config(),
        crm={
            "url": f"http://127.0.0.1:{port}/vtigercrm",
            "secret": SECRET,
            "username": "admin",
            "access_key": "adminkey123",
            "retry_min": 0.01,
            "retry_max": 0.1,
            "timeout": 2.0,
            **crm,
        },
        web={"public_url": "http://pbx.example:8099"},
        pbx={"recordings_dir": str(rec)},
        journal={"path": str(tmp_path / "pinc.db")},
    )


@pytest.fixture
async def vtiger(nursery: trio.Nursery) -> AsyncIterator[FakeVtiger]:
    fake = FakeVtiger()
    await nursery.start(fake.run)
    yield fake


@pytest.fixture
def journal(tmp_path: Path) -> MiniJournal:
    return MiniJournal(tmp_path / "pinc.db", MiniFeed())


async def wait_until(predicate: Any, poll: float = 0.01) -> None:
    """Poll a condition the code under test reaches on its own (the caller sets a deadline)."""
    while True:
        if predicate():
            return
        await trio.sleep(poll)


class CrmParts:
    """The CRM side of pinc as app.py wires it: webservice, directory, routing, owners,
    the outbox hook and the delivery worker (against a fake CRM)."""

    def __init__(self, config: Config, journal: Any, feed: Any) -> None:
        from pinc.crm.delivery import DeliveryWorker
        from pinc.crm.directory import CrmDirectory
        from pinc.crm.outbox import make_outbox_hook
        from pinc.crm.owners import Owners
        from pinc.crm.webservice import VtigerWebservice
        from pinc.routing import Router

        self.lookup = VtigerWebservice(config)
        self.directory = CrmDirectory(config, self.lookup)
        self.router = Router(config, crm=self.lookup, journal=None)
        self.owners = Owners(config, self.directory, self.router)
        journal.add_batch_hook(make_outbox_hook(config, self.directory))
        self.worker = DeliveryWorker(config, journal, feed, directory=self.directory,
                                     owners=self.owners)
        self.directory.on_change(self.worker.poke)

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.directory.run)
        await nursery.start(self.router.run)
        await nursery.start(self.worker.run)
