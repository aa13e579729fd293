"""``pinc check --connect`` against the simulated Asterisk and the fake CRMs, and the
``web.public_url`` default."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from pinc.check import connect_checklist
from pinc.cli import main
from pinc.config import Config, ConfigError, replace
from pinc.defaults import public_url_of, with_public_url
from pinc.journal.schema import migrate
from pinc.sim.amiserver import AmiSimServer
from tests.crm.conftest import crm_config
from tests.crm.fakesalesplatform import FakeSalesPlatform
from tests.crm.fakevtiger import FakeVtiger, real_lab_users
from tests.lab.lab import toml_of


def test_public_url_default() -> None:
    crm = {"url": "http://crm.example/vtigercrm", "secret": "s3cr3t-words"}
    on_one = replace(Config(), web={"listen": "192.0.2.10:8099"}, crm=crm)
    assert with_public_url(on_one).web.public_url == "http://192.0.2.10:8099"
    v6 = replace(Config(), web={"listen": "[2001:db8::5]:8099"}, crm=crm)
    assert public_url_of(v6) == "http://[2001:db8::5]:8099"
    given = replace(on_one, web={"public_url": "https://pbx.example/"})
    assert with_public_url(given).web.public_url == "https://pbx.example/"
    assert with_public_url(replace(Config(), crm={"url": ""})) == replace(Config(), crm={"url": ""})
    everywhere = replace(Config(), web={"listen": "0.0.0.0:8099"}, crm=crm)
    with pytest.raises(ConfigError, match=r"set web\.public_url"):
        with_public_url(everywhere)
    # a port the system picks (tests): no links, but no refusal either
    assert with_public_url(replace(everywhere, web={"listen": "127.0.0.1:0"})).web.public_url == ""


def test_pinc_run_refuses_a_crm_without_public_url(tmp_path: Path) -> None:
    path = tmp_path / "pinc.toml"
    path.write_text(toml_of({"crm": {"url": "http://127.0.0.1:9/crm", "secret": "s3cr3t-x"},
                             "journal": {"path": str(tmp_path / "pinc.db")}}))
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert "web.public_url" in (result.output + str(result.stderr_bytes or b""))


def journal_with_extensions(path: Path, *exts: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    for i, ext in enumerate(exts):
        conn.execute("INSERT INTO legs (call_id, idx, ext) VALUES (?, ?, ?)", (f"c{i}", i, ext))
    conn.close()


@pytest.mark.parametrize("fake_class", [FakeVtiger, FakeSalesPlatform])
async def test_checklist_all_good(nursery: trio.Nursery, tmp_path: Path,
                                  fake_class: type[FakeVtiger]) -> None:
    crm = fake_class(users=real_lab_users())
    await nursery.start(crm.run)
    ami = AmiSimServer()
    ami_port = await nursery.start(ami.run)
    profile = "salesplatform" if crm.has_spagi else "vtiger"
    config = replace(crm_config(crm.port, tmp_path, profile=profile, default_user="manager2"),
                     ami={"port": ami_port, "secret": "pincsecret"},
                     pbx={"extension_pattern": r"^\d{3}$"})
    journal_with_extensions(Path(config.journal.path), "101", "102", "103")
    before = len(crm.rows)
    ok, text = await trio.to_thread.run_sync(connect_checklist, config)
    assert ok, text
    assert f"[ok]   AMI 127.0.0.1:{ami_port}: logged in as 'pinc'; Asterisk 22" in text
    assert "reachable, the secret is accepted" in text
    assert "[ok]   CRM users with an extension: 2" in text
    assert "[warn] PBX extensions with no CRM user: 103" in text
    assert "recording links point at http://pbx.example:8099" in text
    assert "time zone: UTC" in text
    assert len(crm.rows) == before  # tried harmlessly: nothing written


async def test_checklist_failures(nursery: trio.Nursery, tmp_path: Path) -> None:
    crm = FakeVtiger(secret="another-secret")
    await nursery.start(crm.run)
    config = replace(crm_config(crm.port, tmp_path, access_key="wrong", default_user="nobody"),
                     ami={"port": 9, "connect_timeout": 1.0},
                     web={"public_url": "", "listen": "0.0.0.0:8099"})
    ok, text = await trio.to_thread.run_sync(connect_checklist, config)
    assert not ok
    assert "[FAIL] AMI 127.0.0.1:9: cannot connect" in text
    assert "[FAIL] CRM callback" in text and "refuses the secret" in text
    assert "[FAIL] recording links: pinc would refuse to start" in text
    assert "[FAIL] CRM webservice login as 'admin'" in text


async def test_checklist_html_instead_of_vtiger(nursery: trio.Nursery, tmp_path: Path) -> None:
    crm = FakeVtiger()
    crm.mode = "html"
    await nursery.start(crm.run)
    config = replace(crm_config(crm.port, tmp_path), ami={"port": 9, "connect_timeout": 1.0})
    ok, text = await trio.to_thread.run_sync(connect_checklist, config)
    assert not ok and "HTML page" in text
