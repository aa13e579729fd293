"""Transfers through pinc's own /transfer, live on the real Asterisk (#13, #16).

A call from outside is answered by 101; pinc's ``/transfer`` moves it to 102, blind or
attended. It must end answered by 102 with one transfer of kind ``crm`` (pinc's own), in
the journal of the ``pinc run`` that did it:

- on the kit's Local-channel office (``start.sh --office local``): 101's phone is a Local
  channel, and the transfer must act on its half that is bridged with the caller;
- on the project's PJSIP office (``python -m tests.lab.offices start labpjsip``): a PJSIP
  phone, a FreePBX-style queue member ``Local/101@from-queue/n`` (two Local halves, one
  bridged with the caller, one with the phone), and a member whose Local channel Asterisk
  optimised away.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from pinc.ami.protocol import AMIConnection, Message
from tests.lab.lab import Office, PincRun, find_office, lab_dir, office_config, pinc_run
from tests.lab.parties import Parties
from tests.lab.sipp import Answer, Pause, Uac

TOKEN = "lab-transfer-token-0123456789abcdef"
SECRET = "lab-transfer-secret-0123456789"
CALLER = "79035550011"
DID_101 = "74951230101"


class Ami:
    """A small AMI session of the test's own: actions, and every event it saw."""

    def __init__(self, office: Office, transcript: Path) -> None:
        self.office = office
        self.transcript = transcript  # every byte Asterisk sent this session
        self.events: list[Message] = []
        self.replies: dict[str, Message] = {}
        self._seq = 0
        self._conn = AMIConnection(expect_banner=True)
        self._stream: trio.SocketStream | None = None
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._stream = await trio.open_tcp_stream(self.office.ami_host, self.office.ami_port)
        started = False
        async with self._stream:
            raw = self.transcript.open("wb")
            login = self._send_bytes(
                "Login", [("Username", self.office.ami_user), ("Secret", self.office.ami_secret)]
            )
            await self._stream.send_all(login[1])
            while True:
                data = await self._stream.receive_some(65536)
                if not data:
                    return
                raw.write(data)
                raw.flush()
                self._conn.feed(data)
                for msg in self._conn.messages():
                    if not isinstance(msg, Message):
                        continue
                    if msg.is_event:
                        self.events.append(msg)
                    elif msg.action_id:
                        self.replies[msg.action_id] = msg
                        if msg.action_id == login[0] and not started:
                            started = True
                            task_status.started()
                self._changed.set()
                self._changed = trio.Event()

    def _send_bytes(self, action: str, fields: list[tuple[str, str]]) -> tuple[str, bytes]:
        self._seq += 1
        aid = f"lab-{self._seq}"
        lines = [("Action", action), ("ActionID", aid), *fields]
        return aid, ("".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n").encode()

    async def action(self, action: str, fields: list[tuple[str, str]]) -> Message:
        assert self._stream is not None
        aid, data = self._send_bytes(action, fields)
        await self._stream.send_all(data)
        with trio.fail_after(10):
            while aid not in self.replies:
                await self._changed.wait()
        return self.replies[aid]

    async def wait_event(self, pred: Callable[[Message], bool], timeout: float = 30) -> Message:
        seen = 0
        with trio.fail_after(timeout):
            while True:
                for msg in self.events[seen:]:
                    if pred(msg):
                        return msg
                seen = len(self.events)
                await self._changed.wait()


def _http(run: PincRun, method: str, path: str, data: dict[str, str] | None = None) -> Any:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(
        run.url + path, data=body, method=method, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            text = r.read().decode()
            return r.status, text
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _live_call(run: PincRun, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    with trio.fail_after(30):
        while True:
            status, text = await trio.to_thread.run_sync(_http, run, "GET", "/api/live")
            if status == 200:
                for call in json.loads(text)["calls"]:
                    if pred(call):
                        return dict(call)
            await trio.sleep(0.2)


async def _ended_call(run: PincRun, call_id: str) -> dict[str, Any]:
    with trio.fail_after(40):
        while True:
            calls = await trio.to_thread.run_sync(run.calls)
            for call in calls:
                if call["id"] == call_id and call["status"] not in ("ringing", "answered"):
                    return dict(call)
            await trio.sleep(0.5)


def _dest(prefix: str) -> Callable[[Message], bool]:
    return lambda m: (
        m.name == "DialEnd"
        and m.get("DialStatus") == "ANSWER"
        and m.get("DestChannel").startswith(prefix)
    )


async def _local_transfer(office: Office, run: PincRun, mode: str) -> dict[str, Any]:
    async with trio.open_nursery() as nursery:
        ami = Ami(office, run.config_path.parent / "driver.ami")
        await nursery.start(ami.run)
        reply = await ami.action(
            "Originate",
            [
                ("Channel", f"Local/{DID_101}@from-trunk"),
                ("Context", "sim-caller"),
                ("Exten", "hold"),
                ("Priority", "1"),
                ("CallerID", f'"{CALLER}" <{CALLER}>'),
                ("Async", "true"),
                ("Variable", f"SIM_CALLER={CALLER}"),
                ("Variable", "__RINGTIME_101=1"),
                ("Variable", "__RINGTIME_102=1"),
            ],
        )
        assert reply.name == "Success", reply.fields
        answered = await ami.wait_event(_dest("Local/101@phones"))
        ext101 = answered.get("DestChannel")  # 101's half that is bridged with the caller
        call = await _live_call(run, lambda c: c.get("answered_by") == "101")
        status, text = await trio.to_thread.run_sync(
            _http,
            run,
            "POST",
            "/transfer",
            {"secret": SECRET, "call": call["id"], "to": "102", "mode": mode},
        )
        assert (status, text) == (200, "Success")
        await ami.wait_event(_dest("Local/102@phones"))
        if mode == "attended":
            await trio.sleep(1)
            await ami.action("Hangup", [("Channel", ext101)])  # 101 hangs up: complete
            await ami.wait_event(lambda m: m.name == "AttendedTransfer")
        await _live_call(run, lambda c: c["id"] == call["id"] and c.get("answered_by") == "102")
        await trio.sleep(2)  # the caller talks with 102
        await ami.action("Hangup", [("Channel", "/^Local\\//")])
        ended = await _ended_call(run, call["id"])
        nursery.cancel_scope.cancel()
    return ended


@pytest.mark.parametrize("mode", ["blind", "attended"])
def test_transfer_on_the_local_channel_office(
    local_office: Office, tmp_path: Path, mode: str
) -> None:
    config = office_config(local_office, tmp_path, web={"token": TOKEN}, crm={"secret": SECRET})
    with pinc_run(config, tmp_path) as run:
        deadline = time.monotonic() + 20
        while '"connected": true' not in json.dumps(_ping(run)) and time.monotonic() < deadline:
            time.sleep(0.2)
        call = trio.run(_local_transfer, local_office, run, mode)
    assert call["status"] == "completed"
    assert call["answered_by"] == "102"
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [("crm", "101", "102")]
    assert [(x["ext"], x["result"]) for x in call["legs"]] == [
        ("101", "answered"),
        ("102", "answered"),
    ]


def _ping(run: PincRun) -> Any:
    status, text = _http(run, "GET", "/ping")
    return json.loads(text) if status == 200 else {}


# ---- the PJSIP office: phones and carriers are sipp (tests/lab/office, tests/lab/parties) ----

DID_FPBX_RINGALL = "74951230001"  # queue: Local/101@from-queue/n, Local/102@from-queue/n
DID_FPBX_LINEAR = "74951230004"  # queue: Local/101@from-queue (optimised away), 102, 103


@pytest.fixture
def lab_office() -> Office:
    """The project's own PJSIP office (``python -m tests.lab.offices start labpjsip``)."""
    if lab_dir() is None:
        pytest.skip("the lab tier needs PINC_LAB (see tests/lab/README.md)")
    office = find_office("labpjsip")
    if office is None:
        pytest.skip("no labpjsip office in $PINC_LAB (python -m tests.lab.offices start)")
    return office


async def _pjsip_transfer(office: Office, run: PincRun, did: str, mode: str) -> dict[str, Any]:
    folder = run.config_path.parent / "sipp"
    async with trio.open_nursery() as nursery:
        ami = Ami(office, run.config_path.parent / "driver.ami")
        await nursery.start(ami.run)
        parties = Parties(dict(office.raw), folder, nursery)
        try:
            await parties.phone("101", Answer("answer", ring_ms=1000))
            # 102 rings with 101 in the ring-all queue: it answers only after the queue gave
            # up on it (101 answers first), i.e. when the transfer rings it
            await parties.phone("102", Answer("answer", ring_ms=3000))
            caller = await parties.call(Uac(CALLER, did, name=CALLER, steps=[Pause(60000)]))
            answered = await ami.wait_event(
                lambda m: (
                    m.name in ("DialEnd", "AgentConnect")
                    and m.get("DialStatus", "ANSWER") == "ANSWER"
                    and "101" in m.get("DestChannel")
                )
            )
            assert answered is not None
            call = await _live_call(run, lambda c: c.get("answered_by") == "101")
            status, text = await trio.to_thread.run_sync(
                _http,
                run,
                "POST",
                "/transfer",
                {"secret": SECRET, "call": call["id"], "to": "102", "mode": mode},
            )
            assert (status, text) == (200, "Success")
            if mode == "attended":
                # the consultation: 101 talks with 102, then hangs up to complete
                await ami.wait_event(_dest("PJSIP/102"))
                await trio.sleep(1)
                ext101 = _bridged_channel_of_101(ami)
                await ami.action("Hangup", [("Channel", ext101)])
                await ami.wait_event(lambda m: m.name == "AttendedTransfer")
            await _live_call(run, lambda c: c["id"] == call["id"] and c.get("answered_by") == "102")
            await trio.sleep(2)  # the caller talks with 102
            caller.process.send_signal(signal.SIGTERM)
            await ami.action("Hangup", [("Channel", "/^PJSIP\\/trunk-/")])
            ended = await _ended_call(run, call["id"])
        finally:
            with trio.CancelScope(shield=True):
                await parties.stop()
        nursery.cancel_scope.cancel()
    return ended


def _bridged_channel_of_101(ami: Ami) -> str:
    """The channel of 101 that is in a bridge now (PJSIP/101-…, or a Local member's half)."""
    inside: dict[str, str] = {}
    for m in ami.events:
        if m.name == "BridgeEnter":
            inside[m.get("Uniqueid")] = m.get("Channel")
        elif m.name in ("BridgeLeave", "Hangup"):
            inside.pop(m.get("Uniqueid"), None)
    found = [c for c in inside.values() if c.startswith(("PJSIP/101-", "Local/101@"))]
    assert found, inside
    return found[-1]


@pytest.mark.parametrize("mode", ["blind", "attended"])
@pytest.mark.parametrize(
    "did",
    [DID_101, DID_FPBX_RINGALL, DID_FPBX_LINEAR],
    ids=["pjsip-phone", "local-member", "local-member-optimised"],
)
def test_transfer_on_the_pjsip_office(
    lab_office: Office, tmp_path: Path, did: str, mode: str
) -> None:
    config = office_config(lab_office, tmp_path, web={"token": TOKEN}, crm={"secret": SECRET})
    with pinc_run(config, tmp_path) as run:
        deadline = time.monotonic() + 20
        while '"connected": true' not in json.dumps(_ping(run)) and time.monotonic() < deadline:
            time.sleep(0.2)
        call = trio.run(_pjsip_transfer, lab_office, run, did, mode)
    assert call["status"] == "completed"
    assert call["answered_by"] == "102"
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [("crm", "101", "102")]
    assert call["legs"][0]["ext"] == "101"
    assert ("102", "answered") in [(x["ext"], x["result"]) for x in call["legs"]]
