"""``pinc outbox list|retry|drop`` and ``pinc crm lookup``.

``list`` reads the journal file (WAL lets it read beside a running pinc). ``retry`` and
``drop`` change it: while a pinc runs they ask it through its API (it is the journal's
only writer, and its worker wakes at once); only when none runs do they write the file.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
import trio

from pinc.config import Config
from pinc.crm import outbox
from pinc.journal.opening import lock_path
from pinc.web.local import call_service, running_pinc


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
    wanted = _ids(ids)
    pid = running_pinc(config)
    if pid is not None:
        changed = call_service(config, "/api/outbox/retry", {"ids": wanted}, pid)["changed"]
        click.echo(f"{changed} callback(s) will be tried again now (by the running pinc, "
                   f"pid {pid})")
        return
    changed = _write(config, lambda conn: outbox.retry(conn, wanted))
    click.echo(f"{changed} callback(s) will be tried again when pinc starts")


def outbox_drop_command(config: Config, ids: list[str]) -> None:
    """Never send these callbacks (state 'dropped'; the rows stay for the record)."""
    wanted = _ids(ids)
    pid = running_pinc(config)
    if pid is not None:
        changed = call_service(config, "/api/outbox/drop", {"ids": wanted}, pid)["changed"]
        click.echo(f"{changed} callback(s) dropped (by the running pinc, pid {pid})")
        return
    changed = _write(config, lambda conn: outbox.drop(conn, wanted))
    click.echo(f"{changed} callback(s) dropped")


def _write(config: Config, fn: Callable[[sqlite3.Connection], int]) -> int:
    """Change the journal file itself: only while no pinc runs. Its lock is held
    meanwhile, so a pinc starting now waits for nothing half-written (it refuses to
    start and says so; systemd starts it again)."""
    lock = os.open(lock_path(config.journal_path().absolute()), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise click.ClickException("pinc started meanwhile: run the command again") from None
    conn = _open(config)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            changed = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
        os.close(lock)  # releases the flock
    return changed


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
