"""The whole of pinc (``serve()``) comes back after a downtime: the calls Asterisk wrote to
its Master.csv meanwhile reach the journal and the (fake) vtiger once, in order; a call
pinc was killed during ends with what the CDR says, under its own id; the calls the journal
already holds are not repeated, and a second login recovers nothing twice."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import trio

from pinc.calls.model import CallChange, iso
from pinc.cdr.rows import LAYOUTS, epoch, zone
from pinc.feed import FeedHub
from pinc.journal.store import Journal
from pinc.sim.amiserver import AmiSimServer
from tests.crm.fakevtiger import FakeVtiger
from tests.reliability.stack import (
    AMI_SECRET,
    CRM_SECRET,
    FIXTURES,
    stack_config,
    start_stack,
    wait_for,
)

SCENARIOS = {  # name -> what happened (the scenario's own description, fixtures/README.md)
    "pjsip_inbound_answered": ("inbound", "completed", "101"),
    "pjsip_inbound_missed": ("inbound", "missed", None),
    "pjsip_outbound_busy": ("outbound", "busy", None),
    "pjsip_internal_call": ("internal", "completed", "102"),
    "pjsip_followme": ("inbound", "completed", "103"),
    "pjsip_blind_transfer": ("inbound", "completed", "103"),
}
UTC = zone("UTC")


def shifted(lines: list[str], delta: float) -> list[str]:
    """Master.csv lines with every time moved by ``delta`` seconds (a recent downtime)."""
    out = []
    for line in lines:
        values = next(csv.reader(io.StringIO(line)))
        names = LAYOUTS[len(values)]
        for i, name in enumerate(names):
            if name in ("start", "answer", "end") and values[i]:
                moved = (epoch(values[i], UTC) or 0.0) + delta
                values[i] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moved))
        buf = io.StringIO()
        csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="").writerow(values)
        out.append(buf.getvalue())
    return out


def master_csv(path: Path) -> dict[str, str]:
    """Write the scenarios' rows as if made in the last minutes; name -> linkedid."""
    lines: list[str] = []
    linkedids = {}
    now = time.time()
    for n, name in enumerate(SCENARIOS):
        rows = (FIXTURES / "asterisk-pjsip" / f"{name}.cdr.csv").read_text().splitlines()
        first = min(epoch(next(csv.reader([r]))[9], UTC) or 0.0 for r in rows)
        lines += shifted(rows, now - 900 + 60 * n - first)
        linkedids[name] = next(csv.reader([rows[0]]))[19]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return linkedids


def journal_calls(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT data FROM calls ORDER BY id")]
    finally:
        conn.close()


async def before_the_downtime(config: Any, linkedids: dict[str, str]) -> dict[str, str]:
    """What pinc had journaled when it stopped: the internal call ended, and the inbound
    call still ringing (pinc was killed during it)."""
    journal = Journal(config, FeedHub())
    started = time.time() - 1300
    held = {
        "pjsip_internal_call": {"id": "heldinternal", "status": "completed",
                                "direction": "internal", "from": "101", "to": "102",
                                "answered_by": "102", "talk": 5},
        "pjsip_inbound_answered": {"id": "heldinbound", "status": "ringing",
                                   "direction": "inbound", "from": "79035550011",
                                   "to": "74951230000", "answered_by": None},
    }
    changes = []
    for name, fields in held.items():
        call = {"linkedid": linkedids[name], "linkedids": [linkedids[name]],
                "started_at": iso(started), "legs": [], "transfers": [], **fields}
        kind = "call.ended" if fields["status"] == "completed" else "call.started"
        changes.append(CallChange(kind, str(fields["id"]), iso(started) or "", call))
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await journal.submit(changes)
        while journal.pending():  # noqa: ASYNC110 (the journal's own batch loop)
            await trio.sleep(0.01)
        # pinc stopped 20 minutes ago: its last change was recorded then
        await journal.write(lambda c: c.execute("UPDATE events SET recorded_at = ?",
                                                (time.time() - 1200,)))
        nursery.cancel_scope.cancel()
    return {name: str(f["id"]) for name, f in held.items()}


async def test_calls_made_while_pinc_was_down(nursery: trio.Nursery, tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    linkedids = master_csv(master)
    vtiger = FakeVtiger(secret=CRM_SECRET)
    vt_port = await nursery.start(vtiger.run)
    sim = AmiSimServer([], secret=AMI_SECRET)
    ami_port = await nursery.start(sim.run)
    config = stack_config(tmp_path, ami_port, vtiger_port=vt_port,
                          cdr={"source": "csv", "csv_path": str(master), "timezone": "UTC"})
    held = await before_the_downtime(config, linkedids)
    db = config.journal_path()
    with trio.fail_after(60):
        handle = await start_stack(nursery, config)
        recovery = handle.services.extras["recovery"]
        await wait_for(lambda: recovery.runs >= 1)
        await wait_for(lambda: not handle.ingest.live_calls())
        await wait_for(lambda: handle.journal.pending() == 0)
        customer = [n for n, (d, _, _) in SCENARIOS.items() if d != "internal"]
        crm = handle.services.crm

        def delivered() -> bool:
            status = crm.status()
            return (status["backlog"] == 0 and status["in_flight"] == 0
                    and len({r["sourceuuid"] for r in vtiger.rows}) == len(customer))

        await wait_for(delivered, 0.05)
        calls = journal_calls(db)
        # a second login: nothing is recovered twice
        await sim.drop_clients()
        await wait_for(lambda: recovery.runs >= 2)
        await wait_for(lambda: handle.journal.pending() == 0)
    by_linkedid = {c["linkedid"]: c for c in calls}
    assert len(calls) == len(SCENARIOS) == len(by_linkedid)
    for name, (direction, status, answered_by) in SCENARIOS.items():
        call = by_linkedid[linkedids[name]]
        assert (call["direction"], call["status"], call["answered_by"]) == (
            direction, status, answered_by), name
    assert by_linkedid[linkedids["pjsip_internal_call"]]["id"] == held["pjsip_internal_call"]
    assert "source" not in by_linkedid[linkedids["pjsip_internal_call"]]
    # the call pinc was killed during: same id, ended with what the CDR says
    killed = by_linkedid[linkedids["pjsip_inbound_answered"]]
    assert killed["id"] == held["pjsip_inbound_answered"] and killed["source"] == "cdr"
    assert killed["talk"] >= 3 and killed["recording"]
    recovered = [c for c in calls if c.get("source") == "cdr"]
    assert len(recovered) == len(SCENARIOS) - 1
    assert journal_calls(db) == calls  # the second login added nothing
    assert recovery.recovered == len(SCENARIOS) - 1
    # the CRM got each customer call once, in vtiger's own words
    for name in customer:
        call = by_linkedid[linkedids[name]]
        rows = vtiger.rows_of(call["id"])
        assert len(rows) == 1, (name, rows)
        want = {"completed": "completed", "missed": "no-answer", "busy": "busy"}[call["status"]]
        assert rows[0]["callstatus"] == want, (name, rows[0])
    assert vtiger.rows_of(held["pjsip_internal_call"]) == []
