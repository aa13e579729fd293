"""The example configuration: complete, loadable, identical in both places, private."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

from click.testing import CliRunner

from pinc.cli import main
from pinc.config import Config, load_config
from pinc.example import missing_help, render_example, render_markdown_table, write_example_config

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "packaging" / "pinc.example.toml"


def test_every_key_is_explained() -> None:
    assert missing_help() == [], "add these keys to KEY_HELP in pinc/example.py"


def test_packaged_example_is_generated_from_the_same_source() -> None:
    assert PACKAGED.read_text(encoding="utf-8") == render_example(), (
        "regenerate it: python -m pinc.example > packaging/pinc.example.toml"
    )


def test_example_loads_and_holds_the_defaults() -> None:
    config = load_config(PACKAGED, env={})
    assert dataclasses.replace(config, source=Config().source) == Config()


def test_docs_configuration_holds_the_key_reference() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert render_markdown_table() in text, (
        "regenerate the reference: python -m pinc.example --markdown"
    )


def test_write_example_config_is_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "pinc.toml"
    target.write_text("old")
    target.chmod(0o644)
    write_example_config(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text(encoding="utf-8") == render_example()


def test_pinc_init(tmp_path: Path) -> None:
    target = tmp_path / "pinc.toml"
    runner = CliRunner()
    first = runner.invoke(main, ["init", str(target)])
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    again = runner.invoke(main, ["init", str(target)])
    assert again.exit_code != 0 and "--force" in again.output
    forced = runner.invoke(main, ["init", "--force", str(target)])
    assert forced.exit_code == 0
    checked = runner.invoke(main, ["check", "--config", str(target)])
    assert checked.exit_code == 0, checked.output
