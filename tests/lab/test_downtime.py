"""Calls made while pinc was down, live in the lab (issue #16): the real Asterisk (PJSIP
office, sipp phones and trunk) and the real vtiger 8.2.

1. pinc runs and logs in, then stops (SIGTERM);
2. the kit's driver makes 10 calls of mixed kinds;
3. pinc starts again: all 10 reach the journal (from Asterisk's own Master.csv) and vtiger,
   with the direction, status and owner the driver's ground truth says, none twice.
Then again with pinc killed (SIGKILL) while the first of 10 more calls is up.

Ground truth is the driver's ``NAME.expected.json`` (written from how it drove each call);
each call is found in the journal by the linkedid of the scenario's own CDR rows.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.lab.lab import Crm, Office, PincRun, office_config

DRIVER = Path(__file__).resolve().parents[3] / "shared" / "lab" / "asterisk" / "drivers"
SCENARIOS = [
    "pjsip_inbound_answered", "pjsip_outbound_busy", "pjsip_inbound_missed",
    "pjsip_internal_call", "pjsip_outbound_answered", "pjsip_inbound_abandoned_in_queue",
    "pjsip_blind_transfer", "pjsip_inbound_busy", "pjsip_followme", "pjsip_outbound_no_answer",
]  # fmt: skip
VTIGER_STATUS = {"completed": "completed", "missed": "no-answer", "busy": "busy",
                 "no-answer": "no-answer", "failed": "failed"}
FIGURES: dict[str, Any] = {}


def driver_path() -> Path:
    env = os.environ.get("PINC_LAB_KIT")
    return Path(env) / "asterisk" / "drivers" if env else DRIVER


def drive(office: Office, out: Path) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "driver.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(driver_path() / "scenarios_pjsip.py"), "--office", office.name,
         "--out", str(out), "--pause", "1", *SCENARIOS],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


def drove_as_told(out: Path, name: str) -> bool:
    """The driver's own checks passed, or failed only on sipp's overload warnings (a busy
    2-core host: sipp's timer ran late, the call itself went as driven)."""
    summary = json.loads((out / f"{name}.summary.json").read_text())
    failed = [c for c in summary["checks"] if not c["ok"]]
    return not summary.get("error") and all(
        c["check"] == "no unexpected sipp messages" and "Overload warning" in c["detail"]
        and c["detail"].count("\\t") // 2 == c["detail"].count("Overload warning")
        for c in failed
    )


def truth(out: Path) -> dict[str, dict[str, Any]]:
    """linkedid -> the driver's ground truth of that call (one call per scenario)."""
    found = {}
    for name in SCENARIOS:
        assert drove_as_told(out, name), (out / "driver.log").read_text()[-3000:]
        expected = json.loads((out / f"{name}.expected.json").read_text())["calls"]
        assert len(expected) == 1, (name, expected)
        rows = list(csv.reader((out / f"{name}.cdr.csv").read_text().splitlines()))
        linkedids = {row[19] for row in rows if len(row) == 21}
        assert len(linkedids) == 1, (name, linkedids)
        found[linkedids.pop()] = {"scenario": name, **expected[0]}
    return found


def journal_calls(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT data FROM calls")]
    finally:
        conn.close()


def live_in_journal(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM calls WHERE live = 1").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def vtiger_rows(crm: Crm, ids: list[str]) -> list[dict[str, str]]:
    marks = ",".join(f"'{i}'" for i in ids if i.isalnum())
    return crm.sql(
        "SELECT p.sourceuuid, p.direction, p.callstatus, p.customernumber, e.smownerid, "
        "u.user_name, u.phone_crm_extension FROM vtiger_pbxmanager p "
        "JOIN vtiger_crmentity e ON e.crmid = p.pbxmanagerid AND e.deleted = 0 "
        f"LEFT JOIN vtiger_users u ON u.id = e.smownerid WHERE p.sourceuuid IN ({marks})"
    )


def owner_ext(call: dict[str, Any]) -> str | None:
    """The CRM user who must own the call, where that is not a matter of CRM policy: the
    employee with a vtiger user (101, 102) who talked (inbound) or called (outbound, and
    answered). Missed calls and calls of extensions without a user follow the crm profile's
    ownership rules (issue #15), which this test does not restate."""
    employee = call["answered_by"] if call["direction"] == "inbound" else call["from"]
    if call["status"] != "completed" or employee not in ("101", "102"):
        return None
    return str(employee)


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def check(run: PincRun, crm: Crm, expected: dict[str, dict[str, Any]], phase: str) -> None:
    """All calls in the journal once, right; each customer call in vtiger once, right."""
    def all_in() -> bool:
        have = {c["linkedid"] for c in journal_calls(run.journal) if c["status"] not in
                ("ringing", "answered")}
        return set(expected) <= have

    wait(all_in, 120, f"{phase}: the calls in the journal")
    calls = [c for c in journal_calls(run.journal) if c["linkedid"] in expected]
    counts = Counter(c["linkedid"] for c in calls)
    assert all(n == 1 for n in counts.values()), counts
    for call in calls:
        want = expected[call["linkedid"]]
        got = (call["direction"], call["status"], call["answered_by"])
        assert got == (want["direction"], want["status"], want["answered_by"]), (
            phase, want["scenario"], got, call)
    customer = [c for c in calls if c["direction"] != "internal"]
    ids = [c["id"] for c in customer]

    def delivered() -> bool:
        rows = vtiger_rows(crm, ids)
        return {r["sourceuuid"] for r in rows} == set(ids) and all(
            r["callstatus"] in VTIGER_STATUS.values() for r in rows)

    wait(delivered, 180, f"{phase}: the calls in vtiger")
    rows = vtiger_rows(crm, ids)
    assert len(rows) == len(ids), (phase, rows)  # none twice
    by_id = {r["sourceuuid"]: r for r in rows}
    owned = 0
    for call in customer:
        row = by_id[call["id"]]
        name = expected[call["linkedid"]]["scenario"]
        assert row["direction"] == call["direction"], (phase, name, row)
        assert row["callstatus"] == VTIGER_STATUS[call["status"]], (phase, name, row)
        want_owner = owner_ext(call)
        if want_owner is not None:
            assert row["phone_crm_extension"] == want_owner, (phase, name, row)
            owned += 1
    FIGURES[phase] = {
        "driven": len(expected),
        "recovered": sum(1 for c in calls if c.get("source") == "cdr"),
        "in_journal": len(calls),
        "delivered_to_vtiger": len(rows),
        "customer_calls": len(customer),
        "owned_by_the_employee_who_talked": owned,
    }


def test_calls_made_while_pinc_was_down(
    pjsip_office: Office, vtiger: Crm, tmp_path: Path
) -> None:
    config = office_config(
        pjsip_office, tmp_path,
        web={"token": "lab-downtime-token-0123456789"},
        crm={"profile": "vtiger", "url": vtiger.url, "secret": vtiger.secret,
             "username": vtiger.admin_user, "access_key": vtiger.admin_access_key,
             "timezone": vtiger.default_timezone, "retry_min": 0.5, "retry_max": 5.0},
        cdr={"source": "csv", "csv_path": str(pjsip_office.cdr_csv)},
    )
    # 1. pinc ran, logged in, and was stopped
    run = PincRun(config, tmp_path).start()
    wait(lambda: "CDR" in run.log() or "AMI logged in" in run.log(), 30, "the AMI login")
    time.sleep(1)  # the login's recovery has run (it writes when pinc last listened)
    assert run.stop() == 0, run.log()[-3000:]
    # 2. ten calls while pinc is down
    out1 = tmp_path / "down"
    driver = drive(pjsip_office, out1)
    driver.wait(600)
    expected = truth(out1)
    # 3. pinc is back
    run = PincRun(config, tmp_path / "again").start()
    try:
        check(run, vtiger, expected, "stopped")
        # again, with pinc killed while the first call is up
        out2 = tmp_path / "killed"
        driver = drive(pjsip_office, out2)
        wait(lambda: live_in_journal(run.journal) > 0, 60, "a live call")
        assert run.process is not None
        run.process.send_signal(signal.SIGKILL)
        run.process.wait(10)
        driver.wait(600)
        second = truth(out2)
        run = PincRun(config, tmp_path / "after-kill").start()
        check(run, vtiger, second, "killed")
    finally:
        print("downtime figures:", json.dumps(FIGURES))
        (tmp_path / "figures.json").write_text(json.dumps(FIGURES, indent=1))
        code = run.stop()
        assert code == 0, run.log()[-3000:]
