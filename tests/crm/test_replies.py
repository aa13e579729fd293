"""Failure classification: the CRM's answers as the real vtiger 8.2 and SalesPlatform 7.2
gave them (the bodies below were captured from the lab CRMs), and what each means."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from pinc.crm.replies import classify
from tests.crm.conftest import CrmParts, crm_config, wait_until
from tests.crm.fakesalesplatform import RESTRICTED, FakeSalesPlatform
from tests.crm.fakevtiger import FakeVtiger
from tests.crm.minijournal import MiniFeed, MiniJournal, rows
from tests.crm.scenarios import call_snapshot, change

AUTH = ('<?xml version="1.0" encoding="utf-8"?><Response><Authentication>Failure'
        "</Authentication></Response>")
DIAL = ('<?xml version="1.0" encoding="utf-8"?><Response><Dial><Authentication>Success'
        "</Authentication><Number>SIP/101</Number><Number>SIP/102</Number></Dial></Response>")
NOT_FOUND = "<!doctype html><html><head><title>404 Not Found</title></head><body></body></html>"
FATAL = ("<br />\n<b>Fatal error</b>:  Uncaught Error: Class 'SPNotifications_API_Model' not "
         "found in /var/www/modules/PBXManager/models/Record.php:88")
WARNING = ("<br />\n<b>Warning</b>:  count(): Parameter must be an array in "
           "<b>/var/www/modules/PBXManager/connectors/PBXManager.php</b> on line <b>251</b>"
           "<br />\n")


@pytest.mark.parametrize(("status", "body", "result", "state", "words"), [
    (200, "", "ok", "ok", ""),  # every SalesPlatform answer, stock vtiger's updates
    (200, "\n", "ok", "ok", ""),
    (200, DIAL, "ok", "ok", ""),  # stock vtiger's StartApp
    (200, WARNING + DIAL, "ok", "ok", ""),  # display_errors on: a notice before success
    (200, WARNING, "ok", "ok", ""),
    (200, AUTH, "auth", "auth-failed", "Authentication Failure"),
    (200, RESTRICTED, "retry", "error", "restricted file"),  # SalesPlatform inbound StartApp
    (200, FATAL, "retry", "error", "Fatal error"),
    (200, WARNING + FATAL, "retry", "error", "Fatal error"),
    (200, "<!DOCTYPE html><html><body>Login</body></html>", "retry", "error", "HTML page"),
    (500, "", "retry", "unreachable", "HTTP 500"),  # vtiger with its database down
    (404, NOT_FOUND, "retry", "error", "HTML page"),
    (403, "Forbidden", "retry", "error", "HTTP 403"),
    (200, "Error", "retry", "error", "'Error'"),
])
def test_classify(status: int, body: str, result: str, state: str, words: str) -> None:
    outcome = classify(status, body)
    assert (outcome.result, outcome.state) == (result, state)
    assert words in outcome.error
    assert "\n" not in outcome.error and len(outcome.error) < 400


def test_an_excerpt_never_carries_a_whole_page() -> None:
    outcome = classify(200, "x" * 10_000)
    assert outcome.result == "retry" and len(outcome.error) < 200


async def test_failure_in_a_200_stays_pending_and_shows(nursery: trio.Nursery, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """SalesPlatform's answer to an inbound StartApp is an error text in an HTTP 200: the
    callback is not delivered, /ping's state says why, the log says it once."""
    crm = FakeSalesPlatform()
    await nursery.start(crm.run)
    config = crm_config(crm.port, tmp_path, profile="salesplatform", retry_min=0.01,
                        retry_max=0.02)
    journal = MiniJournal(tmp_path / "pinc.db", MiniFeed())
    parts = CrmParts(config, journal, journal.feed)
    # a StartApp as pinc 0.1 queued it for a call that rang nobody
    journal.conn.execute(
        "INSERT INTO outbox (call_id, kind, payload, created_at) VALUES (?, ?, ?, ?)",
        ("s1", "StartApp", '{"callUUID": "s1", "callerIdNumber": "79035550011", '
                           '"channel": "SIP/trunk-1"}', time.time()))
    with trio.fail_after(10):
        await parts.start(nursery)
        await wait_until(lambda: parts.worker.status()["state"] == "error")
        await wait_until(lambda: len(crm.accepted) >= 3)
    status = parts.worker.status()
    assert "restricted file" in status["last_error"]
    (row,) = rows(journal.path)
    assert row["state"] == "pending" and row["attempts"] >= 2
    assert "restricted file" in row["last_error"]
    assert crm.rows == []
    logged = [r for r in caplog.records if "restricted file" in r.getMessage()]
    assert len(logged) == 1


async def test_answers_of_a_healthy_vtiger_are_deliveries(nursery: trio.Nursery,
                                                          tmp_path: Path) -> None:
    vtiger = FakeVtiger()
    await nursery.start(vtiger.run)
    config = crm_config(vtiger.port, tmp_path)
    journal = MiniJournal(tmp_path / "pinc.db", MiniFeed())
    parts = CrmParts(config, journal, journal.feed)
    call = call_snapshot(id="v1", status="completed", answered_by="101", talk=3, duration=5,
                         ended_at="2026-11-24T00:42:11Z",
                         legs=[{"ext": "101", "result": "answered"}])
    with trio.fail_after(10):
        await parts.start(nursery)
        await journal.submit([change("call.ended", call)])
        await wait_until(lambda: {r["state"] for r in rows(journal.path)} == {"done"})
    assert parts.worker.status()["state"] == "ok"
    assert vtiger.row("v1") is not None
