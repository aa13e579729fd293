"""Webservice and SPAgi lookups against the fake vtiger: forms, owners, cache, sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pinc.config import replace
from pinc.crm.webservice import CrmLookupError, VtigerWebservice
from pinc.routing import Customer
from tests.crm.conftest import crm_config
from tests.crm.fakesalesplatform import FakeSalesPlatform
from tests.crm.fakevtiger import FakeVtiger


@pytest.mark.parametrize("number", ["79161234567", "+7 (916) 123-45-67", "89161234567",
                                    "9161234567", "<79161234567>"])
async def test_contact_and_owner_from_any_number_form(vtiger: FakeVtiger, tmp_path: Path,
                                                      number: str) -> None:
    ws = VtigerWebservice(crm_config(vtiger.port, tmp_path))
    with trio.fail_after(10):
        found = await ws.find_customer(number)
    await ws.aclose()
    assert found == Customer(name="Anna Customer", module="Contacts", record_id="12x2",
                             user_name="manager1", user_extension="101")


async def test_formatted_lead_account_group_and_miss(vtiger: FakeVtiger, tmp_path: Path) -> None:
    ws = VtigerWebservice(crm_config(vtiger.port, tmp_path))
    with trio.fail_after(10):
        vera = await ws.find_customer("79035550011")  # stored as "+7 (903) 555-00-11"
        lead = await ws.find_customer("+79035550102")
        account = await ws.find_customer("74957654321")  # stored as "8 (495) 765-43-21"
        group = await ws.find_customer("79990001122")
        nobody = await ws.find_customer("74950000000")
    await ws.aclose()
    assert vera is not None and (vera.name, vera.user_extension) == ("Vera Caller", "102")
    assert lead is not None and (lead.module, lead.user_name) == ("Leads", "manager2")
    assert account is not None and (account.name, account.user_extension) == (
        "Roga i Kopyta", "103")
    assert group is not None and group.user_extension is None  # owned by a group
    assert nobody is None


async def test_cache_negative_cache_and_session_renewal(vtiger: FakeVtiger,
                                                        tmp_path: Path) -> None:
    ws = VtigerWebservice(crm_config(vtiger.port, tmp_path))
    with trio.fail_after(10):
        await ws.find_customer("79161234567")
        await ws.find_customer("74950000000")
        n = ws.requests
        assert await ws.find_customer("+79161234567") is not None  # same number, cached
        assert await ws.find_customer("74950000000") is None  # a miss is cached too
        assert ws.requests == n
        logins = sum(op == "login" for op, _ in vtiger.ws_log)
        vtiger.expire_sessions()
        ws.forget()
        assert await ws.find_customer("79035550102") is not None
    await ws.aclose()
    assert sum(op == "login" for op, _ in vtiger.ws_log) == logins + 1


async def test_errors_are_clear(vtiger: FakeVtiger, tmp_path: Path) -> None:
    config = crm_config(vtiger.port, tmp_path)
    bad_key = VtigerWebservice(replace(config, crm={"access_key": "wrong"}))
    ordinary = VtigerWebservice(replace(config, crm={"username": "manager1",
                                                     "access_key": "m1key"}))
    with trio.fail_after(10):
        with pytest.raises(CrmLookupError, match="INVALID_USER_CREDENTIALS"):
            await bad_key.find_customer("79161234567")
        # an ordinary user may read Contacts but not Users: the customer, no manager
        found = await ordinary.find_customer("79161234567")
        assert found is not None and found.user_extension is None
        vtiger.mode = "html"
        with pytest.raises(CrmLookupError, match="HTML"):
            await VtigerWebservice(config).find_customer("79161234567")
    for ws in (bad_key, ordinary):
        await ws.aclose()


async def test_unreachable_crm(tmp_path: Path) -> None:
    with trio.socket.socket() as s:  # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = VtigerWebservice(crm_config(port, tmp_path, timeout=1.0))
    with trio.fail_after(10), pytest.raises(CrmLookupError, match="cannot reach"):
        await ws.find_customer("79161234567")
    await ws.aclose()


async def test_salesplatform_spagi(nursery: trio.Nursery, tmp_path: Path) -> None:
    vtiger = FakeSalesPlatform()
    await nursery.start(vtiger.run)
    config = crm_config(vtiger.port, tmp_path, profile="salesplatform", username="",
                        access_key="")
    ws = VtigerWebservice(config)
    with trio.fail_after(10):
        found = await ws.find_customer("89161234567")  # SP matches the last 10 digits
        none = await ws.find_customer("74950000000")
        vtiger.secret = "changed"
        ws.forget()
        with pytest.raises(CrmLookupError, match="SPAgi"):
            await ws.find_customer("89161234567")
    await ws.aclose()
    assert found is not None and found.user_extension == "101"
    assert none is None
    assert [op for op, _ in vtiger.ws_log] == []  # no webservice involved


async def test_salesplatform_routes_through_spagi_with_credentials(nursery: trio.Nursery,
                                                                  tmp_path: Path) -> None:
    """Issue #15: with the admin's webservice key set, routing went to a `select *` that
    SalesPlatform answers with HTTP 500. It asks SPAgi.php, as SalesPlatform's connector."""
    vtiger = FakeSalesPlatform()
    await nursery.start(vtiger.run)
    config = crm_config(vtiger.port, tmp_path, profile="salesplatform")  # with a key
    ws = VtigerWebservice(config)
    with trio.fail_after(10):
        found = await ws.find_customer("+7 (916) 123-45-67")
        named = await ws.describe("79161234567")  # names: the webservice, columns listed
    await ws.aclose()
    assert found is not None and found.user_extension == "101"
    assert named is not None and (named.name, named.module) == ("Anna Customer", "Contacts")
    queries = [p["query"] for op, p in vtiger.ws_log if op == "query"]
    assert queries and all("*" not in q for q in queries)
