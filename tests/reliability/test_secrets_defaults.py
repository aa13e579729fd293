"""Secrets never reach a log, and the defaults are safe.

A realistic session of the whole of pinc (``serve()``: AMI, journal, CRM delivery and
lookups, AGI, web) with wrong logins and faults, logging set up as ``pinc run`` sets it
(plus pytest's capture of every raw record, before pinc's scrubbing filter): neither the
raw records nor the formatted log hold the AMI secret, the CRM secret, the access key or
the API token; nor do /ping, /metrics or the outbox rows.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from pinc.config import AgiConfig, Config, WebConfig
from pinc.runtime.logs import setup_logging
from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript
from tests.agi.conftest import agi_client, environment
from tests.crm.fakevtiger import FakeVtiger, lab_users
from tests.reliability.conftest import add
from tests.reliability.stack import (
    ACCESS_KEY,
    AMI_SECRET,
    CRM_SECRET,
    FIXTURES,
    SECRETS,
    TOKEN,
    db_rows,
    stack_config,
    start_stack,
    wait_for,
)
from tests.web.harness import make_config, start_env

ROOT = Path(__file__).resolve().parents[2]


def leaks(text: str) -> list[str]:
    return [name for name, s in zip(("ami", "crm", "access_key", "token"), SECRETS,
                                    strict=True) if s in text]


async def test_no_secret_in_any_log(nursery: trio.Nursery, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    users = lab_users()
    users[0].access_key = ACCESS_KEY  # admin: the webservice user pinc logs in as
    vtiger = FakeVtiger(secret=CRM_SECRET, users=users)
    events = load_transcript(FIXTURES / "asterisk-local" / "inbound_answered.ami")
    sim = AmiSimServer(events, secret=AMI_SECRET)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    with trio.fail_after(60):
        vport = await nursery.start(vtiger.run)
        aport = await nursery.start(sim.run)
        config = stack_config(tmp_path, aport, vtiger_port=vport, log={"level": "debug"})
        setup_logging(config, stream=stream)
        root.addHandler(caplog.handler)  # raw records too, before the scrubbing filter
        try:
            handle = await start_stack(nursery, config)
            base = f"http://127.0.0.1:{handle.web_port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as web:
                # wrong logins everywhere
                for url in ("/makecall?secret=wrong&from=101&to=79001234567",
                            "/recording?id=x&secret=" + CRM_SECRET[:-1],
                            "/responsible?number=79161234567&secret=nope"):
                    assert (await web.get(url)).status_code == 403
                assert (await web.get("/api/calls", headers={
                    "Authorization": f"Bearer {TOKEN}x"})).status_code == 401
                assert (await web.get("/api/calls", params={"token": AMI_SECRET})
                        ).status_code == 401
                # right ones
                r = await web.get("/makecall", params={"secret": CRM_SECRET, "from": "101",
                                                       "to": "79001234567"})
                assert r.text == "Success"
                r = await web.get("/api/calls", headers={"Authorization": f"Bearer {TOKEN}"})
                assert r.status_code == 200
                await sim.wait_replayed()
                await wait_for(lambda: db_rows(config.journal_path(),
                                               "SELECT COUNT(*) FROM calls WHERE live=0")[0][0]
                               >= 1)
                # AGI: the router logs in to the webservice with the access key
                assert handle.agi_port is not None
                await agi_client(handle.agi_port, environment("responsible", "79161234567"))
                vtiger.expire_sessions()
                await agi_client(handle.agi_port, environment("responsible", "79035550102"))
                # faults: AMI login refused, CRM failing then refusing, then healthy
                sim.fail_auth = True
                await sim.drop_clients()
                await wait_for(lambda: sim.failed_logins >= 2)
                sim.fail_auth = False
                vtiger.mode = "503"
                sim.feed(load_transcript(FIXTURES / "asterisk-local" / "inbound_missed.ami"))
                await sim.wait_replayed()
                await trio.sleep(0.5)
                vtiger.mode = "html"
                await trio.sleep(0.3)
                vtiger.mode = "ok"
                vtiger.refuse()
                await trio.sleep(0.3)
                vtiger.accept()
                db = config.journal_path()
                await wait_for(lambda: db_rows(
                    db, "SELECT COUNT(*) FROM outbox WHERE state='pending'")[0][0] == 0
                    and db_rows(db, "SELECT COUNT(*) FROM outbox")[0][0] > 0, poll=0.1)
                auth = {"Authorization": f"Bearer {TOKEN}"}
                bodies = [(await web.get("/ping", headers=auth)).text,
                          (await web.get("/metrics", headers=auth)).text]
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
    raw = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in caplog.records
    )
    assert len(caplog.records) > 20  # a real session was logged
    assert not leaks(raw), f"secret in a raw log record: {leaks(raw)}"
    assert not leaks(stream.getvalue()), "secret in the formatted log"
    for body in bodies:
        assert not leaks(body)
    outbox = "\n".join(f"{p} {e}" for p, e in db_rows(db, "SELECT payload, last_error "
                                                          "FROM outbox"))
    assert not leaks(outbox), "secret stored in the outbox"
    assert vtiger.accepted  # callbacks went through, signed
    add("secrets.log_records_checked", len(caplog.records))


# ---- safe defaults -----------------------------------------------------------------------


def test_defaults_bind_agi_to_loopback_and_keep_metrics_private() -> None:
    assert AgiConfig().listen.startswith("127.0.0.1:")
    assert WebConfig().metrics_public is False
    assert Config().ami.host == "127.0.0.1"


def non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


async def test_metrics_need_a_token_off_loopback(nursery: trio.Nursery, tmp_path: Path) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address on this host")
    from pinc.web.server import WebServer

    with trio.fail_after(15):
        env = await start_env(nursery, tmp_path)
        port = await nursery.start(WebServer(env.services, host=address, port=0).run)
        async with httpx.AsyncClient(timeout=5) as client:
            url = f"http://{address}:{port}/metrics"
            r = await client.get(url)
            assert r.status_code == 401
            r = await client.get(url, headers=env.auth)
            assert r.status_code == 200


async def test_api_refuses_without_a_token_even_when_none_is_configured(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = make_config(tmp_path, web={"token": ""})
    with trio.fail_after(15):
        env = await start_env(nursery, tmp_path, config=config)
        async with httpx.AsyncClient(base_url=env.base, timeout=5) as client:
            for path in ("/api/calls", "/api/live", "/"):
                assert (await client.get(path)).status_code == 401
            assert (await client.get("/api/calls", headers={"Authorization": "Bearer -"})
                    ).status_code == 401
        generated = env.services.extras["web_token"]
        assert len(generated) >= 24


async def test_journal_files_are_owner_only(nursery: trio.Nursery, tmp_path: Path) -> None:
    from pinc.feed import FeedHub
    from pinc.journal.store import Journal

    old = os.umask(0o022)  # a typical umask: files would be world-readable by default
    try:
        config = make_config(tmp_path, journal={"path": str(tmp_path / "new" / "pinc.db")})
        with trio.fail_after(15):
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            await journal.write(lambda conn: conn.execute("SELECT 1").fetchall())
    finally:
        os.umask(old)
    directory = tmp_path / "new"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = [p for p in directory.iterdir() if p.is_file()]
    assert any(p.name == "pinc.db" for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p.name, oct(p.stat().st_mode))


def test_pinc_init_writes_an_owner_only_config(tmp_path: Path) -> None:
    target = tmp_path / "pinc.toml"
    old = os.umask(0o022)
    try:
        subprocess.run([sys.executable, "-m", "pinc", "init", str(target)], cwd=ROOT,
                       check=True, capture_output=True, timeout=60)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
