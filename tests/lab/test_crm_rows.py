"""Live rows in the real vtiger 8.2 and SalesPlatform 7.2 for every scenario of the lab.

Per office (Local channels, PJSIP): two ``pinc run`` at once watch the same Asterisk, one
delivering to the lab's vtiger, one to its SalesPlatform, while the kit's drivers
(``../shared/lab/asterisk/drivers``) play every single-call scenario, plus three calls
of this file's own (the cases of issue #15: a customer call placed from 103, which has no
CRM user; one answered by 103; one abandoned before any phone rang). Then each CRM's
database is read (``Crm.sql``) and every row checked against the ground truth, written
here from how each call was driven (the drivers' descriptions and their
``expected.json``), never from pinc's output:

- one row per customer call (stock vtiger), one per CRM user of the call (SalesPlatform);
- direction, status, customer number and linked record, owner (a CRM user, never
  admin: the employee who talked, else the responsible manager, else crm.default_user),
  times in the CRM's ``$default_timezone``, durations, and a recording that plays;
- the call of 103 is held back (no row filed as "an inbound call from customer 103").

Run: ``PINC_LAB=... pytest tests/lab/test_crm_rows.py -v`` with an office, vtiger and
SalesPlatform up (see tests/lab/README.md). About 4 minutes per office.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pinc.crm.callbacks import crm_time
from tests.crm.scenarios import crm_form
from tests.lab.lab import (
    ROOT,
    Crm,
    Office,
    PincRun,
    find_office,
    find_salesplatform,
    find_vtiger,
    lab_dir,
    office_config,
)

KIT = Path(os.environ.get("PINC_LAB_KIT") or ROOT.parent / "shared" / "lab")
PROJECT_OFFICES = ("labpjsip", "labmsk")  # tests/lab/offices.py; driven by tests.lab.drive
CALLER = "79035550011"  # the drivers' outside caller: no record in the lab CRMs
ANNA = "79161234567"  # Contact Anna Customer, owned by manager1 (101)
MANAGERS = {"101": "manager1", "102": "manager2"}  # the lab CRMs' users; 103 has none
DEFAULT_USER = "manager2"  # crm.default_user: owns what nobody is responsible for
RESPONSIBLE = {ANNA: "manager1"}
VT_STATUS = {"completed": "completed", "busy": "busy", "failed": "busy"}


@dataclass(frozen=True)
class Truth:
    """How a call was driven: what really happened, whatever pinc says."""

    direction: str
    status: str
    frm: str
    to: str
    answered_by: str | None
    legs: tuple[tuple[str, str], ...] = ()  # (ext, result) of employee phones that rang
    recording: bool = False
    talk: tuple[int, int] = (0, 0)  # a generous bracket of the talk seconds


def _inbound(did: str, status: str, by: str | None, legs: tuple[tuple[str, str], ...],
             caller: str = CALLER, talk: tuple[int, int] = (0, 0)) -> Truth:
    return Truth("inbound", status, caller, did, by, legs, status == "completed", talk)


def _outbound(number: str, status: str, ext: str = "101", talk: tuple[int, int] = (0, 0)
              ) -> Truth:
    return Truth("outbound", status, ext, number, ext if status == "completed" else None,
                 ((ext, "answered"),) if status == "completed" else (), status == "completed",
                 talk)


# the kit's local-office scenarios, from their descriptions (scenarios.py --list)
LOCAL: dict[str, Truth] = {
    "inbound_answered": _inbound("74951230000", "completed", "101",
                                 (("101", "answered"), ("102", "cancelled")), talk=(2, 5)),
    "inbound_missed": _inbound("74951230000", "missed", None,
                               (("101", "cancelled"), ("102", "cancelled"))),
    "inbound_abandoned_in_queue": _inbound("74951230002", "missed", None, ()),
    "inbound_busy": _inbound("74951230105", "missed", None, (("105", "busy"),)),
    "inbound_no_answer": _inbound("74951230104", "missed", None, (("104", "no-answer"),)),
    "outbound_click_to_call": _outbound(ANNA, "completed", talk=(3, 8)),
    "blind_transfer": _inbound("74951230101", "completed", "102",
                               (("101", "answered"), ("102", "answered")), talk=(4, 9)),
    "attended_transfer": _inbound("74951230101", "completed", "102",
                                  (("101", "answered"), ("102", "answered")), talk=(6, 12)),
    "redirect_transfer": _inbound("74951230101", "completed", "102",
                                  (("101", "answered"), ("102", "answered")), talk=(4, 9)),
    "followme": _inbound("74951230003", "completed", "103",
                         (("103", "no-answer"), (ANNA, "answered")), talk=(3, 6)),
    "outbound_busy": _outbound("79169999999", "busy"),
    "outbound_no_answer": _outbound("79160000000", "no-answer"),
    "outbound_answered": _outbound(ANNA, "completed", talk=(3, 6)),
    "agi_responsible": _inbound("74951230000", "completed", "102", (("102", "answered"),),
                                caller=ANNA, talk=(2, 5)),
}
# this file's own calls on the local office (ami_calls below)
OWN: dict[str, Truth] = {
    "own_outbound_103": _outbound(ANNA, "completed", ext="103", talk=(2, 6)),
    "own_answered_by_103": _inbound("74951230103", "completed", "103", (("103", "answered"),),
                                    caller=ANNA, talk=(2, 5)),
    "own_abandoned_anna": _inbound("74951230002", "missed", None, (), caller=ANNA),
}


def driver_truths(out: Path, name: str) -> list[Truth]:
    """The ground truth a driver wrote from how it drove the calls: the kit's pjsip driver
    (NAME.expected.json), the project's drivers (NAME.truth.json, #13)."""
    path = out / f"{name}.truth.json"
    if not path.exists():
        path = out / f"{name}.expected.json"
    return [Truth(call["direction"], call["status"], call["from"], call["to"],
                  call["answered_by"],
                  tuple((leg["ext"], leg["result"]) for leg in call["legs"]),
                  bool(call.get("recording")),
                  (int(call.get("talk_min", 0)), int(call.get("talk_max", 0))))
            for call in json.loads(path.read_text())["calls"]]


# --- driving ----------------------------------------------------------------------------


def drive(office: Office, out: Path) -> list[str]:
    """The driver of this office, every scenario of a few calls; their names."""
    # LAB_* in the environment would override the office's own ports (another office's)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    if office.name in PROJECT_OFFICES:  # the project's own drivers (#13, tests/lab/drive.py)
        done = subprocess.run(
            [sys.executable, "-m", "tests.lab.drive", "--office", office.name, "--out",
             str(out), *FOCUS], capture_output=True, text=True, timeout=3600, env=env, cwd=ROOT)
        names = sorted(p.name.removesuffix(".truth.json") for p in out.glob("*.truth.json"))
        broken = [n for n in names if not drove_as_intended(out / f"{n}.summary.json")]
        assert names and not broken, f"the driver could not play {broken}:\n{done.stdout[-3000:]}"
        return names
    script = KIT / "asterisk" / "drivers" / ("scenarios_pjsip.py" if office.uses_sip
                                             else "scenarios.py")
    listed = subprocess.run([sys.executable, str(script), "--list"], capture_output=True,
                            text=True, check=True).stdout
    names = [line.split()[0] for line in listed.splitlines()
             if line.strip() and not line.startswith(" ")]
    names = [n for n in names if n != "concurrent_load"]  # 50 calls: a load test, not rows
    done = subprocess.run(
        [sys.executable, str(script), "--run-dir", str(office.run_dir), "--out", str(out),
         *names], capture_output=True, text=True, timeout=1200, env=env)
    broken = [n for n in names if not drove_as_intended(out / f"{n}.summary.json")]
    assert not broken, f"the driver could not play {broken}:\n{done.stdout[-3000:]}"
    return names


# PINC_LAB_SCENARIOS="a b": drive only these of a project office's scenarios (a rerun)
FOCUS = os.environ.get("PINC_LAB_SCENARIOS", "").split() or ["all"]
BENIGN_SIPP = ("Overload warning", "Automatic response mode")


def drove_as_intended(summary: Path) -> bool:
    """The driver's own checks passed, save those that change no call: which form the
    AttendedTransfer race took (either is the same transfer), and sipp's notes: the machine
    is slow (``Overload warning: the minor watchdog timer ... tripped``), or it answered an
    in-dialog INFO/NOTIFY/OPTIONS/UPDATE itself (``Automatic response mode ...``)."""
    try:
        found = json.loads(summary.read_text())
    except (OSError, ValueError):
        return False
    if found.get("error"):
        return False
    for check in found.get("checks", []):
        if check.get("ok"):
            continue
        if str(check.get("check")).endswith("(the race)"):
            continue  # Asterisk's AttendedTransfer race took its other form: the same call
        if str(check.get("check")).lower().startswith("no unexpected sip") and all(
                any(note in line for note in BENIGN_SIPP)
                for lines in _sipp_complaints(check.get("detail")) for line in lines):
            continue
        return False
    return True


def _sipp_complaints(detail: object) -> list[list[str]]:
    if isinstance(detail, dict):
        return [list(map(str, v)) for v in detail.values() if isinstance(v, list)]
    text = str(detail or "")
    return [[part] for part in re.findall(r"'([^']*)'", text) if ":" in part]


class Ami:
    """Just enough AMI to place this file's own calls (login, Originate, logoff)."""

    def __init__(self, office: Office) -> None:
        self.sock = socket.create_connection((office.ami_host, office.ami_port), timeout=10)
        self.sock.recv(100)
        self.send("Login", [("Username", office.ami_user), ("Secret", office.ami_secret),
                            ("Events", "off")])

    def send(self, action: str, fields: list[tuple[str, str]]) -> str:
        text = f"Action: {action}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
        self.sock.sendall(text.encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += self.sock.recv(4096)
        return reply.decode()

    def originate(self, channel: str, exten: str, caller: str, timeout_ms: int,
                  **variables: object) -> None:
        fields = [("Channel", channel), ("Context", "sim-caller"), ("Exten", exten),
                  ("Priority", "1"), ("CallerID", f'"{caller}" <{caller}>'),
                  ("Timeout", str(timeout_ms)), ("Async", "true")]
        fields += [("Variable", f"{k}={v}") for k, v in variables.items()]
        assert "Success" in self.send("Originate", fields)

    def close(self) -> None:
        self.send("Logoff", [])
        self.sock.close()


def ami_calls(office: Office) -> dict[str, float]:
    """This file's own calls, one after the other; their start times (epoch)."""
    ami = Ami(office)
    started: dict[str, float] = {}
    try:
        started["own_outbound_103"] = time.time()
        ami.originate(f"Local/{ANNA}@from-internal", "hold", "103", 30000, __PSTN_TALK=3)
        time.sleep(10)
        started["own_answered_by_103"] = time.time()
        ami.originate("Local/74951230103@from-trunk", "talk", ANNA, 30000, SIM_CALLER=ANNA,
                      __RINGTIME_103=1, TALK=3)
        time.sleep(9)
        started["own_abandoned_anna"] = time.time()
        ami.originate("Local/74951230002@from-trunk", "talk", ANNA, 5000, SIM_CALLER=ANNA)
        time.sleep(9)
    finally:
        ami.close()
    return started


# --- pinc and the CRMs -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def crm_section(crm: Crm) -> dict[str, Any]:
    return {"profile": crm.kind, "url": crm.url, "secret": crm.secret,
            "username": crm.admin_user, "access_key": crm.admin_access_key,
            "timezone": crm.default_timezone, "default_user": DEFAULT_USER,
            "retry_min": 0.2, "retry_max": 2.0}


def settled(journal: Path) -> bool:
    """Every call ended and nothing left to send."""
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            live = db.execute("SELECT COUNT(*) FROM calls WHERE live = 1").fetchone()[0]
            pending = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
                                 ).fetchone()[0]
    except sqlite3.Error:
        return False
    return live == 0 and pending == 0


def outbox(journal: Path, call_id: str) -> list[str]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT state FROM outbox WHERE call_id = ?",
                                         (call_id,))]


def crm_rows(crm: Crm, call_id: str) -> list[dict[str, str]]:
    return crm.sql(
        "SELECT p.pbxmanagerid, p.direction, p.callstatus, p.starttime, p.endtime, "
        "p.totalduration, p.billduration, p.recordingurl, p.customer, p.customertype, "
        "p.customernumber, u.user_name AS user, o.user_name AS owner FROM vtiger_pbxmanager p "
        "JOIN vtiger_crmentity e ON e.crmid = p.pbxmanagerid AND e.deleted = 0 "
        "LEFT JOIN vtiger_users u ON u.id = p.user LEFT JOIN vtiger_users o ON o.id = e.smownerid "
        f"WHERE p.sourceuuid = '{call_id}' ORDER BY p.pbxmanagerid")


class CrmBrowser:
    """A signed-in CRM user, as a browser is (cookies, the CSRF token on the POST)."""

    def __init__(self, crm: Crm) -> None:
        self.base = crm.url.rstrip("/")
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = self.get("index.php").decode("utf-8", "replace")
        token = re.search(r"__vtrftk' value=\"([^\"]+)\"", page)
        assert token, "no CSRF token on the CRM's login page"
        form = urllib.parse.urlencode({
            "module": "Users", "action": "Login", "__vtrftk": token.group(1),
            "username": crm.admin_user, "password": crm.env.get("SP_ADMIN_PASSWORD") or
            crm.env.get("VTIGER_ADMIN_PASSWORD", "")}).encode()
        self.opener.open(f"{self.base}/index.php", data=form, timeout=30).read()

    def get(self, path: str) -> bytes:
        with self.opener.open(f"{self.base}/{path}", timeout=30) as r:
            return bytes(r.read())


def plays(crm: Crm, row: dict[str, str], browser: CrmBrowser | None) -> bool:
    """The recording opens as the CRM opens it: stock vtiger hands the stored link to the
    browser; SalesPlatform plays it through its ListenRecord action, which fetches the link
    server-side with ``&secret=`` appended."""
    if browser is not None:
        body = browser.get("index.php?module=PBXManager&action=ListenRecord&record="
                           + row["pbxmanagerid"])
    else:
        with urllib.request.urlopen(row["recordingurl"], timeout=10) as r:
            body = r.read()
    return body[:4] == b"RIFF" and len(body) > 44


def linkedids(transcript: Path) -> set[str]:
    return set(re.findall(rb"Linkedid: ([0-9.]+)", transcript.read_bytes()))


# --- what each CRM must hold -------------------------------------------------------------


def owner(truth: Truth) -> str:
    number = truth.frm if truth.direction == "inbound" else truth.to
    return RESPONSIBLE.get(number, DEFAULT_USER)


def vtiger_want(truth: Truth) -> dict[str, str] | None:
    if truth.direction == "outbound":
        who = MANAGERS.get(truth.frm)
        if who is None:
            return None  # held: its extension has no CRM user
    else:
        who = MANAGERS.get(truth.answered_by or "") if truth.status == "completed" else None
        who = who or owner(truth)
    return {"direction": truth.direction,
            "callstatus": VT_STATUS.get(truth.status, "no-answer"), "user": who, "owner": who}


def salesplatform_want(truth: Truth) -> dict[str, str]:
    """user -> final status of each of the call's rows."""
    if truth.direction == "outbound":
        who = MANAGERS.get(truth.frm)
        return {who: VT_STATUS.get(truth.status, "no-answer")} if who else {}
    want: dict[str, str] = {}
    for ext, result in truth.legs:
        if ext in MANAGERS:
            status = {"answered": "completed", "busy": "busy"}.get(result, "no-answer")
            if result == "cancelled" and truth.status == "completed":
                status = "Answered elsewhere"
            want[MANAGERS[ext]] = status
    answered = MANAGERS.get(truth.answered_by or "")
    if truth.status == "completed" and answered:
        want[answered] = "completed"
    else:
        want[owner(truth)] = "completed" if truth.status == "completed" else "no-answer"
    return want


def check_call(crm: Crm, journal: Path, name: str, truth: Truth, call: dict[str, Any],
               problems: list[str], browser: CrmBrowser | None = None) -> None:
    got = crm_rows(crm, call["id"])
    facts = (call["direction"], call["status"], call["from"], call["to"], call["answered_by"])
    want_facts = (truth.direction, truth.status, truth.frm, truth.to, truth.answered_by)
    if facts != want_facts:
        problems.append(f"{name}: pinc journaled {facts}, the call was {want_facts}")
        return
    if truth.direction == "internal":
        if got:
            problems.append(f"{name}: an internal call in the CRM: {got}")
        return
    number = crm_form(truth.frm if truth.direction == "inbound" else truth.to)
    if crm.kind == "vtiger":
        want = vtiger_want(truth)
        if want is None:
            if got or set(outbox(journal, call["id"])) != {"held"}:
                problems.append(f"{name}: expected held back, CRM rows {got}")
            return
        if len(got) != 1:
            problems.append(f"{name}: {len(got)} vtiger rows, expected 1: {got}")
            return
        pairs = [(got[0], want)]
    else:
        statuses = salesplatform_want(truth)
        if not statuses:
            if got or set(outbox(journal, call["id"])) != {"held"}:
                problems.append(f"{name}: expected held back, CRM rows {got}")
            return
        by_user = {r["user"]: r for r in got}
        if len(got) != len(by_user) or {u: r["callstatus"] for u, r in by_user.items()} != (
                statuses):
            seen = [(r["user"], r["callstatus"]) for r in got]
            problems.append(f"{name}: SalesPlatform rows {seen}, expected {statuses}")
            return
        pairs = [(row, {"direction": truth.direction, "callstatus": statuses[row["user"]],
                        "user": row["user"], "owner": row["user"]}) for row in got]
    tz = crm.default_timezone
    talkers = 0
    for row, want in pairs:
        have = {k: row[k] for k in want}
        if have != want:
            problems.append(f"{name}: row {have}, expected {want}")
        if row["customernumber"].lstrip("+") != number:
            problems.append(f"{name}: customer number {row['customernumber']}, expected {number}")
        if (row["customer"] not in ("", "NULL")) != (number == ANNA):
            problems.append(f"{name}: customer record {row['customer']!r} for {number}")
        if row["starttime"] != crm_time(call["started_at"], tz) or row["endtime"] != crm_time(
                call["ended_at"], tz) or int(row["totalduration"]) != call["duration"]:
            problems.append(f"{name}: times {row['starttime']}..{row['endtime']} "
                            f"({row['totalduration']} s), journal {call['started_at']}.."
                            f"{call['ended_at']} ({call['duration']} s) in {tz}")
        billed = int(row["billduration"] or 0)
        talkers += billed > 0
        if truth.status == "completed" and crm.kind == "vtiger":
            low, high = truth.talk
            if not low <= billed <= max(high, low):
                problems.append(f"{name}: billed {billed} s, the call talked {truth.talk}")
        link = row["recordingurl"] if row["recordingurl"] != "NULL" else ""
        if truth.recording and billed > 0:
            if not link or not plays(crm, row, browser):
                problems.append(f"{name}: no playable recording ({link!r})")
        elif link:
            problems.append(f"{name}: a recording link on a row that did not talk: {link}")
    if truth.status == "completed" and not talkers:
        problems.append(f"{name}: nobody's row has the talk time")


# --- the test -------------------------------------------------------------------------------


@pytest.fixture(params=["local", "pjsip", *PROJECT_OFFICES])
def office(request: pytest.FixtureRequest) -> Office:
    if lab_dir() is None:
        pytest.skip("the lab tier needs PINC_LAB (see tests/lab/README.md)")
    found = find_office(str(request.param))
    if found is None:
        pytest.skip(f"no {request.param} office running in $PINC_LAB")
    if found.name not in PROJECT_OFFICES and not (KIT / "asterisk" / "drivers").is_dir():
        pytest.skip(f"the lab kit's drivers are not at {KIT}")
    return found


def _crms() -> Iterator[Crm]:
    for crm in (find_vtiger(), find_salesplatform()):
        if crm is not None:
            yield crm


def test_every_scenario_leaves_the_right_rows(office: Office, tmp_path: Path) -> None:
    crms = list(_crms())
    if not crms:
        pytest.skip("neither vtiger nor SalesPlatform is up in $PINC_LAB")
    out = tmp_path / "transcripts"
    with ExitStack() as stack:
        runs: list[tuple[Crm, PincRun]] = []
        for crm in crms:
            port = free_port()
            # the responsible manager is the CRM record's owner: with the journal's
            # fallback (who talked with the number last) the owner of a missed call would
            # depend on the calls before it
            config = office_config(office, tmp_path / crm.kind, crm=crm_section(crm),
                                   web={"listen": f"127.0.0.1:{port}",
                                        "public_url": f"http://127.0.0.1:{port}"},
                                   routing={"journal_fallback_days": 0})
            run = PincRun(config, tmp_path / crm.kind).start()
            stack.callback(run.stop)
            runs.append((crm, run))
        names = drive(office, out)
        started = {} if office.uses_sip else ami_calls(office)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(settled(r.journal) for _, r in runs):
            time.sleep(0.5)
        problems: list[str] = []
        counted = 0
        for crm, run in runs:
            calls = run.calls("--since", "2h", "--limit", "500")
            browser = CrmBrowser(crm) if crm.kind == "salesplatform" else None
            for name in names:
                truths = [LOCAL[name]] if name in LOCAL else driver_truths(out, name)
                ids = {i.decode() for i in linkedids(out / f"{name}.ami")}
                mine = sorted((c for c in calls if {c["linkedid"], *c.get("linkedids", [])} & ids),
                              key=lambda c: (c["started_at"], c["linkedid"]))
                if len(mine) != len(truths):
                    problems.append(f"{crm.kind} {name}: {len(mine)} calls in pinc's journal, "
                                    f"{len(truths)} driven")
                    continue
                for i, (truth, call) in enumerate(zip(truths, mine, strict=True)):
                    label = f"{crm.kind} {name}" + (f" #{i + 1}" if len(truths) > 1 else "")
                    check_call(crm, run.journal, label, truth, call, problems, browser)
                    counted += 1
            for name, at in started.items():
                mine = [c for c in calls if c["started_at"] >= time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(at - 1)) and c["started_at"] <= time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(at + 3))]
                if len(mine) != 1:
                    problems.append(f"{crm.kind} {name}: {len(mine)} calls in pinc's journal")
                    continue
                check_call(crm, run.journal, f"{crm.kind} {name}", OWN[name], mine[0], problems,
                           browser)
                counted += 1
        checked = counted
        print(f"{checked} calls checked in {', '.join(c.kind for c in crms)}")  # with -s
        assert not problems, f"{len(problems)} of {checked} calls wrong:\n" + "\n".join(problems)
