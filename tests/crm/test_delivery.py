"""The outbox worker against the fake vtiger: rows, order, outages, auth failure, restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from pinc import metrics
from pinc.calls.model import CallChange
from pinc.config import Config
from pinc.crm.delivery import DeliveryWorker
from pinc.crm.outbox import make_outbox_hook
from pinc.web import tickets
from tests.crm.conftest import crm_config, wait_until
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.minijournal import MiniJournal, rows
from tests.crm.scenarios import answered_inbound_changes, call_snapshot, change


def inbound_answered(call_id: str = "c1", number: str = "79161234567") -> list[CallChange]:
    return answered_inbound_changes(call_id, number)


def outbound_answered(call_id: str = "c2") -> list[CallChange]:
    start = call_snapshot(id=call_id, direction="outbound", **{"from": "102", "to": "79035550102"},
                          started_at="2026-11-24T00:23:51Z")
    answered = {**start, "status": "answered", "answered_by": "102"}
    ended = {**answered, "status": "completed", "ended_at": "2026-11-24T00:24:06Z",
             "duration": 15, "talk": 12}
    return [change("call.started", start), change("call.answered", answered),
            change("call.ended", ended)]


def inbound_missed(call_id: str = "c3") -> list[CallChange]:
    start = call_snapshot(id=call_id)
    ended = {**start, "status": "missed", "ended_at": "2026-11-24T00:42:16Z", "duration": 10,
             "legs": [{"ext": "101", "result": "cancelled"}]}
    return [change("call.started", start), change("call.ended", ended)]


async def deliver(config: Config, journal: MiniJournal, batches: list[list[CallChange]],
                  until: Any, worker: DeliveryWorker | None = None) -> DeliveryWorker:
    journal.add_batch_hook(make_outbox_hook(config))
    worker = worker or DeliveryWorker(config, journal, journal.feed)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            for batch in batches:
                await journal.submit(batch)
            await wait_until(until)
            nursery.cancel_scope.cancel()
    return worker


def done(journal: MiniJournal) -> list[dict[str, Any]]:
    return rows(journal.path, "SELECT * FROM outbox WHERE state = 'done' ORDER BY id")


def write_recording(config: Config, name: str) -> None:
    (Path(config.pbx.recordings_dir) / name).write_bytes(b"RIFF" + b"\0" * 2000)


async def test_rows_as_vtiger_keeps_them(vtiger: FakeVtiger, journal: MiniJournal,
                                         tmp_path: Path) -> None:
    config = crm_config(vtiger.port, tmp_path)
    write_recording(config, "c1.wav")
    batches = [[c] for c in inbound_answered() + outbound_answered() + inbound_missed()]
    await deliver(config, journal, batches,
                  lambda: len(done(journal)) == 12)

    a = vtiger.row("c1")
    assert a is not None
    assert (a["direction"], a["callstatus"], a["user"], a["smownerid"]) == (
        "inbound", "completed", 5, 5)
    assert (a["customer"], a["customertype"], a["customernumber"]) == (2, "Contacts", "79161234567")
    assert (a["starttime"], a["endtime"]) == ("2026-11-24 00:42:06", "2026-11-24 00:42:48")
    assert (a["totalduration"], a["billduration"]) == (42, 35)
    sig = tickets.signature(config.crm.secret, "recording", "c1")
    assert a["recordingurl"] == f"http://pbx.example:8099/recording?id=c1&sig={sig}"
    assert config.crm.secret not in a["recordingurl"]

    b = vtiger.row("c2")
    assert b is not None
    assert (b["direction"], b["callstatus"], b["user"], b["customer"], b["customertype"]) == (
        "outbound", "completed", 6, 3, "Leads")
    assert (b["customernumber"], b["totalduration"], b["billduration"]) == ("79035550102", 15, 12)
    assert b["recordingurl"] is None

    c = vtiger.row("c3")
    assert c is not None
    assert (c["direction"], c["callstatus"], c["user"], c["smownerid"]) == (
        "inbound", "no-answer", None, 1)
    assert len(vtiger.rows) == 3
    # per call: StartApp first, then the rest in the order they were queued, none twice
    kinds = [(p["callUUID"], p["callstatus"]) for p in vtiger.accepted]
    assert [k for u, k in kinds if u == "c1"] == [
        "StartApp", "DialAnswer", "Hangup", "EndCall", "Record"]
    assert [k for u, k in kinds if u == "c3"] == ["StartApp", "Hangup", "EndCall"]


async def test_auth_failure_pauses_until_retry(vtiger: FakeVtiger, journal: MiniJournal,
                                               tmp_path: Path) -> None:
    config = crm_config(vtiger.port, tmp_path)
    vtiger.secret = "something-else"
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, journal.feed)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await journal.submit(inbound_missed())
            await wait_until(lambda: worker.status()["state"] == "auth-failed")
            assert metrics.CRM_AUTH_FAILED._value.get() == 1
            assert "Authentication Failure" in worker.status()["last_error"]
            assert vtiger.rows == []
            assert {r["state"] for r in rows(journal.path)} == {"pending"}
            vtiger.secret = config.crm.secret  # the administrator fixes vtiger's side
            worker.request_retry()
            await wait_until(lambda: len(done(journal)) == 3)
            nursery.cancel_scope.cancel()
    assert worker.status()["state"] == "ok"
    assert metrics.CRM_AUTH_FAILED._value.get() == 0
    row = vtiger.row("c3")
    assert row is not None and row["callstatus"] == "no-answer"


async def test_cli_retry_and_drop_go_through_the_running_service(
    vtiger: FakeVtiger, tmp_path: Path
) -> None:
    """`pinc outbox retry|drop` while pinc runs: the running pinc (it holds the journal's
    lock) does the write through its API and its worker acts at once; no poll, no second
    writer. Afterwards, with pinc stopped, the command writes the file itself."""
    from click.testing import CliRunner

    from pinc.cli import main
    from pinc.config import replace
    from pinc.feed import FeedHub
    from pinc.journal.store import Journal
    from pinc.services import Services
    from pinc.web.server import WebServer
    from tests.web.harness import FakeAmi, FakeIngest, FakeRouter

    port = trio.socket.socket()
    await port.bind(("127.0.0.1", 0))
    web_port = port.getsockname()[1]
    port.close()
    config = replace(crm_config(vtiger.port, tmp_path),
                     web={"listen": f"127.0.0.1:{web_port}", "token": "tok-0123456789abcdef"})
    toml = tmp_path / "pinc.toml"
    toml.write_text(
        f'[journal]\npath = "{config.journal.path}"\n'
        f'[web]\nlisten = "127.0.0.1:{web_port}"\ntoken = "tok-0123456789abcdef"\n'
    )
    vtiger.secret = "something-else"
    feed = FeedHub()
    journal = Journal(config, feed)
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, feed)
    services = Services(config=config, ami=FakeAmi(), journal=journal, feed=feed,
                        ingest=FakeIngest(), router=FakeRouter(), crm=worker)

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["outbox", *args, "--config", str(toml)])
        assert result.exit_code == 0, result.output
        return result.output

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            await nursery.start(worker.run)
            await nursery.start(WebServer(services).run)
            await journal.submit(inbound_missed())
            await journal.submit(inbound_missed("c4"))
            await wait_until(lambda: worker.status()["state"] == "auth-failed")
            # the calls go out side by side: whichever was first refused records why
            tried = [r for r in rows(Path(config.journal.path)) if r["attempts"]]
            assert tried and all(r["attempts"] == 1 and "Authentication" in r["last_error"]
                                 for r in tried)
            c4 = [r["id"] for r in rows(Path(config.journal.path)) if r["call_id"] == "c4"]
            out = await trio.to_thread.run_sync(cli, "drop", *map(str, c4))
            assert f"{len(c4)} callback(s) dropped (by the running pinc" in out
            vtiger.secret = config.crm.secret  # the administrator fixes vtiger's side
            out = await trio.to_thread.run_sync(cli, "retry")
            assert "by the running pinc" in out
            await wait_until(lambda: len([r for r in rows(Path(config.journal.path))
                                          if r["state"] == "done"]) == 3)
            nursery.cancel_scope.cancel()
    assert worker.status()["state"] == "ok"
    assert vtiger.rows_of("c4") == []
    # pinc stopped: the command writes the file itself
    out = CliRunner().invoke(main, ["outbox", "retry", *map(str, c4), "--config", str(toml)])
    assert out.exit_code == 0 and "when pinc starts" in out.output, out.output
