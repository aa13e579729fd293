"""pinc's vtiger module, its PHP without vtiger: tickets, requests to a real pinc, permissions.

The PHP runs in ``php`` (tests/module/php/harness.php) with a fake CRM; pinc is the real web
app (tests/web/harness.py: real Hypercorn, journal and feed), or a recorder where the test is
about the exact shape of a request.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from pinc import metrics
from pinc.web import tickets
from tests.module.conftest import MODULE_SRC, run_php, run_php_sync
from tests.module.recorder import Answer, Recorder
from tests.web.harness import SECRET, Env, call_dict, change, make_config, response, start_env

NOW = 1800000000


def crm(url: str, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ext": "101",
        "name": "Manager One",
        "permitted": {"PBXManager:ReceiveIncomingCalls": True},
        "colleagues": [{"name": "Manager Two", "ext": "102"}],
        "settings": {"url": url, "secret": SECRET},
    }
    spec.update(over)
    return spec


async def op(php: str, tmp: Path, spec: dict[str, Any], name: str, *args: Any,
             now: float = NOW) -> Any:
    """The ``result`` of one operation of the module's Service, for the fake CRM ``spec``."""
    return (await run_php(php, tmp, {"crm": spec, "now": now, "op": name, "args": list(args)}))[
        "result"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- the files themselves -------------------------------------------------------------

PHP_FILES = sorted(MODULE_SRC.rglob("*.php")) + sorted(Path(__file__).parent.rglob("*.php"))
# PHP 8 syntax and functions that SalesPlatform's PHP 7.4 does not have.
NOT_IN_PHP74 = re.compile(
    r"\?->|\bmatch\s*\(|#\[|\bstr_(?:contains|starts_with|ends_with)\s*\(|\benum\s+\w|"
    r"\breadonly\s|\bfn\s*\(.*\)\s*:\s*never|\bnew\s+class\s*\(.*\)\s*extends"
)


@pytest.mark.parametrize("path", PHP_FILES, ids=lambda p: str(p.relative_to(MODULE_SRC.parents[1])))
def test_php_lint(php: str, path: Path) -> None:
    import subprocess

    done = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not NOT_IN_PHP74.search(path.read_text(encoding="utf-8")), f"{path}: PHP 8 only"


# ---- tickets: the same bytes as pinc/web/tickets.py -----------------------------------


def test_ticket_minting_matches_the_fixed_vector(php: str, tmp_path: Path) -> None:
    mint = run_php_sync(php, tmp_path, {
        "crm": {}, "now": NOW, "op": "mint", "args": ["pinc-lab-secret-42", "101", NOW, 60]})
    assert mint["result"] == "v1.ws.101.1800000060.o64b1Y3z9LYMFzPei-u3iA"
    sig = run_php_sync(php, tmp_path, {
        "crm": {}, "now": NOW, "op": "signature",
        "args": ["pinc-lab-secret-42", "recording", "0abc123", 0]})
    assert sig["result"] == "Bxx9yHzMu1_8vcb8_09_Xg"


@pytest.mark.parametrize(("master", "subject", "ttl"), [
    ("1940898792584673c6e9a8a", "102", 300),
    ("пароль-юникод", "a_B-9", 3600),
    ("x" * 200, "Z" * 64, 1),
])
def test_php_tickets_are_what_pinc_accepts(
    php: str, tmp_path: Path, master: str, subject: str, ttl: int
) -> None:
    minted = run_php_sync(php, tmp_path, {
        "crm": {}, "now": NOW, "op": "mint", "args": [master, subject, NOW + 0.7, ttl]})["result"]
    assert minted == tickets.mint(master, "ws", subject, now=NOW + 0.7, ttl=ttl)
    assert tickets.parse(master, "ws", minted, now=NOW + 0.5).subject == subject
    sig = run_php_sync(php, tmp_path, {
        "crm": {}, "now": NOW, "op": "signature", "args": [master, "recording", subject, 0]})
    assert sig["result"] == tickets.signature(master, "recording", subject)


# ---- the card against a real pinc ------------------------------------------------------


async def _calls(env: Env) -> None:
    await env.put([
        change("call.started", call_dict("c101", legs=[{"ext": "101", "result": None}])),
        change("call.started", call_dict("c102", legs=[{"ext": "102", "result": None}])),
    ])


async def test_start_gives_a_websocket_that_shows_only_the_users_calls(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    env = await start_env(nursery, tmp_path)
    await _calls(env)
    out = await run_php(php, tmp_path, {"crm": crm(env.base), "now": time.time(), "op": "start"})
    result = out["result"]
    assert result["ok"] and result["ext"] == "101"
    assert result["colleagues"] == [{"name": "Manager Two", "ext": "102"}]
    assert result["ws"].startswith(f"ws://127.0.0.1:{env.port}/ws?ticket=v1.ws.101.")
    assert SECRET not in json.dumps(out)  # the secret never reaches the browser
    with trio.fail_after(10):
        async with open_websocket_url(result["ws"]) as ws:
            snap = json.loads(await ws.get_message())
    assert [c["id"] for c in snap["calls"]] == ["c101"]


async def test_start_uses_the_browser_url_when_set(php: str, tmp_path: Path) -> None:
    spec = crm("http://10.0.0.5:8099/")
    spec["settings"]["browser_url"] = "https://pbx.example.com/pinc"
    out = await run_php(php, tmp_path, {"crm": spec, "now": NOW, "op": "start"})
    assert out["result"]["ws"].startswith("wss://pbx.example.com/pinc/ws?ticket=v1.ws.101.")


@pytest.mark.parametrize(("why", "over", "code"), [
    ("no extension", {"ext": ""}, "no_extension"),
    ("not a ticket subject", {"ext": "10 1"}, "no_extension"),
    ("no Receive Incoming Calls", {"permitted": {}}, "not_permitted"),
    ("no app URL", {"settings": {"url": "", "secret": SECRET}}, "not_configured"),
    ("no secret", {"settings": {"url": "http://127.0.0.1:1", "secret": ""}}, "not_configured"),
])
async def test_no_card_without_extension_permission_or_settings(
    php: str, tmp_path: Path, why: str, over: dict[str, Any], code: str
) -> None:
    spec = crm("http://127.0.0.1:1")
    spec.update(over)
    for name in ("start", "live"):
        refusal = {"ok": False, "error": code, "detail": ""}
        assert await op(php, tmp_path, spec, name) == refusal, why


@pytest.mark.parametrize("why", ["expired", "forged", "other extension"])
async def test_bad_tickets_are_refused_and_logged_end_to_end(
    php: str, tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    """A ticket the PHP minted, but expired, under another secret, or used for another
    extension: pinc refuses it on /ws and on /calls/live, logs it once and counts it."""
    env = await start_env(nursery, tmp_path)
    now = time.time()
    secret = "not-the-crm-secret" if why == "forged" else SECRET
    when = now - 400 if why == "expired" else now
    spec = crm(env.base, settings={"url": env.base, "secret": secret})
    ws_url = (await op(php, tmp_path, spec, "start", now=when))["ws"]
    if why == "other extension":
        ws_url += "&ext=102"
    before = metrics.AUTH_FAILURES.labels(route="/ws")._value.get()
    caplog.set_level(logging.WARNING)
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(ws_url):
            pass
    assert info.value.status_code == 401
    assert metrics.AUTH_FAILURES.labels(route="/ws")._value.get() == before + 1
    # only warnings: a test's tmp path (in INFO lines) can contain the word "refused" too
    refusals = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.getMessage().startswith("refused")]
    assert len(refusals) == 1 and "/ws" in refusals[0]
    assert "v1.ws." not in refusals[0]  # the ticket itself is never logged
    if why != "other extension":
        live = await run_php(php, tmp_path, {"crm": spec, "now": when, "op": "live"})
        assert live["result"]["ok"] is False and live["result"]["error"] == "refused_secret"


async def test_live_answers_the_users_calls_from_pinc(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    env = await start_env(nursery, tmp_path)
    await _calls(env)
    out = await run_php(php, tmp_path, {"crm": crm(env.base), "now": time.time(), "op": "live"})
    assert out["result"]["ok"] is True
    assert [c["id"] for c in out["result"]["calls"]] == ["c101"]


async def test_pinc_down_is_connector_unreachable(php: str, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    for name, args in (("live", []), ("transfer", ["c101", "102", "blind"])):
        out = await run_php(php, tmp_path, {"crm": crm(down), "now": NOW, "op": name, "args": args})
        assert out["result"] == {"ok": False, "error": "unreachable", "detail": ""}
    status = await op(php, tmp_path, crm(down), "status")
    assert status["reachable"] is False
    assert [p[:2] for p in status["problems"]] == [["error", "unreachable"]]
    assert "does not answer at http://127.0.0.1:" in status["problems"][0][2]


async def test_a_pinc_that_never_answers_is_unreachable_within_the_deadline(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")  # accepts, never answers
    port = listeners[0].socket.getsockname()[1]
    started = trio.current_time()
    out = await run_php(php, tmp_path, {
        "crm": crm(f"http://127.0.0.1:{port}"), "now": NOW, "op": "live", "timeout": 1.0})
    assert out["result"]["error"] == "unreachable"
    assert trio.current_time() - started < 10
    for listener in listeners:
        await listener.aclose()


# ---- transfers through a real pinc ------------------------------------------------------


def _channels(env: Env) -> None:
    # The caller talks with 101; 103 talks with someone else on the same call (a
    # consultation): the transfer must act on 101's channel, the one pinc was given.
    env.ingest.channels["c101"] = [
        {"channel": "PJSIP/trunk-00000001", "role": "customer", "ext": "",
         "bridge": "b-1", "partner": "employee"},
        {"channel": "PJSIP/103-00000003", "role": "employee", "ext": "103",
         "bridge": "b-2", "partner": "employee"},
        {"channel": "PJSIP/101-00000002", "role": "employee", "ext": "101",
         "bridge": "b-1", "partner": "customer"},
    ]


async def test_transfer_reaches_asterisk_for_the_users_own_channel(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    env = await start_env(nursery, tmp_path)
    await _calls(env)
    _channels(env)
    out = await run_php(php, tmp_path, {
        "crm": crm(env.base), "now": NOW, "op": "transfer",
        "args": ["c101", "+7 916 000-00-01", "blind"]})
    assert out["result"] == {"ok": True, "call": "c101", "to": "79160000001", "mode": "blind"}
    name, fields = env.ami.actions[-1]
    assert name == "BlindTransfer"
    assert ("Channel", "PJSIP/101-00000002") in fields  # 101's, not 103's: pinc got ext=101
    assert ("Exten", "79160000001") in fields


async def test_attended_transfer_to_a_colleague(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    env = await start_env(nursery, tmp_path)
    await _calls(env)
    _channels(env)
    out = await run_php(php, tmp_path, {
        "crm": crm(env.base), "now": NOW, "op": "transfer", "args": ["c101", "102", "attended"]})
    assert out["result"]["ok"] is True
    assert env.ami.actions[-1][0] == "Atxfer"
    assert ("Exten", "102") in env.ami.actions[-1][1]


async def test_transfer_refusals_carry_the_reason(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    env = await start_env(nursery, tmp_path)
    await _calls(env)
    _channels(env)
    env.ami.reply = response("Error", Message="No such channel")
    out = await run_php(php, tmp_path, {
        "crm": crm(env.base), "now": NOW, "op": "transfer", "args": ["c101", "102", "blind"]})
    assert out["result"]["error"] == "pbx_refused"
    assert "No such channel" in out["result"]["detail"]
    assert out["log"] and SECRET not in out["log"][0]
    env.ami.reply = response()
    stranger = crm(env.base, ext="102")  # 102 is not on c101: pinc refuses, nothing moves
    before = len(env.ami.actions)
    other = await op(php, tmp_path, stranger, "transfer", "c101", "79160000001", "blind")
    assert other == {"ok": False, "error": "not_live", "detail": "no such call"}
    assert len(env.ami.actions) == before
    # A number pinc's dialling policy refuses (international, with no pbx.dial_patterns):
    # its reason, not "wrong secret", reaches the card.
    abroad = await op(php, tmp_path, crm(env.base), "transfer", "c101", "+44 20 7946 0000",
                      "blind")
    assert abroad == {"ok": False, "error": "refused_policy",
                      "detail": "to: not a number the dialling policy allows"}, abroad
    # A user whose CRM extension is not one of pinc's phones: pinc says why, the card shows it.
    odd = await op(php, tmp_path, crm(env.base, ext="sales_desk"), "transfer", "c101", "102",
                   "blind")
    assert odd == {"ok": False, "error": "refused_input",
                   "detail": "ext: not an employee extension"}, odd
    gone = await run_php(php, tmp_path, {
        "crm": crm(env.base), "now": NOW, "op": "transfer", "args": ["c102", "102", "blind"]})
    assert gone["result"]["error"] == "not_live"  # c102 has no channels: no longer live
    unknown = await run_php(php, tmp_path, {
        "crm": crm(env.base), "now": NOW, "op": "transfer", "args": ["nosuchcall", "102", "blind"]})
    assert unknown["result"]["error"] == "not_live"


@pytest.mark.parametrize(("args", "field"), [
    (["c1", "12a", "blind"], "to"),
    (["c1", "", "blind"], "to"),
    (["c1", "102\r\nAction: Originate", "blind"], "to"),
    (["../c1", "102", "blind"], "call"),
    (["c1", "102", "warm"], "mode"),
])
async def test_bad_transfer_input_never_reaches_pinc(
    php: str, tmp_path: Path, nursery: trio.Nursery, args: list[str], field: str
) -> None:
    recorder = Recorder()
    await nursery.start(recorder.run)
    out = await op(php, tmp_path, crm(f"http://127.0.0.1:{recorder.port}"), "transfer", *args)
    assert out == {"ok": False, "error": "bad_input", "detail": field}
    assert recorder.seen == []


# ---- the exact requests -----------------------------------------------------------------


async def test_requests_carry_the_secret_only_in_a_header_or_a_body(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    recorder = Recorder()
    await nursery.start(recorder.run)
    recorder.answers["/transfer"] = Answer(200, b"Success")
    recorder.answers["/ping"] = Answer(200, b'{"status": "ok"}')
    recorder.answers["/calls/live"] = Answer(200, b'{"ext": "101", "calls": []}')
    base = f"http://127.0.0.1:{recorder.port}"
    for name, args in (("transfer", ["c1", "102", "attended"]), ("status", []), ("live", [])):
        await op(php, tmp_path, crm(base), name, *args, now=time.time())
    transfer, ping, live = recorder.seen
    assert (transfer.method, transfer.target) == ("POST", "/transfer")
    assert transfer.headers["content-type"] == "application/x-www-form-urlencoded"
    from urllib.parse import parse_qs

    assert parse_qs(transfer.body.decode()) == {
        "secret": [SECRET], "call": ["c1"], "to": ["102"], "mode": ["attended"], "ext": ["101"]}
    assert (ping.method, ping.target, ping.headers["x-pinc-secret"]) == ("GET", "/ping", SECRET)
    assert live.path == "/calls/live" and list(live.query) == ["ticket"]
    assert tickets.parse(SECRET, "ws", live.query["ticket"][0], now=time.time()).subject == "101"
    for seen in recorder.seen:
        assert SECRET not in seen.target  # never in a URL
        assert seen.headers["connection"] == "close"


async def test_status_explains_what_pinc_reports(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    config = make_config(tmp_path, crm={"url": "http://127.0.0.1:1"})  # a CRM: delivery enabled
    env = await start_env(nursery, tmp_path, config=config)
    ok = await op(php, tmp_path, crm(env.base), "status")
    assert ok["reachable"] is True and ok["problems"] == []
    assert ok["ping"]["ami"]["asterisk_version"] == "22.10.1"
    env.ami.connected = False
    down = await op(php, tmp_path, crm(env.base), "status")
    assert [p[1] for p in down["problems"]] == ["ami_down"]
    (tmp_path / "nocrm").mkdir()
    plain = await start_env(nursery, tmp_path / "nocrm")  # pinc without crm.url
    alone = (await run_php(php, tmp_path, {"crm": crm(plain.base), "now": NOW, "op": "status"}))
    assert [p[1] for p in alone["result"]["problems"]] == ["crm_disabled"]


@pytest.mark.parametrize(("answer", "code"), [
    (Answer(403, b"Authentication Failure"), "refused_secret"),
    (Answer(200, b"<html>a proxy's page</html>"), "bad_answer"),
    (Answer(502, b"Bad Gateway"), "bad_answer"),
    (Answer(200, b'{"status": "degraded"}'), "no_details"),
])
async def test_status_of_something_else_than_a_trusting_pinc(
    php: str, tmp_path: Path, nursery: trio.Nursery, answer: Answer, code: str
) -> None:
    recorder = Recorder()
    await nursery.start(recorder.run)
    recorder.answers["/ping"] = answer
    out = await run_php(php, tmp_path, {
        "crm": crm(f"http://127.0.0.1:{recorder.port}"), "now": NOW, "op": "status"})
    assert [p[1] for p in out["result"]["problems"]] == [code]


@pytest.mark.parametrize(("ping", "codes"), [
    ({"status": "ok", "ami": {"connected": True}, "journal": {"ok": True},
      "crm": {"state": "ok", "backlog": 0, "oldest_age": 0, "enabled": True}}, []),
    ({"status": "ok", "ami": {"connected": True}, "journal": {"ok": True},
      "crm": {"state": "auth-failed", "backlog": 12, "oldest_age": 600, "enabled": True}},
     ["crm_auth", "backlog"]),
    ({"status": "ok", "ami": {"connected": True}, "journal": {"ok": True},
      "crm": {"state": "retrying", "backlog": 3, "oldest_age": 5, "enabled": True}},
     ["crm_failing"]),
    ({"status": "ok", "ami": {"connected": True}, "journal": {"ok": True},
      "crm": {"state": "disabled", "enabled": False}}, ["crm_disabled"]),
    ({"status": "degraded", "reason": "ingest stalled", "ami": {"connected": True},
      "journal": {"ok": True}, "crm": {"state": "ok", "enabled": True}}, ["degraded"]),
    ({"status": "degraded", "ami": {"connected": False}, "journal": {"ok": False}, "crm": {}},
     ["ami_down", "journal"]),
])
async def test_explain_ping(
    php: str, tmp_path: Path, nursery: trio.Nursery, ping: dict[str, Any], codes: list[str]
) -> None:
    recorder = Recorder()
    await nursery.start(recorder.run)
    recorder.answers["/ping"] = Answer(200, json.dumps(ping).encode())
    out = await run_php(php, tmp_path, {
        "crm": crm(f"http://127.0.0.1:{recorder.port}"), "now": NOW, "op": "status"})
    assert [p[1] for p in out["result"]["problems"]] == codes


# ---- permissions ------------------------------------------------------------------------

ANNA = {"id": "12", "name": "Anna Customer", "setype": "Contacts"}


def test_lookup_shows_a_record_the_user_may_see(php: str, tmp_path: Path) -> None:
    spec = crm("http://127.0.0.1:1", lookup={"79161234567": ANNA},
               owners={"12": {"name": "Manager One", "ext": "101"}})
    spec["permitted"]["Contacts:DetailView:12"] = True
    out = run_php_sync(php, tmp_path, {"crm": spec, "now": NOW, "op": "lookup",
                                       "args": ["+7 (916) 123-45-67"]})
    assert out["result"] == {
        "ok": True, "number": "79161234567", "found": True, "visible": True, "id": "12",
        "module": "Contacts", "name": "Anna Customer",
        "url": "index.php?module=Contacts&view=Detail&record=12",
        "owner": {"name": "Manager One", "ext": "101"},
    }
    assert "Contacts:DetailView:12" in out["asked"]


def test_lookup_hides_a_record_the_user_may_not_see(php: str, tmp_path: Path) -> None:
    spec = crm("http://127.0.0.1:1", lookup={"79161234567": ANNA})
    out = run_php_sync(php, tmp_path, {"crm": spec, "now": NOW, "op": "lookup",
                                       "args": ["79161234567"]})
    assert out["result"] == {"ok": True, "number": "79161234567", "found": True, "visible": False}
    assert "Anna" not in json.dumps(out["result"])


def test_lookup_offers_to_create_what_the_user_may_create(php: str, tmp_path: Path) -> None:
    spec = crm("http://127.0.0.1:1")
    spec["permitted"]["Leads:CreateView"] = True
    out = run_php_sync(php, tmp_path, {"crm": spec, "now": NOW, "op": "lookup",
                                       "args": ["79035550199"]})
    assert out["result"] == {"ok": True, "number": "79035550199", "found": False, "create": [
        {"module": "Leads", "url": "index.php?module=Leads&view=Edit&phone=%2B79035550199"}]}


@pytest.mark.parametrize("number", ["", "abc", "7916' OR 1=1 --", "+", "1" * 40])
def test_lookup_refuses_what_is_not_a_number(php: str, tmp_path: Path, number: str) -> None:
    out = run_php_sync(php, tmp_path, {"crm": crm("http://127.0.0.1:1"), "now": NOW,
                                       "op": "lookup", "args": [number]})
    assert out["result"] == {"ok": False, "error": "bad_input", "detail": "number"}
    assert not [a for a in out["asked"] if a.startswith("lookup:")]  # vtiger's SQL never sees it


async def test_recording_only_for_a_row_the_user_may_see(
    php: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    recorder = Recorder()
    await nursery.start(recorder.run)
    recorder.answers["/recording"] = Answer(206, b"RIFF", {
        "Content-Type": "audio/wav", "Content-Range": "bytes 0-3/1000", "Accept-Ranges": "bytes"})
    base = f"http://127.0.0.1:{recorder.port}"
    spec = crm(base, calls={"55": "0abc123", "56": "0abc124"})
    spec["permitted"]["PBXManager:DetailView:55"] = True
    mine = await run_php(php, tmp_path, {"crm": spec, "now": NOW, "op": "recording",
                                         "args": ["55", "bytes=0-3"]})
    assert mine["result"]["call"] == "0abc123"
    assert mine["result"]["status"] == 206 and mine["result"]["body_hex"] == b"RIFF".hex()
    assert mine["result"]["headers"]["content-range"] == "bytes 0-3/1000"
    (seen,) = recorder.seen
    assert seen.path == "/recording"
    signature = tickets.signature(SECRET, "recording", "0abc123")
    assert seen.query == {"id": ["0abc123"], "sig": [signature]}
    assert seen.headers["range"] == "bytes=0-3"
    assert SECRET not in seen.target
    for record, why in (("56", "not permitted"), ("57", "no such row"), ("5 5", "bad id"),
                        ("-1", "bad id")):
        out = await run_php(php, tmp_path, {"crm": spec, "now": NOW, "op": "recording",
                                            "args": [record, None]})
        assert out["result"] == {"call": None}, why
    assert len(recorder.seen) == 1  # nothing was fetched for them
    bad_range = await run_php(php, tmp_path, {"crm": spec, "now": NOW, "op": "recording",
                                              "args": ["55", "bytes=0-3\r\nX-Evil: 1"]})
    assert bad_range["result"]["status"] == 206
    assert "range" not in recorder.seen[-1].headers  # a malformed Range is not passed on
