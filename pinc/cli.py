"""The ``pinc`` command line.

Each command is a thin shell: it loads the configuration and hands over to the
module that owns the work, imported lazily so ``pinc version`` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from pinc import __version__
from pinc.config import Config, ConfigError, load_config
from pinc.secret_rules import weak_secrets

CONFIG_HELP = "Configuration file (default /etc/pinc/pinc.toml if it exists)."


def _load(config_path: str | None, overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    try:
        return load_config(config_path, overrides=overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pinc")
def main() -> None:
    """pinc: Asterisk calls into a journal, a live feed and vtiger CRM."""


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(f"pinc {__version__}")


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
def run(config_path: str | None) -> None:
    """Run pinc: AMI, journal, CRM delivery, AGI and HTTP, until SIGTERM."""
    config = _load(config_path)
    from pinc.app import run_main

    sys.exit(run_main(config))


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--connect", is_flag=True, help="Also log in to AMI and report the Asterisk version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(config_path: str | None, connect: bool, as_json: bool) -> None:
    """Validate the configuration and print it, secrets masked."""
    config = _load(config_path)
    if as_json:
        click.echo(json.dumps({"source": config.source, **config.as_dict()}, indent=2))
    else:
        click.echo(f"# configuration from {config.source}")
        for section, values in config.as_dict().items():
            click.echo(f"[{section}]")
            for key, value in values.items():
                click.echo(f"{key} = {json.dumps(value, ensure_ascii=False)}")
            click.echo()
    problems = weak_secrets(config)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(2)
    if connect:
        from pinc.ami.client import check_connection

        ok, message = check_connection(config)
        click.echo(message)
        if not ok:
            sys.exit(1)


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--changes", is_flag=True, help="Print every CallChange instead of the calls.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def replay(config_path: str | None, changes: bool, files: tuple[str, ...]) -> None:
    """Replay raw AMI transcripts through the tracker and print the calls as JSON lines."""
    config = _load(config_path)
    from pinc.calls.replay import replay_files

    for line in replay_files(config, [Path(f) for f in files], changes=changes):
        click.echo(line)


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--db", type=click.Path(), help="Journal file (overrides journal.path).")
@click.option("--since", help="ISO date/time or a span such as 2h, 3d.")
@click.option("--status", help="completed, missed, busy, no-answer, failed, ringing, answered.")
@click.option("--ext", help="Only calls that rang or were answered by this extension.")
@click.option("--number", help="Only calls from or to this number.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new changes as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines in the `pinc replay` shape.")
def calls(
    config_path: str | None,
    db: str | None,
    since: str | None,
    status: str | None,
    ext: str | None,
    number: str | None,
    limit: int,
    follow: bool,
    as_json: bool,
) -> None:
    """List calls from the journal."""
    overrides = {"journal": {"path": db}} if db else None
    config = _load(config_path, overrides)
    from pinc.journal.cli import calls_command

    calls_command(
        config,
        since=since,
        status=status,
        ext=ext,
        number=number,
        limit=limit,
        follow=follow,
        as_json=as_json,
    )


@main.group()
def outbox() -> None:
    """Inspect and steer CRM deliveries."""


@outbox.command("list")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--dead", is_flag=True, help="Only dead letters.")
def outbox_list(config_path: str | None, dead: bool) -> None:
    """List pending and dead deliveries."""
    from pinc.crm.cli import outbox_list_command

    outbox_list_command(_load(config_path), dead=dead)


@outbox.command("retry")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.argument("ids", nargs=-1)
def outbox_retry(config_path: str | None, ids: tuple[str, ...]) -> None:
    """Retry dead or paused deliveries now (all, or the given ids)."""
    from pinc.crm.cli import outbox_retry_command

    outbox_retry_command(_load(config_path), list(ids))


@outbox.command("drop")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.argument("ids", nargs=-1, required=True)
def outbox_drop(config_path: str | None, ids: tuple[str, ...]) -> None:
    """Drop deliveries (they will never be sent)."""
    from pinc.crm.cli import outbox_drop_command

    outbox_drop_command(_load(config_path), list(ids))


@main.group()
def crm() -> None:
    """Talk to the CRM."""


@crm.command("lookup")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.argument("number")
def crm_lookup(config_path: str | None, number: str) -> None:
    """Find the customer and responsible manager for a phone number."""
    from pinc.crm.cli import lookup_command

    lookup_command(_load(config_path), number)


@main.command()
@click.option("--speed", type=float, default=1.0, show_default=True, help="Replay speed factor.")
@click.option("--port", type=int, default=8099, show_default=True, help="HTTP port (0: any).")
@click.option("--db", type=click.Path(), help="Journal file (default: a temporary directory).")
@click.option(
    "--calls", "max_calls", type=int, default=0, help="Stop after this many calls (0: never)."
)
def demo(speed: float, port: int, db: str | None, max_calls: int) -> None:
    """Run pinc against its embedded simulated PBX and a built-in CRM sink."""
    from pinc.sim.demo import demo_main

    sys.exit(demo_main(speed=speed, port=port, db=db, max_calls=max_calls))


@main.command()
@click.argument("path", type=click.Path(dir_okay=False), default="pinc.toml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented example configuration (owner-only permissions)."""
    from pinc.example import write_example_config

    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists (use --force to overwrite)")
    write_example_config(target)
    click.echo(f"wrote {target}; edit it, then `pinc check --config {target} --connect`")
