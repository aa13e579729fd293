"""Configuration: file + environment, typed, errors that name the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinc.cli import main
from pinc.config import ConfigError, load_config, parse_listen


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pinc.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_work_on_a_stock_asterisk_host() -> None:
    config = load_config(None, env={})
    assert (config.ami.host, config.ami.port) == ("127.0.0.1", 5038)
    assert config.pbx.recordings_dir == "/var/spool/asterisk/monitor"
    assert config.agi.listen.startswith("127.0.0.1:")  # loopback by default
    assert config.crm.url == ""  # runs without a CRM
    assert config.journal_path().name == "pinc.db"


def test_file_values_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[ami]
port = 5039
secret = "s3cret-ami"
ping_interval = 5
[pbx]
trunk_contexts = ["from-trunk", "from-pstn"]
""",
    )
    config = load_config(path, env={})
    assert config.ami.port == 5039
    assert config.ami.ping_interval == 5.0 and isinstance(config.ami.ping_interval, float)
    assert config.pbx.trunk_contexts == ("from-trunk", "from-pstn")
    assert config.source == str(path)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nport = 5039\n")
    env = {
        "PINC_AMI_PORT": "6000",
        "PINC_PBX_TRUNK_CONTEXTS": "a, b",
        "PINC_WEB_METRICS_PUBLIC": "yes",
    }
    config = load_config(path, env=env)
    assert config.ami.port == 6000
    assert config.pbx.trunk_contexts == ("a", "b")
    assert config.web.metrics_public is True


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[ami]\nport = 'x'\n", "ami.port must be an integer"),
        ("[ami]\nprot = 1\n", "unknown key ami.prot"),
        ("[amix]\n", "unknown section [amix]"),
        ("[ami]\nport = 70000\n", "ami.port must be a TCP port"),
        ("[crm]\nprofile = 'sugar'\n", "crm.profile must be one of vtiger, salesplatform"),
        ("[crm]\nurl = 'crm.example'\n", "crm.url must be an http(s):// URL"),
        ("[crm]\ntimezone = 'Mars/Olympus'\n", "crm.timezone must be an IANA time zone"),
        ("[pbx]\nextension_pattern = '(['\n", "pbx.extension_pattern is not a valid regex"),
        ("[agi]\nlisten = 'localhost'\n", "agi.listen must be host:port"),
        ("[journal]\nbatch_ms = -1\n", "journal.batch_ms must not be negative"),
        ("[ami\n", "not valid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_environment_error_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"PINC_AMI_PORT.*ami\.port must be an integer"):
        load_config(None, env={"PINC_AMI_PORT": "many"})


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pinc init"):
        load_config(tmp_path / "absent.toml", env={})


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:4573") == ("127.0.0.1", 4573)
    assert parse_listen("[::1]:8099") == ("::1", 8099)
    assert parse_listen(":8099") == ("0.0.0.0", 8099)


def test_check_masks_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[ami]\nsecret = 'ami-secret-1'\n[crm]\nsecret = 'crm-secret-2-long'\n"
        "access_key = 'key-3'\n[web]\ntoken = 'tok-4-long-enough'\n",
    )
    result = CliRunner().invoke(main, ["check", "--config", str(path)], env={})
    assert result.exit_code == 0, result.output
    for secret in ("ami-secret-1", "crm-secret-2-long", "key-3", "tok-4-long-enough"):
        assert secret not in result.output
    assert "********" in result.output
    as_json = CliRunner().invoke(main, ["check", "--json", "--config", str(path)], env={})
    assert json.loads(as_json.output)["ami"]["secret"] == "********"


def test_check_fails_on_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[ami]\nport = 'x'\n")
    result = CliRunner().invoke(main, ["check", "--config", str(path)], env={})
    assert result.exit_code != 0
    assert "ami.port must be an integer" in result.output


def test_secrets_listed_for_scrubbing() -> None:
    config = load_config(None, env={"PINC_AMI_SECRET": "abcd1234", "PINC_WEB_TOKEN": "tok-zz"})
    assert set(config.secrets()) == {"abcd1234", "tok-zz"}
