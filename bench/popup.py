"""Ring to popup: from the AMI event that rings a phone to the card drawn in that user's page.

What runs (all on 127.0.0.1):
- a fake Asterisk (pinc.sim.amiserver.AmiSimServer) in a thread of this process, fed PJSIP
  calls as Asterisk 22 emits them: an outside number dials an employee's phone directly
  (DialBegin rings it), the phone answers 2 s later, the call ends 2 s after that;
- ``pinc run`` in a subprocess, on the port the CRM's PBXManager calls;
- the real vtiger 8.2 of the lab (``$PINC_LAB``) with pinc's module imported through
  Module Manager, and USERS real vtiger users (bench201...) with extensions 201...;
- one Chromium with USERS contexts, each signed in to vtiger as one user, on the module's
  card window (``index.php?module=Pinc&view=Card``, ``--page card``) or on vtiger's
  dashboard with the card in its corner (``--page full``): the module's script opens each
  user's websocket to pinc with its module ticket. An idle vtiger 8 dashboard costs
  headless Chromium about 0.04 of a core, so 50 of them alone take this 2-core machine;
  the card window is the same card without vtiger's page around it.

NEW calls a second start for SECONDS, round robin over the users. Latency of a call =
the time its card was drawn in its user's page (pinc.js records ``Date.now()`` when it
creates the card) minus the time the DialBegin was handed to the fake Asterisk
(``time.time()``, the same clock). Also reported: ring to name (the card filled in by the
module's lookup in vtiger, a PHP request per card).

pinc delivers calls to a path of vtiger's origin where nothing answers (404 at once, then
back-off), so the CRM's origin may open /ws while vtiger's PHP only serves the pages and
the lookups: delivery has its own benchmark (bench/crm.py). The CRM's own popup, beside
it: vtiger 7/8 and SalesPlatform never show one for a call that starts after the page
loaded (their poll is commented out); vtiger 6.x polled every 3 s, which puts a popup
uniformly 0-3 s after the ring (p50 1.5 s, p99 2.97 s), before its own request time.

    PINC_LAB=... .venv/bin/python bench/popup.py [--users 50] [--rate 20] [--seconds 30]
        [--page card|full] [--browser-nice 10]

The browsers run at nice 10 (``--browser-nice``); pinc and the fake Asterisk at the
niceness the bench was started with (0 without ``nice``), as on a PBX.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pinc.sim.amiserver import AmiSimServer  # noqa: E402
from tests.lab.crmweb import CrmWeb  # noqa: E402
from tests.lab.lab import PincRun, find_vtiger  # noqa: E402
from tests.lab.modulelab import ARGS, CHROMIUM, build_zip, pinc_port  # noqa: E402

PASSWORD = "Bench@12345"
RING_S = 2.0  # ringing, then the phone answers
TALK_S = 2.0


def _msg(headers: list[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode()


class Call:
    """One inbound call, as Asterisk 22 reports a PJSIP phone dialled from the trunk."""

    def __init__(self, n: int, ext: str, number: str, start: float) -> None:
        self.ext, self.number = ext, number
        epoch = int(start)
        self.a_uid, self.b_uid = f"{epoch}.{2 * n}", f"{epoch}.{2 * n + 1}"
        self.a = f"PJSIP/trunk-{2 * n:08x}"
        self.b = f"PJSIP/{ext}-{2 * n + 1:08x}"
        self.bridge = f"bench-{n:08d}"
        self.did = "749512301" + ext[1:]
        self.start = start

    def _chan(self, which: str, state: str, desc: str, prefix: str = "") -> list[tuple[str, str]]:
        a = which == "a"
        p = prefix
        return [
            (p + "Channel", self.a if a else self.b),
            (p + "ChannelState", state),
            (p + "ChannelStateDesc", desc),
            (p + "CallerIDNum", self.number if a else self.ext),
            (p + "CallerIDName", "<unknown>"),
            (p + "ConnectedLineNum", self.ext if a else self.number),
            (p + "ConnectedLineName", "<unknown>"),
            (p + "Language", "en"),
            (p + "AccountCode", ""),
            (p + "Context", "from-trunk" if a else "from-internal"),
            (p + "Exten", self.did),
            (p + "Priority", "1"),
            (p + "Uniqueid", self.a_uid if a else self.b_uid),
            (p + "Linkedid", self.a_uid),
        ]

    def ring(self) -> list[bytes]:
        c = "call,all"
        return [
            _msg([("Event", "Newchannel"), ("Privilege", c), *self._chan("a", "4", "Ring")]),
            _msg([("Event", "Newchannel"), ("Privilege", c), *self._chan("b", "0", "Down")]),
            _msg([("Event", "DialBegin"), ("Privilege", c), *self._chan("a", "4", "Ring"),
                  *self._chan("b", "0", "Down", "Dest"), ("DialString", self.ext)]),
            _msg([("Event", "Newstate"), ("Privilege", c), *self._chan("b", "5", "Ringing")]),
        ]

    def answer(self) -> list[bytes]:
        c = "call,all"
        bridge = [("BridgeUniqueid", self.bridge), ("BridgeType", "basic"),
                  ("BridgeTechnology", "simple_bridge"), ("BridgeCreator", "<unknown>"),
                  ("BridgeName", "<unknown>"), ("BridgeVideoSourceMode", "none")]
        return [
            _msg([("Event", "Newstate"), ("Privilege", c), *self._chan("b", "6", "Up")]),
            _msg([("Event", "Newstate"), ("Privilege", c), *self._chan("a", "6", "Up")]),
            _msg([("Event", "DialEnd"), ("Privilege", c), *self._chan("a", "6", "Up"),
                  *self._chan("b", "6", "Up", "Dest"), ("DialStatus", "ANSWER")]),
            _msg([("Event", "BridgeCreate"), ("Privilege", c), *bridge,
                  ("BridgeNumChannels", "0")]),
            _msg([("Event", "BridgeEnter"), ("Privilege", c), *bridge,
                  ("BridgeNumChannels", "1"), *self._chan("b", "6", "Up")]),
            _msg([("Event", "BridgeEnter"), ("Privilege", c), *bridge,
                  ("BridgeNumChannels", "2"), *self._chan("a", "6", "Up")]),
        ]

    def hangup(self) -> list[bytes]:
        c = "call,all"
        fmt = "%Y-%m-%d %H:%M:%S"
        bridge = [("BridgeUniqueid", self.bridge), ("BridgeType", "basic"),
                  ("BridgeTechnology", "simple_bridge"), ("BridgeCreator", "<unknown>"),
                  ("BridgeName", "<unknown>"), ("BridgeVideoSourceMode", "none")]
        return [
            _msg([("Event", "BridgeLeave"), ("Privilege", c), *bridge,
                  ("BridgeNumChannels", "1"), *self._chan("a", "6", "Up")]),
            _msg([("Event", "BridgeLeave"), ("Privilege", c), *bridge,
                  ("BridgeNumChannels", "0"), *self._chan("b", "6", "Up")]),
            _msg([("Event", "Hangup"), ("Privilege", c), *self._chan("b", "6", "Up"),
                  ("Cause", "16"), ("Cause-txt", "Normal Clearing")]),
            _msg([("Event", "Hangup"), ("Privilege", c), *self._chan("a", "6", "Up"),
                  ("Cause", "16"), ("Cause-txt", "Normal Clearing")]),
            _msg([("Event", "Cdr"), ("Privilege", "cdr,all"), ("AccountCode", ""),
                  ("Source", self.number), ("Destination", self.did),
                  ("DestinationContext", "from-trunk"), ("CallerID", f"<{self.number}>"),
                  ("Channel", self.a), ("DestinationChannel", self.b),
                  ("LastApplication", "Dial"), ("LastData", f"PJSIP/{self.ext},30"),
                  ("StartTime", time.strftime(fmt, time.gmtime(self.start))),
                  ("AnswerTime", time.strftime(fmt, time.gmtime(self.start + RING_S))),
                  ("EndTime", time.strftime(fmt, time.gmtime(self.start + RING_S + TALK_S))),
                  ("Duration", str(int(RING_S + TALK_S))), ("BillableSeconds", str(int(TALK_S))),
                  ("Disposition", "ANSWERED"), ("AMAFlags", "DOCUMENTATION"),
                  ("UniqueID", self.a_uid), ("UserField", "")]),
        ]


class FakeAsterisk:
    """The simulator in its own thread (its own trio loop), driven from the main thread."""

    def __init__(self) -> None:
        self.port = 0
        self.ready = threading.Event()
        self.go = threading.Event()
        self.done = threading.Event()
        self.rang: dict[str, float] = {}  # customer number -> time its DialBegin went out
        self.calls: list[Call] = []
        self.late = 0  # calls started more than 50 ms after their due time
        self.thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(30):
            raise SystemExit("the fake Asterisk did not start")

    async def _main(self) -> None:
        sim = AmiSimServer()
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(sim.run)
            self.ready.set()
            await trio.to_thread.run_sync(self.go.wait)
            await self._play(sim, nursery)
            await trio.sleep(RING_S + TALK_S + 1)
            self.done.set()
            nursery.cancel_scope.cancel()

    async def _play(self, sim: AmiSimServer, nursery: trio.Nursery) -> None:
        interval = 1.0 / self.rate
        start = time.monotonic()
        for i, call in enumerate(self.calls):
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                await trio.sleep(delay)
            elif delay < -0.05:
                self.late += 1
            call.start = time.time()
            self.rang[call.number] = time.time()
            sim.feed(call.ring())
            nursery.start_soon(self._later, sim, call)

    async def _later(self, sim: AmiSimServer, call: Call) -> None:
        await trio.sleep(RING_S)
        sim.feed(call.answer())
        await trio.sleep(TALK_S)
        sim.feed(call.hangup())

    def plan(self, users: list[str], rate: float, seconds: float) -> None:
        self.rate = rate
        rng = random.Random(15)
        total = int(rate * seconds)
        numbers = rng.sample(range(10**7), total)
        self.calls = [Call(i, users[i % len(users)], f"7916{numbers[i]:07d}", 0.0)
                      for i in range(total)]


def ensure_users(crm: Any, count: int) -> list[tuple[str, str]]:
    """bench201.. with extensions 201..; created through vtiger's Add User form when missing."""
    have = {r["user_name"] for r in crm.sql(
        "SELECT user_name FROM vtiger_users WHERE user_name LIKE 'bench%' AND deleted = 0")}
    users = [(f"bench{201 + i}", str(201 + i)) for i in range(count)]
    missing = [(u, e) for u, e in users if u not in have]
    if missing:
        print(f"creating {len(missing)} vtiger users", flush=True)
        with CrmWeb(crm.url) as web:
            web.login(crm.admin_user, crm.env["VTIGER_ADMIN_PASSWORD"])
            for user, ext in missing:
                web.create_user(user, PASSWORD, first="Bench", last=f"User {ext}", ext=ext)
        for user, _ in missing:
            with CrmWeb(crm.url) as web:
                web.first_login(user, PASSWORD)
    return users


def descendants(root: int) -> list[int]:
    """Every process under ``root`` (from /proc: Chromium's browser, zygotes, renderers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def renice_browsers(nice: int) -> int:
    """Chromium raises its own priority (its browser process runs at nice -8 as root): put
    this run's browsers at ``nice``. They stand for 50 users' own machines; on one shared
    machine they must not starve pinc and the fake Asterisk (which stand for the PBX), nor
    the machine's other users."""
    count = 0
    for pid in descendants(os.getpid()):
        try:
            if os.getpriority(os.PRIO_PROCESS, pid) < nice:
                os.setpriority(os.PRIO_PROCESS, pid, nice)
                count += 1
        except OSError:
            continue
    return count


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (threads included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy so far (all cores, everyone's processes)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK


def pids_matching(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="new calls per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--page", choices=("card", "full"), default="card",
                        help="card: each user's card window (view=Card); full: the CRM's "
                             "dashboard page with the card in its corner")
    parser.add_argument("--browser-nice", type=int, default=10,
                        help="the browsers' niceness (the harness: 50 users' machines in one); "
                             "pinc and the fake Asterisk keep this process' own")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    crm = find_vtiger()
    if crm is None:
        raise SystemExit("bench/popup.py needs the lab vtiger: set PINC_LAB (tests/lab/README.md)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="pinc-popup-") as tmp_name:
        tmp = Path(tmp_name)
        with CrmWeb(crm.url) as web:
            web.login(crm.admin_user, crm.env["VTIGER_ADMIN_PASSWORD"])
            web.import_module(build_zip(tmp))
        users = ensure_users(crm, args.users)
        ami = FakeAsterisk()
        ami.plan([ext for _, ext in users], args.rate, args.seconds)
        ami.start()
        config = {
            "ami": {"host": "127.0.0.1", "port": ami.port, "username": "pinc",
                    "secret": "pincsecret"},
            "pbx": {"extension_pattern": r"^\d{3}$", "trunk_contexts": ["from-trunk"],
                    "internal_contexts": ["from-internal"], "originate_channel": "PJSIP/{ext}"},
            "journal": {"path": str(tmp / "pinc.db")},
            "web": {"listen": f"127.0.0.1:{pinc_port(crm)}"},
            "agi": {"listen": "127.0.0.1:0"},
            # vtiger's origin (the pages may open /ws), but a path where nothing answers
            "crm": {"url": crm.url + "/pinc-bench-sink", "secret": crm.secret},
            "log": {"level": "info"},  # PincRun waits for the "pinc ready" line
        }
        run = PincRun(config, tmp / "pinc")
        try:
            run.start()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                pages = []
                started = time.monotonic()
                for user, _ in users:
                    page = browser.new_context().new_page()
                    page.goto(f"{crm.url}/index.php")
                    page.fill("#loginFormDiv #username", user)
                    page.fill("#loginFormDiv #password", PASSWORD)
                    page.locator("#loginFormDiv #username").press("Enter")
                    page.wait_for_url("**/index.php**", timeout=60_000)
                    if args.page == "card":
                        page.goto(f"{crm.url}/index.php?module=Pinc&view=Card")
                    page.wait_for_function(
                        "window.PincCard && window.PincCard.mode === 'socket'", timeout=60_000)
                    pages.append(page)
                reniced = renice_browsers(args.browser_nice)
                print(f"{len(pages)} users signed in ({time.monotonic() - started:.0f} s);"
                      f" {reniced} browser processes at nice {args.browser_nice}", flush=True)
                assert run.process is not None
                groups = {
                    "pinc": [run.process.pid],
                    "chromium": [p for p in descendants(os.getpid()) if p != run.process.pid],
                    "vtiger_php": pids_matching(f"-S 127.0.0.1:{urlsplit(crm.url).port}"),
                    "vtiger_mariadb": pids_matching(f"--port={crm.env.get('VTIGER_DB_PORT')}"),
                    "bench": [os.getpid()],
                }
                before = {k: cpu_seconds(v) for k, v in groups.items()}
                busy0, wall0 = machine_busy_seconds(), time.monotonic()
                ami.go.set()
                if not ami.done.wait(args.seconds + 60):
                    raise SystemExit("the fake Asterisk did not finish")
                wall = time.monotonic() - wall0
                cores = {k: round((cpu_seconds(v) - before[k]) / wall, 2)
                         for k, v in groups.items()}
                cores["machine"] = round((machine_busy_seconds() - busy0) / wall, 2)
                time.sleep(3)  # the last lookups
                drawn: list[dict[str, Any]] = []
                for page in pages:
                    drawn.extend(page.evaluate("window.PincCard.drawn"))
                browser.close()
        finally:
            code = run.stop()
    ring, name = [], []
    seen: set[str] = set()
    for mark in drawn:
        number = mark.get("peer")
        if number in ami.rang and number not in seen and mark.get("state") == "ringing":
            seen.add(number)
            ring.append(mark["at"] - ami.rang[number] * 1000)
            if mark.get("named_at"):
                name.append(mark["named_at"] - ami.rang[number] * 1000)
    calls = len(ami.calls)
    result = {
        "users": args.users, "page": args.page, "rate": args.rate, "seconds": args.seconds,
        "calls": calls,
        "cards": len(ring), "missing": calls - len(ring), "late_starts": ami.late,
        "ring_to_card_ms": {"p50": round(quantile(ring, 0.5), 1),
                            "p99": round(quantile(ring, 0.99), 1),
                            "max": round(max(ring), 1), "mean": round(statistics.mean(ring), 1)},
        "ring_to_name_ms": {"p50": round(quantile(name, 0.5), 1),
                            "p99": round(quantile(name, 0.99), 1)} if name else None,
        "vtiger_7_8_own_popup": "never (no poll after the page loaded)",
        "vtiger_6_own_popup_ms": {"p50": 1500, "p99": 2970},
        "pinc_exit": code,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "nice": {"pinc_and_fake_asterisk": os.getpriority(os.PRIO_PROCESS, 0),
                 "browsers": args.browser_nice},
        "cores_used_during_the_calls": cores,  # of the machine's 2; "machine": everyone's
    }
    p99 = result["ring_to_card_ms"]["p99"]  # type: ignore[index]
    result["vs_vtiger_6_p99"] = f"{2970 / p99:.0f}x faster" if p99 > 0 else "-"
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["missing"] == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
