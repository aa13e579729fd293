"""The CRM directory: users and extensions read through the webservice, kept, refreshed."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pinc import metrics
from pinc.crm.directory import CrmDirectory
from pinc.crm.webservice import VtigerWebservice
from pinc.services import CrmUser
from tests.crm.conftest import crm_config, wait_until
from tests.crm.fakesalesplatform import FakeSalesPlatform
from tests.crm.fakevtiger import FakeVtiger, User, lab_users, real_lab_users


async def start(nursery: trio.Nursery, fake: FakeVtiger, tmp_path: Path,
                **crm: object) -> CrmDirectory:
    await nursery.start(fake.run)
    config = crm_config(fake.port, tmp_path, **crm)
    directory = CrmDirectory(config, VtigerWebservice(config))
    await nursery.start(directory.run)
    return directory


@pytest.mark.parametrize("fake_class", [FakeVtiger, FakeSalesPlatform])
async def test_reads_users_with_named_columns(nursery: trio.Nursery, tmp_path: Path,
                                              fake_class: type[FakeVtiger]) -> None:
    fake = fake_class(users=real_lab_users())
    directory = await start(nursery, fake, tmp_path,
                            profile="salesplatform" if fake.has_spagi else "vtiger")
    assert directory.known()  # read before run() reported ready
    assert [(u.extension, u.user_name) for u in directory.users()] == [
        ("101", "manager1"), ("102", "manager2")]
    assert directory.user_of("101") == CrmUser("19x5", "manager1", "Ivan Manager1", "101")
    assert directory.user_of("103") is None
    queries = [p.get("query", "") for op, p in fake.ws_log if op == "query"]
    assert queries and all("*" not in q for q in queries)  # SalesPlatform: select * is a 500
    assert directory.status()["state"] == "ok"
    assert metrics.CRM_DIRECTORY_USERS._value.get() == 2


async def test_pages_through_many_users(nursery: trio.Nursery, tmp_path: Path) -> None:
    users = [User(1, "admin", "", "A", "B", True, "adminkey123")]
    users += [User(100 + i, f"u{i}", f"{1000 + i}") for i in range(250)]
    directory = await start(nursery, FakeVtiger(users=users), tmp_path)
    assert len(directory.users()) == 250
    assert directory.user_of("1249") is not None


async def test_inactive_and_duplicate_extensions(nursery: trio.Nursery, tmp_path: Path) -> None:
    users = real_lab_users()
    users.append(User(8, "gone", "103", status="Inactive"))
    users.append(User(9, "twin", "102"))  # the first user with an extension keeps it
    directory = await start(nursery, FakeVtiger(users=users), tmp_path)
    assert directory.user_of("103") is None
    user = directory.user_of("102")
    assert user is not None and user.user_name == "manager2"
    assert directory.find("twin") is not None and directory.find("gone") is not None


async def test_failure_keeps_the_last_list_and_refresh_on_demand(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeVtiger(users=real_lab_users())
    directory = await start(nursery, fake, tmp_path, directory_refresh=3600.0)
    version = directory.version
    fake.mode = "503"
    directory.refresh_soon()
    with trio.fail_after(10):
        await wait_until(lambda: directory.failures == 1)
    assert directory.known() and directory.user_of("101") is not None
    assert directory.status()["state"] == "stale"
    assert "HTTP 503" in (directory.status()["last_error"] or "")
    fake.mode = "ok"
    fake.users = lab_users()  # an admin gave 103 a CRM user
    directory.refresh_soon()
    with trio.fail_after(10):
        await wait_until(lambda: directory.user_of("103") is not None)
    assert directory.version == version + 1
    assert directory.status() | {"age": None} == {
        "state": "ok", "users": 3, "age": None, "last_error": None}


async def test_unknown_until_the_crm_answers(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeVtiger(users=real_lab_users())
    fake.mode = "html"
    directory = await start(nursery, fake, tmp_path, directory_refresh=3600.0)
    assert not directory.known()
    assert directory.status()["state"] == "error"
    assert directory.user_of("101") is None


async def test_without_credentials_it_is_off(nursery: trio.Nursery, tmp_path: Path) -> None:
    directory = await start(nursery, FakeVtiger(), tmp_path, username="", access_key="")
    assert not directory.known()
    assert directory.status()["state"] == "off"


async def test_a_non_admin_key_gets_no_users(nursery: trio.Nursery, tmp_path: Path) -> None:
    directory = await start(nursery, FakeVtiger(), tmp_path, username="manager1",
                            access_key="m1key")
    assert not directory.known()
    assert "ACCESS_DENIED" in (directory.status()["last_error"] or "")
