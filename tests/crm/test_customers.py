"""Customer names for pinc's own feed: looked up when a call starts, kept per number."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pinc.crm.customers import CustomerNames
from pinc.crm.webservice import VtigerWebservice
from pinc.feed import FeedHub
from pinc.web.fanout import message_of
from tests.crm.conftest import crm_config, wait_until
from tests.crm.fakesalesplatform import FakeSalesPlatform
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.scenarios import call_snapshot, change


@pytest.mark.parametrize("fake_class", [FakeVtiger, FakeSalesPlatform])
async def test_names_of_calls(nursery: trio.Nursery, tmp_path: Path,
                              fake_class: type[FakeVtiger]) -> None:
    fake = fake_class()
    await nursery.start(fake.run)
    profile = "salesplatform" if fake.has_spagi else "vtiger"
    config = crm_config(fake.port, tmp_path, profile=profile)
    feed = FeedHub()
    names = CustomerNames(config, VtigerWebservice(config), feed)
    await nursery.start(names.run)
    anna = call_snapshot(id="n1", **{"from": "+7 (916) 123-45-67"})
    boris = call_snapshot(id="n2", direction="outbound", **{"from": "102", "to": "89035550102"})
    stranger = call_snapshot(id="n3", **{"from": "79990000000"})
    internal = call_snapshot(id="n4", direction="internal", **{"from": "101", "to": "102"})
    first = change("call.started", anna)
    assert message_of(first, names).get("customer") is None  # never waits
    feed.publish([first, change("call.started", boris), change("call.started", stranger),
                  change("call.started", internal)])
    with trio.fail_after(10):
        await wait_until(lambda: names.statistics()["numbers"] == 3)
    base = config.crm.url
    assert names.of(anna) == {"name": "Anna Customer", "type": "Contacts", "id": "12x2",
                              "url": f"{base}/index.php?module=Contacts&view=Detail&record=2"}
    assert names.of(boris) == {"name": "Boris Prospect", "type": "Leads", "id": "10x3",
                               "url": f"{base}/index.php?module=Leads&view=Detail&record=3"}
    assert names.of(stranger) is None and names.of(internal) is None
    later = change("call.answered", {**anna, "status": "answered"})
    assert message_of(later, names)["customer"]["name"] == "Anna Customer"
    # the same number again (another form of it): no new lookup; a new number: one
    lookups = names.lookups
    feed.publish([change("call.started", call_snapshot(id="n5", **{"from": "9161234567"})),
                  change("call.started", call_snapshot(id="n6", **{"from": "79035550011"}))])
    with trio.fail_after(5):
        await wait_until(lambda: names.statistics()["numbers"] == 4)
    assert names.lookups == lookups + 1
    if fake.has_spagi:  # SalesPlatform: listed columns only (select * is a 500 there)
        queries = [p.get("query", "") for op, p in fake.ws_log if op == "query"]
        assert queries and all("*" not in q for q in queries)


async def test_a_failing_crm_gives_no_name_and_no_error(nursery: trio.Nursery,
                                                        tmp_path: Path) -> None:
    fake = FakeVtiger()
    fake.mode = "503"
    await nursery.start(fake.run)
    config = crm_config(fake.port, tmp_path)
    feed = FeedHub()
    names = CustomerNames(config, VtigerWebservice(config), feed)
    await nursery.start(names.run)
    anna = call_snapshot(id="f1")
    feed.publish([change("call.started", anna)])
    with trio.fail_after(10):
        await wait_until(lambda: names.failures == 1)
    assert names.of(anna) is None
