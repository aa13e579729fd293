"""Every fixture transcript -> tracker -> real journal + outbox hook -> delivery -> fake CRM.

Both profiles, against fakes seeded as the real lab CRMs are (manager1 = 101,
manager2 = 102; phone 103 has no CRM user) and holding the customers of the fixtures:
the caller 79035550011 is Vera Caller, owned by manager2; Anna (79161234567) by manager1.
For each scenario the rows the fake CRM ends up holding are compared with the rules of
DESIGN.md "CRM profiles", restated here independently of pinc's code:

- one row per customer call (stock vtiger) / per CRM user of the call (SalesPlatform);
- the CRM files a call outbound only under its user: calls of 103 are held back;
- every row has an owner who is a CRM user: the employee who talked, else (missed, or
  talked to by 103) the responsible manager, else crm.default_user (manager1);
- and the calls themselves are what really happened in the recording.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from pinc.calls.model import CallChange
from pinc.calls.replay import messages_of
from pinc.calls.tracker import Tracker
from pinc.config import Config, replace
from pinc.crm.callbacks import crm_time
from pinc.crm.vtiger import recording_link
from pinc.feed import FeedHub
from pinc.journal.store import Journal
from tests.crm.conftest import CrmParts, crm_config, wait_until
from tests.crm.fakesalesplatform import FakeSalesPlatform
from tests.crm.fakevtiger import FakeVtiger, real_lab_users
from tests.crm.minijournal import rows
from tests.crm.scenarios import crm_form

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# the kit's offices, then the shapes recorded on the project's own lab office (#13)
TRANSCRIPTS = sorted(FIXTURES.glob("asterisk-*/*.ami")) + sorted(FIXTURES.glob("lab/*.ami"))
USERS = {"101": 5, "102": 6}  # the real lab's CRM users; 103 has none
CUSTOMERS = {"79161234567": (2, "Contacts", "101"), "79035550011": (4, "Contacts", "102")}
DEFAULT_USER = "101"  # crm.default_user = manager1
VTIGER_STATUS = {"completed": "completed", "busy": "busy", "failed": "busy"}

# what really happened in the asterisk-local scenarios (tests/fixtures/README.md);
# the asterisk-pjsip ones carry an expected.json
LOCAL = {
    "agi_responsible": ("inbound", "completed", "102"),
    "attended_transfer": ("inbound", "completed", "102"),
    "blind_transfer": ("inbound", "completed", "102"),
    "followme": ("inbound", "completed", "103"),
    "inbound_abandoned_in_queue": ("inbound", "missed", None),
    "inbound_answered": ("inbound", "completed", "101"),
    "inbound_busy": ("inbound", "missed", None),
    "inbound_missed": ("inbound", "missed", None),
    "inbound_no_answer": ("inbound", "missed", None),
    "outbound_answered": ("outbound", "completed", "101"),
    "outbound_busy": ("outbound", "busy", None),
    "outbound_click_to_call": ("outbound", "completed", "101"),
    "outbound_no_answer": ("outbound", "no-answer", None),
    "redirect_transfer": ("inbound", "completed", "102"),
}


def expected_facts(path: Path) -> list[tuple[str, str, str | None]] | None:
    exp = path.with_suffix(".expected.json")
    if exp.exists():
        calls = json.loads(exp.read_text())["calls"]
        return [(c["direction"], c["status"], c["answered_by"]) for c in calls]
    if path.stem in LOCAL:
        return [LOCAL[path.stem]]
    return None  # concurrent_load: checked by counts


def tracked(config: Config, path: Path) -> list[list[CallChange]]:
    """The tracker's changes per AMI message, as the ingest would submit them (for a lab
    fixture with the recordings folder of the office it was recorded on)."""
    truth = path.with_name(path.name.replace(".ami", ".truth.json"))
    if truth.exists():
        recorded_in = json.loads(truth.read_text())["recordings_dir"]
        config = replace(config, pbx={"recordings_dir": recorded_in})
    tracker = Tracker(config.pbx)
    data = path.read_bytes()
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    out = [tracker.feed(m) for m in messages_of(chunks)]
    out.append(tracker.flush())
    return [c for c in out if c]


def replay_config(port: int, tmp_path: Path, profile: str) -> Config:
    config = crm_config(port, tmp_path, profile=profile, default_user="manager1",
                        timezone="Europe/Moscow")
    return replace(config, pbx={"extension_pattern": r"^\d{3}$",
                                "recordings_dir": config.pbx.recordings_dir})


async def replay_into(config: Config, path: Path) -> list[dict[str, Any]]:
    """Replay one transcript; returns the final snapshot of every call that was not merged."""
    batches = tracked(config, path)
    finals: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for c in batch:
            if c.kind == "call.ended":
                if c.data.get("merged_into"):
                    finals.pop(c.call_id, None)
                else:
                    finals[c.call_id] = c.call
                rec = c.call.get("recording")
                if rec:  # the fixture recordings are not shipped: put real files in place
                    f = Path(config.pbx.recordings_dir) / rec
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(b"RIFF" + b"\0" * 4000)
    feed = FeedHub()
    journal = Journal(config, feed)
    crm = CrmParts(config, journal, feed)
    db = Path(config.journal.path)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await crm.start(nursery)
            for batch in batches:
                await journal.submit(batch)
            await wait_until(lambda: journal.pending() == 0)
            await wait_until(lambda: not rows(db, "SELECT id FROM outbox WHERE state = 'pending'"))
            nursery.cancel_scope.cancel()
    return list(finals.values())


def owner_of(number: str) -> str:
    """The responsible manager if they are a CRM user, else crm.default_user."""
    found = CUSTOMERS.get(number)
    return found[2] if found and found[2] in USERS else DEFAULT_USER


def vtiger_row_for(config: Config, call: dict[str, Any],
                   users: dict[str, int] | None = None,
                   owner: str | None = None) -> dict[str, Any] | None:
    """The row stock vtiger keeps for a call pinc reported (reference/vtiger.md §4-§6),
    None when the call must be held back (an extension with no CRM user placed it)."""
    users = USERS if users is None else users
    inbound = call["direction"] == "inbound"
    number = crm_form(call["from"] if inbound else call["to"])
    status = VTIGER_STATUS.get(call["status"], "no-answer")
    completed = status == "completed"
    if inbound:
        who = call["answered_by"] if completed and call["answered_by"] in users else (
            owner or owner_of(number))
    else:
        who = call["from"]
        if who not in users:
            return None
    customer, ctype = CUSTOMERS.get(number, (None, None, None))[:2]
    return {
        "direction": call["direction"],
        "callstatus": status,
        "user": users[who],
        "smownerid": users[who],
        "customernumber": number,
        "customer": customer,
        "customertype": ctype,
        "starttime": crm_time(call["started_at"], config.crm.timezone),
        "endtime": crm_time(call["ended_at"], config.crm.timezone),
        "totalduration": call["duration"],
        "billduration": call["talk"],
        "recordingurl": (
            recording_link(config, call["id"])
            if completed and call["recording"] else None
        ),
    }


def check_facts(path: Path, calls: list[dict[str, Any]]) -> None:
    """The calls are what really happened (the tracker's side of the bargain; for the lab
    fixtures tests/lab_fixtures/test_replay_lab.py compares them field by field)."""
    facts = expected_facts(path)
    got = [(c["direction"], c["status"], c["answered_by"]) for c in calls]
    if facts is not None:
        assert got == facts, f"tracker reports {got}, the recording shows {facts}"


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
async def test_replay_leaves_vtiger_rows(nursery: trio.Nursery, tmp_path: Path,
                                         path: Path) -> None:
    vtiger = FakeVtiger(users=real_lab_users())
    await nursery.start(vtiger.run)
    config = replay_config(vtiger.port, tmp_path, "vtiger")
    calls = await replay_into(config, path)
    assert calls, "the tracker reported no call"
    customer_calls = [c for c in calls if c["direction"] != "internal"]
    wanted = {c["id"]: vtiger_row_for(config, c) for c in customer_calls}
    held = {cid for cid, want in wanted.items() if want is None}
    assert len(vtiger.rows) == len(customer_calls) - len(held)  # one row per filed call
    for call_id, want in wanted.items():
        row = vtiger.row(call_id)
        if want is None:
            assert row is None  # never misfiled as an inbound call from "103"
            continue
        assert row is not None, call_id
        assert {k: row[k] for k in want} == want
    assert all(r["smownerid"] in USERS.values() for r in vtiger.rows)  # nothing left to admin
    held_rows = rows(Path(config.journal.path),
                     "SELECT DISTINCT call_id FROM outbox WHERE state = 'held'")
    assert {r["call_id"] for r in held_rows} == held
    if path.stem == "concurrent_load":
        assert len(calls) == 50
        assert held and all(c["from"] == "103" for c in calls if c["id"] in held)
        return
    check_facts(path, calls)


def salesplatform_rows_for(call: dict[str, Any]) -> dict[int, str]:
    """user id -> final status of each row SalesPlatform must hold for the call."""
    if call["direction"] == "outbound":
        if call["from"] not in USERS:
            return {}
        return {USERS[call["from"]]: VTIGER_STATUS.get(call["status"], "no-answer")}
    out: dict[int, str] = {}
    completed = call["status"] == "completed"
    for leg in call["legs"]:
        ext = leg["ext"]
        if ext not in USERS:
            continue
        if leg["result"] == "answered":
            out[USERS[ext]] = "completed"
        elif leg["result"] == "busy":
            out[USERS[ext]] = "busy"
        elif leg["result"] == "cancelled" and completed:  # someone else took it (or picked up)
            out.setdefault(USERS[ext], "Answered elsewhere")
        else:
            out.setdefault(USERS[ext], "no-answer")
    if completed and call["answered_by"] in USERS:
        out[USERS[call["answered_by"]]] = "completed"
    else:  # missed, or talked to by someone with no CRM user: the owner's row
        out[USERS[owner_of(call["from"])]] = "completed" if completed else "no-answer"
    return out


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
async def test_replay_leaves_salesplatform_rows(nursery: trio.Nursery, tmp_path: Path,
                                                path: Path) -> None:
    crm = FakeSalesPlatform(users=real_lab_users())
    await nursery.start(crm.run)
    config = replay_config(crm.port, tmp_path, "salesplatform")
    calls = await replay_into(config, path)
    for call in calls:
        if call["direction"] == "internal":
            assert crm.rows_of(call["id"]) == []
            continue
        got = {r["user"]: r for r in crm.rows_of(call["id"])}
        want = salesplatform_rows_for(call)
        assert {u: r["callstatus"] for u, r in got.items()} == want, call["id"]
        inbound = call["direction"] == "inbound"
        talkers = [r for r in got.values() if r["billduration"] > 0]
        for row in got.values():
            assert row["smownerid"] == row["user"]
            assert row["direction"] == call["direction"]
            assert row["customernumber"] == crm_form(call["from"] if inbound else call["to"])
            assert row["starttime"] == crm_time(call["started_at"], config.crm.timezone)
            assert row["totalduration"] == call["duration"]
            has_link = row["recordingurl"] == recording_link(config, call["id"])
            assert has_link == (row in talkers and bool(call["recording"])), row
            if call["status"] != "completed":
                assert row["billduration"] == 0
        if call["status"] == "completed" and got:
            # each person's own talk: together never more than the call's, and the one
            # who talked last (or the owner in their place) talked
            assert talkers and sum(r["billduration"] for r in talkers) <= call["talk"]
            last = USERS.get(call["answered_by"]) or USERS[owner_of(call["from"])]
            assert got[last]["billduration"] > 0
    # 103 is no CRM user: no per-user callback ever named it (it would hit every row)
    named = {str(p.get(k)) for p in crm.accepted for k in ("callerNumber", "callerIdNum")}
    assert "103" not in named
    if path.stem == "concurrent_load":
        assert len(calls) == 50
        return
    check_facts(path, calls)
