"""``pinc backfill --since … [--dry-run]``: the CDR recovery, by hand.

While a pinc runs it does the work (``POST /api/backfill``: it is the journal's only
writer and knows which calls are up); otherwise this process opens the journal itself,
and the recovered calls' CRM callbacks wait in the outbox for the next ``pinc run``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
import trio

from pinc.cdr.recovery import Recovery
from pinc.cdr.sources import CdrError
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.journal.cli import parse_since, table_header, table_row
from pinc.web.local import call_service, running_pinc


def backfill_command(config: Config, *, since: str, dry_run: bool, as_json: bool) -> None:
    if not config.cdr.source:
        raise click.ClickException(
            'cdr.source is not set: name the CDR to read ("csv" or "mysql", docs/recovery.md)'
        )
    since_iso = parse_since(since)
    pid = running_pinc(config)
    if pid is not None:
        answer = call_service(
            config, "/api/backfill", {"since": since_iso, "dry_run": dry_run}, pid
        )
        where = f"by the running pinc, pid {pid}"
    else:
        answer = trio.run(_here, config, since_iso, dry_run)
        where = "journal written by this command" if not dry_run else "nothing written"
    calls: list[dict[str, Any]] = answer.get("recovered") or []
    if as_json:
        for call in calls:
            click.echo(json.dumps(call, ensure_ascii=False))
    else:
        click.echo(table_header())
        for call in calls:
            click.echo(table_row(call))
    verb = "would be recovered" if dry_run else "recovered"
    click.echo(f"{answer.get('summary', '')} ({where}); {len(calls)} {verb}", err=as_json)


async def _here(config: Config, since_iso: str, dry_run: bool) -> dict[str, Any]:
    from pinc.journal.store import Journal, JournalError

    journal = Journal(config, FeedHub())
    if config.crm.url and not dry_run:
        from pinc.crm.vtiger import make_outbox_hook

        journal.add_batch_hook(make_outbox_hook(config))
    since = datetime.fromisoformat(since_iso.replace("Z", "+00:00")).timestamp()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(journal.run)
            try:
                report = await Recovery(config, journal).run(since=since, dry_run=dry_run)
            finally:
                nursery.cancel_scope.cancel()  # the journal drains what was submitted
    except JournalError as exc:
        raise click.ClickException(str(exc)) from None
    except CdrError as exc:
        raise click.ClickException(str(exc)) from None
    except trio.TooSlowError:
        raise click.ClickException("the CDR source did not answer within cdr.timeout") from None
    return {"summary": report.summary(), "recovered": report.recovered}
