"""Secrets pinc refuses to start with, and credentials in URLs kept out of logs and output.

pinc 0.1.0 accepted ``crm.secret = "0e1"`` (vtiger's PHP ``==`` takes "0e1" and "0e999" as
equal numbers) and ``web.token = "abc"``, and logged ``crm.url`` with its
``user:password@`` in clear.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinc.app import run_main
from pinc.cli import main
from pinc.config import load_config, redact_url
from pinc.runtime.logs import setup_logging
from pinc.secret_rules import weak_secrets


def config_of(**sections: dict[str, object]):  # type: ignore[no-untyped-def]
    return load_config(None, env={}, overrides=sections)


@pytest.mark.parametrize("secret", ["0e1", "123", " 1e3", "1e3 ", "-.5", "+1.5E-3", "1.",
                                    "0e462097431906509019562988736854", "100000000000000"])
def test_secrets_php_takes_for_numbers(secret: str) -> None:
    (problem,) = weak_secrets(config_of(crm={"secret": secret}))
    assert "looks like a number to PHP" in problem and secret.strip() not in problem


@pytest.mark.parametrize(("section", "key", "value", "words"), [
    ("crm", "secret", "short-1", "shorter than 12"),
    ("web", "token", "abc", "shorter than 16"),
    ("web", "token", "fifteen-chars-x", "shorter than 16"),
])
def test_short_secrets(section: str, key: str, value: str, words: str) -> None:
    (problem,) = weak_secrets(config_of(**{section: {key: value}}))
    assert words in problem and value not in problem


@pytest.mark.parametrize("secret", ["pinc-lab-secret-42", "1940898792584673c6e9a8a",
                                    "0x1A2B3C4D5E6F7A8B", "12345678901234 5"])
def test_good_secrets(secret: str) -> None:
    # vtiger's own generated key (uniqid(rand())) passes
    assert weak_secrets(config_of(crm={"secret": secret}, web={"token": "x" * 16})) == []
    assert weak_secrets(config_of()) == []  # empty: no CRM, a token generated per run


def test_pinc_run_refuses_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_of(crm={"secret": "0e1"}, journal={"path": str(tmp_path / "p.db")},
                       web={"listen": "127.0.0.1:0"}, agi={"listen": "127.0.0.1:0"})
    try:
        assert run_main(config) == 2
    finally:
        logging.getLogger().handlers.clear()
    assert not (tmp_path / "p.db").exists()  # refused before anything started
    assert "looks like a number to PHP" in capsys.readouterr().err


def test_pinc_check_says_so(tmp_path: Path) -> None:
    path = tmp_path / "pinc.toml"
    path.write_text('[web]\ntoken = "abc"\n[crm]\nurl = "https://admin:hunter2@crm.example/v"\n',
                    encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 2
    assert "web.token is shorter than 16" in result.output
    assert "hunter2" not in result.output and "https://***@crm.example/v" in result.output
    result = CliRunner().invoke(main, ["check", "--config", str(path), "--json"])
    assert "hunter2" not in result.output
    assert json.loads(result.output.split("\nerror")[0])["crm"]["url"] == (
        "https://***@crm.example/v")


def test_url_credentials_never_reach_a_log() -> None:
    config = config_of(crm={"url": "https://admin:hunter2@crm.example/vtigercrm"})
    assert "hunter2" in config.secrets()
    stream = io.StringIO()
    setup_logging(config, stream=stream)
    log = logging.getLogger("pinc.test")
    try:
        log.warning("POST https://admin:hunter2@crm.example/vtigercrm/x failed")
        log.warning("proxy http://bob:s3cr3t-pw@10.0.0.1:3128 refused")  # not configured
        try:
            raise OSError("cannot reach https://admin:hunter2@crm.example")
        except OSError:
            log.exception("delivery")
    finally:
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert "hunter2" not in text and "s3cr3t-pw" not in text and "admin:" not in text
    assert "https://***@crm.example/vtigercrm/x" in text
    assert redact_url("a ftp://x:y@h b") == "a ftp://***@h b"
