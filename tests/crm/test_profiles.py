"""The callback profiles as pure functions, bad input, and a CRM URL that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from pinc.cli import main
from pinc.config import Config, replace
from pinc.crm.callbacks import ELSEWHERE, NO_ANSWER, NORMAL, leg_cause
from pinc.crm.delivery import DeliveryWorker
from pinc.crm.vtiger import (
    crm_number,
    crm_time,
    form_params,
    make_outbox_hook,
    plan_callbacks,
    recording_exists,
    recording_link,
)
from pinc.web import tickets
from tests.crm.conftest import crm_config, wait_until
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.minijournal import MiniJournal, rows
from tests.crm.scenarios import answered_inbound_changes, call_snapshot, change


def test_number_formats() -> None:
    r = Config().routing
    assert crm_number("+7 (916) 123-45-67", "digits", r) == "79161234567"
    # a national number in any form gets the country code: vtiger matches tails of +7 916...
    assert crm_number("89161234567", "digits", r) == "79161234567"
    assert crm_number("9161234567", "digits", r) == "79161234567"
    assert crm_number("103", "digits", r) == "103"
    assert crm_number("+1 212 555 0100", "digits", r) == "12125550100"
    assert crm_number("89161234567", "national", r) == "9161234567"
    assert crm_number("79161234567", "national", r) == "9161234567"
    assert crm_number("9161234567", "plus", r) == "+79161234567"
    assert crm_number("89161234567", "plus", r) == "+79161234567"
    assert crm_number("101", "plus", r) == "101"
    assert crm_number('"<script>"[1]{', "digits", r) == "1"


def test_times_in_crm_zone() -> None:
    assert crm_time("2026-11-24T00:42:06Z", "UTC") == "2026-11-24 00:42:06"
    assert crm_time("2026-11-24T00:42:06Z", "Europe/Moscow") == "2026-11-24 03:42:06"
    assert crm_time("garbage", "UTC") == ""


def test_recording_rules(tmp_path: Path) -> None:
    config = crm_config(1, tmp_path)
    rec = Path(config.pbx.recordings_dir)
    (rec / "ok.wav").write_bytes(b"x" * 100)
    (rec / "empty.wav").write_bytes(b"x" * 44)  # MixMonitor's header for an unanswered call
    (tmp_path / "outside.wav").write_bytes(b"x" * 100)
    assert recording_exists(config, "ok.wav")
    assert not recording_exists(config, "empty.wav")
    assert not recording_exists(config, "../outside.wav")
    assert not recording_exists(config, "missing.wav")
    sig = tickets.signature(config.crm.secret, "recording", "c1")
    link = f"http://pbx.example:8099/recording?id=c1&sig={sig}"
    assert recording_link(config, "c1") == link
    long = replace(config, web={"public_url": "http://" + "p" * 150 + ".example"})
    assert recording_link(long, "c1") is None  # would not fit vtiger's varchar(200)
    sp = replace(config, crm={"profile": "salesplatform"})
    assert recording_link(sp, "c1") == link  # ListenRecord adds &secret= server-side
    params = form_params("Record", {"recordinglink": link}, config.crm)
    assert params["recordinglink"] == link
    assert params["vtigersignature"] == "pinc-lab-secret-42"


def test_no_secret_in_any_recording_link(tmp_path: Path) -> None:
    """0.1.0 sent ``/recording?id=c1&secret=<crm.secret>``: the master key in every row."""
    config = crm_config(1, tmp_path)
    for profile in ("vtiger", "salesplatform"):
        cfg = replace(config, crm={"profile": profile})
        link = recording_link(cfg, "0abc123")
        assert link is not None
        params = form_params("Record", {"recordinglink": link}, cfg.crm)
        assert cfg.crm.secret not in params["recordinglink"]
        assert "secret" not in params["recordinglink"]
    assert recording_link(replace(config, crm={"secret": ""}), "c1") is None


@pytest.mark.parametrize("queued", [
    "http://pbx.example:8099/recording?id=c1&secret=",  # 0.1.0 vtiger profile
    "http://pbx.example:8099/recording?id=c1",  # 0.1.0 salesplatform profile
])
def test_links_queued_by_0_1_0_are_sent_signed(tmp_path: Path, queued: str) -> None:
    """An outbox row written before the upgrade must not leak the secret when it is sent."""
    config = crm_config(1, tmp_path)
    params = form_params("Record", {"recordinglink": queued}, config.crm)
    assert params["recordinglink"] == recording_link(config, "c1")
    other = form_params("Record", {"recordinglink": "http://x/rec.wav"}, config.crm)
    assert other["recordinglink"] == "http://x/rec.wav"


def test_outbound_startapp_carries_customer_in_caller_id_name(tmp_path: Path) -> None:
    config = crm_config(1, tmp_path)
    call = call_snapshot(direction="outbound", **{"from": "101", "to": "+7 (916) 123-45-67"})
    (cb,) = plan_callbacks(change("call.started", call), [], config)
    assert cb.kind == "StartApp"
    assert cb.params["callerIdNumber"] == "101"
    assert cb.params["callerIdName"] == "79161234567"
    assert cb.params["channel"].startswith("SIP/101-")
    internal = call_snapshot(direction="internal", **{"from": "101", "to": "102"})
    assert plan_callbacks(change("call.ended", internal), [], config) == []


@pytest.mark.parametrize("caller", ["<79161234567>", "[VIP] 79161234567",
                                    '{"vip": true} 79161234567',
                                    '"Anna" <+7 (916) 123-45-67>', "'79161234567'"])
async def test_hostile_caller_ids_are_normalised(vtiger: FakeVtiger, journal: MiniJournal,
                                                 tmp_path: Path, caller: str) -> None:
    config = crm_config(vtiger.port, tmp_path)
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, journal.feed)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await journal.submit(answered_inbound_changes("h1", caller))
            await wait_until(lambda: not rows(journal.path,
                                              "SELECT id FROM outbox WHERE state='pending'"))
            nursery.cancel_scope.cancel()
    row = vtiger.row("h1")
    assert row is not None
    assert (row["customernumber"], row["customer"], row["callstatus"]) == (
        "79161234567", 2, "completed")


@pytest.mark.parametrize("mode, state, words", [
    ("html", "error", "HTML page"),
    ("404", "error", "HTTP 404"),
    ("503", "unreachable", "HTTP 503"),
])
async def test_wrong_crm_url_keeps_data(vtiger: FakeVtiger, journal: MiniJournal,
                                        tmp_path: Path, mode: str, state: str,
                                        words: str) -> None:
    config = crm_config(vtiger.port, tmp_path)
    vtiger.mode = mode
    journal.add_batch_hook(make_outbox_hook(config))
    worker = DeliveryWorker(config, journal, journal.feed)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await journal.submit(answered_inbound_changes("w1"))
            await wait_until(lambda: worker.status()["state"] == state)
            nursery.cancel_scope.cancel()
    assert words in worker.status()["last_error"]
    assert {r["state"] for r in rows(journal.path)} == {"pending"}
    assert vtiger.rows == []


def test_outbox_cli(tmp_path: Path, journal: MiniJournal) -> None:
    db = tmp_path / "pinc.db"
    conn = journal.conn
    for i, (call, state) in enumerate([("a", "dead"), ("a", "dead"), ("b", "pending"),
                                       ("c", "done")]):
        conn.execute("INSERT INTO outbox (call_id, kind, payload, state, created_at, last_error)"
                     " VALUES (?, ?, '{}', ?, 0, ?)", (call, f"K{i}", state, "HTTP 503"))
    toml = tmp_path / "pinc.toml"
    toml.write_text(f'[journal]\npath = "{db}"\n')
    runner = CliRunner()
    out = runner.invoke(main, ["outbox", "list", "--config", str(toml)])
    assert out.exit_code == 0, out.output
    assert "HTTP 503" in out.output and "dead: 2" in out.output
    out = runner.invoke(main, ["outbox", "list", "--dead", "--config", str(toml)])
    assert "K2" not in out.output and "K0" in out.output
    out = runner.invoke(main, ["outbox", "retry", "1", "--config", str(toml)])
    assert out.exit_code == 0 and "2 callback(s)" in out.output  # the call's later one too
    out = runner.invoke(main, ["outbox", "drop", "3", "--config", str(toml)])
    assert out.exit_code == 0 and "1 callback(s) dropped" in out.output
    states = [r["state"] for r in rows(db)]
    assert states == ["pending", "pending", "dropped", "done"]
    out = runner.invoke(main, ["outbox", "drop", "x1", "--config", str(toml)])
    assert out.exit_code != 0 and "not an outbox id" in out.output


def test_lookup_cli(tmp_path: Path) -> None:
    toml = tmp_path / "pinc.toml"
    toml.write_text('[crm]\nurl = "http://127.0.0.1:9"\naccess_key = "k"\nusername = "u"\n'
                    'timeout = 1.0\n')
    out = CliRunner().invoke(main, ["crm", "lookup", "79161234567", "--config", str(toml)])
    assert out.exit_code != 0 and "cannot reach" in out.output


def _leg(result: str, cause: int, rang: str, ended: str) -> dict[str, object]:
    return {"ext": "101", "result": result, "cause": cause,
            "rang_at": f"2026-12-05T20:28:{rang}Z", "ended_at": f"2026-12-05T20:28:{ended}Z"}


def test_a_leg_that_rang_while_someone_answered_was_answered_elsewhere() -> None:
    # a ring group: Asterisk cancels the other phones with cause 26
    assert leg_cause([_leg("cancelled", 26, "02", "05")], False) == (ELSEWHERE, None)
    # a pickup ends the ringing phone with Normal Clearing, in the second of the answer
    picked = [_leg("cancelled", 16, "02", "05")]
    assert leg_cause(picked, False, ["2026-12-05T20:28:05Z"]) == (ELSEWHERE, None)
    assert leg_cause(picked, False, [None, "2026-12-05T20:28:06Z"]) == (ELSEWHERE, None)
    # the caller hung up while a transfer target rang: the answer was long before it rang
    late = [_leg("cancelled", 16, "20", "30")]
    assert leg_cause(late, False, ["2026-12-05T20:28:05Z"]) == (NORMAL, NO_ANSWER)
    # a phone that talked is never "elsewhere"
    assert leg_cause(picked, True, ["2026-12-05T20:28:05Z"]) == (NORMAL, None)
