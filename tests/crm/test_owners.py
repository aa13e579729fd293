"""Who a call belongs to: fallback user or held back, responsible manager or default user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from pinc import metrics
from pinc.calls.model import CallChange
from pinc.config import Config
from tests.crm.conftest import CrmParts, crm_config, wait_until
from tests.crm.fakesalesplatform import FakeSalesPlatform
from tests.crm.fakevtiger import FakeVtiger, lab_users, real_lab_users
from tests.crm.minijournal import MiniFeed, MiniJournal, rows
from tests.crm.scenarios import call_snapshot, change

ANNA = "79161234567"  # Contact owned by manager1 (101)
NOBODY = "79990000000"  # no CRM record


def missed(call_id: str, number: str, legs: list[dict[str, Any]] | None = None) -> CallChange:
    call = call_snapshot(id=call_id, status="missed", duration=6, ended_at="2026-11-24T00:42:12Z",
                         legs=legs or [], **{"from": number})
    return change("call.ended", call, at="2026-11-24T00:42:12Z")


def outbound_from(call_id: str, ext: str) -> CallChange:
    call = call_snapshot(id=call_id, direction="outbound", status="completed", talk=4,
                         duration=7, answered_by=ext, ended_at="2026-11-24T00:42:13Z",
                         legs=[{"ext": ext, "result": "answered"}],
                         **{"from": ext, "to": ANNA})
    return change("call.ended", call, at="2026-11-24T00:42:13Z")


def answered_by(call_id: str, ext: str, number: str) -> CallChange:
    call = call_snapshot(id=call_id, status="completed", talk=5, duration=8, answered_by=ext,
                         answered_at="2026-11-24T00:42:08Z", ended_at="2026-11-24T00:42:14Z",
                         legs=[{"ext": ext, "result": "answered",
                                "answered_at": "2026-11-24T00:42:08Z"}],
                         **{"from": number})
    return change("call.ended", call, at="2026-11-24T00:42:14Z")


class Stack:
    def __init__(self, config: Config, tmp_path: Path) -> None:
        self.journal = MiniJournal(tmp_path / "pinc.db", MiniFeed())
        self.parts = CrmParts(config, self.journal, self.journal.feed)

    def states(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in rows(self.journal.path):
            out.setdefault(r["call_id"], set()).add(r["state"])
        return out

    def settled(self) -> bool:
        return not rows(self.journal.path, "SELECT id FROM outbox WHERE state = 'pending'")


async def run(nursery: trio.Nursery, fake: FakeVtiger, tmp_path: Path, changes: list[CallChange],
              **crm: Any) -> Stack:
    await nursery.start(fake.run)
    profile = "salesplatform" if fake.has_spagi else "vtiger"
    stack = Stack(crm_config(fake.port, tmp_path, profile=profile, **crm), tmp_path)
    with trio.fail_after(10):
        await stack.parts.start(nursery)
        await stack.journal.submit(changes)
        await wait_until(stack.settled)
    return stack


async def test_missed_calls_belong_to_the_responsible_manager(nursery: trio.Nursery,
                                                               tmp_path: Path) -> None:
    vtiger = FakeVtiger(users=real_lab_users())
    before = metrics.CRM_OWNERS.labels("responsible")._value.get()
    await run(nursery, vtiger, tmp_path, [missed("m1", ANNA), missed("m2", NOBODY)],
              default_user="manager2")
    anna, nobody = vtiger.row("m1"), vtiger.row("m2")
    assert anna is not None and nobody is not None
    assert (anna["callstatus"], anna["user"], anna["smownerid"]) == ("no-answer", 5, 5)
    assert (nobody["callstatus"], nobody["user"], nobody["smownerid"]) == ("no-answer", 6, 6)
    assert metrics.CRM_OWNERS.labels("responsible")._value.get() == before + 1


async def test_no_owner_keeps_the_crm_default(nursery: trio.Nursery, tmp_path: Path) -> None:
    vtiger = FakeVtiger(users=real_lab_users())
    stack = await run(nursery, vtiger, tmp_path, [missed("m3", NOBODY)])
    row = vtiger.row("m3")
    assert row is not None and (row["callstatus"], row["smownerid"]) == ("no-answer", 1)
    (dropped,) = rows(stack.journal.path, "SELECT * FROM outbox WHERE state = 'dropped'")
    assert dropped["kind"] == "DialAnswer" and "no owner" in dropped["last_error"]


async def test_answered_by_an_extension_without_a_user(nursery: trio.Nursery,
                                                       tmp_path: Path) -> None:
    vtiger = FakeVtiger(users=real_lab_users())
    stack = await run(nursery, vtiger, tmp_path, [answered_by("a1", "103", ANNA)])
    row = vtiger.row("a1")
    assert row is not None
    assert (row["callstatus"], row["user"], row["smownerid"], row["billduration"]) == (
        "completed", 5, 5, 5)
    # the owner is kept in the rows (a restart would not ask again)
    payloads = [json.loads(r["payload"]) for r in rows(stack.journal.path)]
    assert [p["_owner_ext"] for p in payloads if "_owner" in p] == ["101"]


async def test_calls_of_an_unmapped_extension_are_held_then_released(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    vtiger = FakeVtiger(users=real_lab_users())
    stack = await run(nursery, vtiger, tmp_path, [outbound_from("o1", "103"),
                                                  outbound_from("o2", "101")],
                      directory_refresh=3600.0)
    assert stack.states() == {"o1": {"held"}, "o2": {"done"}}
    assert vtiger.row("o1") is None  # never "an inbound call from customer 103"
    with trio.fail_after(10):
        await wait_until(lambda: stack.parts.worker.status()["held"] == 1)
    assert metrics.OUTBOX_HELD._value.get() == 1
    (first,) = rows(stack.journal.path, "SELECT * FROM outbox WHERE state = 'held' LIMIT 1")
    assert "103" in first["last_error"]
    vtiger.users = lab_users()  # the admin gives 103 a CRM user (manager3)
    stack.parts.directory.refresh_soon()  # the directory wakes the worker itself
    with trio.fail_after(10):
        await wait_until(lambda: stack.states()["o1"] == {"done"})
    row = vtiger.row("o1")
    assert row is not None
    assert (row["direction"], row["user"], row["smownerid"], row["customernumber"]) == (
        "outbound", 7, 7, ANNA)
    with trio.fail_after(10):
        await wait_until(lambda: stack.parts.worker.status()["held"] == 0)


async def test_fallback_user_files_them(nursery: trio.Nursery, tmp_path: Path) -> None:
    vtiger = FakeVtiger(users=real_lab_users())
    await run(nursery, vtiger, tmp_path, [outbound_from("o3", "103")], fallback_user="manager2")
    row = vtiger.row("o3")
    assert row is not None
    assert (row["direction"], row["user"], row["smownerid"], row["customer"]) == (
        "outbound", 6, 6, 2)


async def test_salesplatform_missed_before_any_phone_rang(nursery: trio.Nursery,
                                                          tmp_path: Path) -> None:
    crm = FakeSalesPlatform(users=real_lab_users())
    await run(nursery, crm, tmp_path, [missed("s1", ANNA), missed("s2", NOBODY)],
              default_user="102")
    (anna,) = crm.rows_of("s1")
    (nobody,) = crm.rows_of("s2")
    assert (anna["direction"], anna["callstatus"], anna["user"], anna["smownerid"]) == (
        "inbound", "no-answer", 5, 5)
    assert (nobody["callstatus"], nobody["user"]) == ("no-answer", 6)
    assert anna["customer"] == 2 and anna["endtime"] == "2026-11-24 00:42:12"
    # nothing user-less was tried: StartApp would fail there
    assert not [p for p in crm.accepted if p.get("callstatus") == "StartApp"]


async def test_salesplatform_never_names_an_unmapped_extension(nursery: trio.Nursery,
                                                               tmp_path: Path) -> None:
    crm = FakeSalesPlatform(users=real_lab_users())
    legs = [{"ext": "101", "result": "answered", "answered_at": "2026-11-24T00:42:08Z"},
            {"ext": "103", "result": "answered", "answered_at": "2026-11-24T00:42:10Z"}]
    call = call_snapshot(id="t1", status="completed", talk=6, duration=8, answered_by="103",
                         answered_at="2026-11-24T00:42:08Z", ended_at="2026-11-24T00:42:14Z",
                         legs=legs, transfers=[{"kind": "blind", "from": "101", "to": "103",
                                                "at": "2026-11-24T00:42:09Z"}],
                         recording="t1.wav", **{"from": NOBODY})
    config_dir = tmp_path / "monitor"
    config_dir.mkdir()
    (config_dir / "t1.wav").write_bytes(b"RIFF" + b"\0" * 100)
    await run(nursery, crm, tmp_path, [change("call.ended", call)], default_user="manager2")
    got = {r["user"]: r for r in crm.rows_of("t1")}
    assert set(got) == {5, 6}
    assert (got[5]["callstatus"], got[5]["billduration"]) == ("completed", 1)  # own talk
    assert (got[6]["callstatus"], got[6]["billduration"]) == ("completed", 5)  # 103's part
    assert got[5]["recordingurl"] and got[6]["recordingurl"]
    named = {str(p.get(k)) for p in crm.accepted for k in ("callerNumber", "callerIdNum")}
    assert "103" not in named
