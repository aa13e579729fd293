"""``pinc calls``: the journal as a table or JSON lines, optionally followed live.

It opens the journal read-only on its own connection, so it runs beside a running
pinc (WAL lets readers and the writer work at once). ``--follow`` polls the events
table for changes committed after the last one printed.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from pinc.config import Config
from pinc.journal import queries

FOLLOW_POLL = 0.25
_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, *, now: datetime | None = None) -> str:
    """``2h``, ``3d``, ``2026-11-24`` or ``2026-11-24T10:00[:00][Z|+03:00]`` -> ISO UTC."""
    now = now or datetime.now(UTC)
    m = _SPAN.match(value)
    if m:
        moment = now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is neither a span (30m, 2h, 3d, 1w) nor an ISO date/time",
                param_hint="--since",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise click.ClickException(
            f"no journal at {path} (pinc run creates it; use --db or journal.path)"
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT 1 FROM calls LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise click.ClickException(f"journal {path} cannot be read: {exc}") from None
    return conn


def _hms(seconds: Any) -> str:
    s = int(seconds or 0)
    return f"{s // 60}:{s % 60:02d}"


COLUMNS = (
    ("started (UTC)", 19),
    ("id", 12),
    ("dir", 8),
    ("status", 9),
    ("from", 14),
    ("to", 14),
    ("by", 6),
    ("total", 6),
    ("talk", 6),
)


def table_row(call: dict[str, Any]) -> str:
    started = str(call.get("started_at") or "").replace("T", " ").rstrip("Z")
    values = (
        started,
        call.get("id") or "",
        call.get("direction") or "",
        call.get("status") or "",
        call.get("from") or "",
        call.get("to") or "",
        call.get("answered_by") or "-",
        _hms(call.get("duration")),
        _hms(call.get("talk")),
    )
    return "  ".join(str(v)[:w].ljust(w) for v, (_, w) in zip(values, COLUMNS, strict=True))


def table_header() -> str:
    return "  ".join(name.ljust(w) for name, w in COLUMNS)


def change_line(change: dict[str, Any]) -> str:
    call = change.get("call") or {}
    data = change.get("data") or {}
    extra = " ".join(f"{k}={v}" for k, v in data.items() if v not in (None, ""))
    return (
        f"{change.get('at', '')}  {change.get('call_id', '')}  {change.get('type', ''):17}"
        f"  {call.get('from') or ''} -> {call.get('to') or ''}  {call.get('status') or ''}"
        + (f"  {extra}" if extra else "")
    )


def calls_command(
    config: Config,
    *,
    since: str | None,
    status: str | None,
    ext: str | None,
    number: str | None,
    limit: int,
    follow: bool,
    as_json: bool,
) -> None:
    """List journal calls (oldest of the selection first), then follow changes if asked."""
    path = config.journal_path()
    conn = open_readonly(path)
    since_iso = parse_since(since) if since else None
    conn.execute("BEGIN")  # the listing and the follow start point from one snapshot
    calls, _ = queries.list_calls(
        conn, since=since_iso, status=status, ext=ext, number=number, limit=limit
    )
    start_seq = queries.last_seq(conn)
    conn.execute("ROLLBACK")
    calls.reverse()
    out = sys.stdout
    if as_json:
        for call in calls:
            out.write(json.dumps(call, ensure_ascii=False) + "\n")
    else:
        out.write(table_header() + "\n")
        for call in calls:
            out.write(table_row(call) + "\n")
        if not follow:
            out.write(f"{len(calls)} calls\n")
    out.flush()
    if follow:
        try:
            _follow(conn, start_seq, as_json=as_json, ext=ext, number=number, status=status)
        except KeyboardInterrupt:
            pass
    conn.close()


def _matches(
    change: dict[str, Any], *, ext: str | None, number: str | None, status: str | None
) -> bool:
    call = change.get("call") or {}
    if (
        status
        and call.get("status") != status
        and not (status == "live" and call.get("status") in ("ringing", "answered"))
    ):
        return False
    if number:
        digits = "".join(ch for ch in number if ch.isdigit()) or number
        if digits not in (call.get("from"), call.get("to")):
            return False
    if ext:
        exts = {leg.get("ext") for leg in call.get("legs") or ()}
        exts.add(call.get("answered_by"))
        if call.get("direction") != "inbound":
            exts.add(call.get("from"))
        if ext not in exts:
            return False
    return True


def _follow(
    conn: sqlite3.Connection,
    seq: int,
    *,
    as_json: bool,
    ext: str | None,
    number: str | None,
    status: str | None,
) -> None:
    out = sys.stdout
    while True:
        changes = queries.changes_after(conn, seq)
        for change in changes:
            seq = int(change["seq"])
            if not _matches(change, ext=ext, number=number, status=status):
                continue
            if as_json:
                change.pop("seq", None)
                out.write(json.dumps(change, ensure_ascii=False) + "\n")
            else:
                out.write(change_line(change) + "\n")
        out.flush()
        if not changes:
            time.sleep(FOLLOW_POLL)
