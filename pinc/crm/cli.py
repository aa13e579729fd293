"""``pinc outbox list|retry|drop`` and ``pinc crm lookup``.

The outbox commands work on the journal file directly (WAL lets them run beside a
running pinc; the worker notices changed rows within its idle poll).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import trio

from pinc.config import Config


def _open(config: Config) -> sqlite3.Connection:
    path = Path(config.journal_path())
    if not path.exists():
        raise click.ClickException(f"no journal at {path} (pinc run creates it; see journal.path)")
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("SELECT 1 FROM outbox LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise click.ClickException(f"journal {path} has no usable outbox: {exc}") from None
    return conn


def _ids(ids: list[str]) -> list[int]:
    out = []
    for raw in ids:
        if not raw.strip().isdigit():
            raise click.BadParameter(f"{raw!r} is not an outbox id (see pinc outbox list)")
        out.append(int(raw))
    return out


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def outbox_list_command(config: Config, *, dead: bool) -> None:
    """Pending, held and dead callbacks (or only dead ones), oldest first."""
    conn = _open(config)
    states = ("dead",) if dead else ("pending", "held", "dead")
    marks = ",".join("?" * len(states))
    rows = conn.execute(
        "SELECT id, call_id, kind, state, attempts, next_attempt_at, created_at, last_error "
        f"FROM outbox WHERE state IN ({marks}) ORDER BY id LIMIT 1000",
        states,
    ).fetchall()
    counts = dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
    conn.close()
    if not rows:
        click.echo("outbox: nothing " + ("dead" if dead else "waiting"))
    else:
        click.echo(f"{'id':>8}  {'call':<14}{'kind':<11}{'state':<8}{'tries':>5}  "
                   f"{'queued':<21}{'next try':<21}last error")
    now = time.time()
    for rid, call_id, kind, state, attempts, nxt, created, error in rows:
        next_try = "now" if state == "pending" and nxt <= now else _when(nxt)
        if state != "pending":
            next_try = "-"
        click.echo(f"{rid:>8}  {call_id:<14}{kind:<11}{state:<8}{attempts:>5}  "
                   f"{_when(created):<21}{next_try:<21}{error or ''}")
    click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "outbox is empty")


def outbox_retry_command(config: Config, ids: list[str]) -> None:
    """Dead (or waiting) callbacks back to pending, to be tried at once; no ids: all dead.

    A held call (its extension has no CRM user) goes only when named by id: sent as it
    was planned, the CRM files it under whoever has that extension by then."""
    conn = _open(config)
    now = time.time()
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        if ids:
            wanted = _ids(ids)
            marks = ",".join("?" * len(wanted))
            heads = conn.execute(
                f"SELECT call_id, MIN(id) FROM outbox WHERE id IN ({marks}) "
                "AND state IN ('dead', 'pending', 'held') GROUP BY call_id",
                wanted,
            ).fetchall()
            changed = 0
            for call_id, first in heads:
                # the call's later callbacks died with it and must follow it, in order
                changed += conn.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0, "
                    "last_error = NULL, created_at = ? WHERE call_id = ? AND id >= ? "
                    "AND state IN ('dead', 'pending', 'held')",
                    (now, call_id, first),
                ).rowcount
        else:
            cur = conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0, "
                "last_error = NULL, created_at = ? WHERE state = 'dead' OR state = 'pending'",
                (now,),
            )
            changed = cur.rowcount
        conn.execute("COMMIT")
    conn.close()
    click.echo(f"{changed} callback(s) will be tried again now")


def outbox_drop_command(config: Config, ids: list[str]) -> None:
    """Never send these callbacks (state 'dropped'; the rows stay for the record)."""
    wanted = _ids(ids)
    conn = _open(config)
    marks = ",".join("?" * len(wanted))
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            f"UPDATE outbox SET state = 'dropped', done_at = ? "
            f"WHERE id IN ({marks}) AND state IN ('pending', 'dead')",
            [time.time(), *wanted],
        )
        changed = cur.rowcount
        conn.execute("COMMIT")
    conn.close()
    click.echo(f"{changed} callback(s) dropped")


def lookup_command(config: Config, number: str) -> None:
    """Ask the CRM who owns a number, as the AGI routing would."""
    from pinc.crm.webservice import CrmLookupError, VtigerWebservice

    if not config.crm.url:
        raise click.ClickException("crm.url is not set")

    async def ask() -> None:
        ws = VtigerWebservice(config)
        try:
            customer = await ws.find_customer(number)
            if customer is not None and not customer.module:
                # SalesPlatform routes through SPAgi.php (an extension only): the name
                # comes from the webservice, when pinc has credentials for it
                named = await ws.describe(number)
                if named is not None:
                    customer = dataclasses.replace(named, user_extension=customer.user_extension)
        finally:
            await ws.aclose()
        if customer is None:
            click.echo(f"{number}: no customer in the CRM")
            return
        click.echo(json.dumps({"number": number, **customer.__dict__}, ensure_ascii=False))

    try:
        trio.run(ask)
    except CrmLookupError as exc:
        raise click.ClickException(str(exc)) from None
