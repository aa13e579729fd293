"""Read-only queries over the journal: pure functions of a ``sqlite3.Connection``.

Calls come back as dicts in the ``pinc replay`` shape (the snapshot the tracker
made at the call's last change). They work on any connection (a journal reader,
the CLI's own read-only connection, a test's), whatever its row factory.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from typing import Any

from pinc.calls.model import FINAL_STATUSES


def get_call(conn: sqlite3.Connection, call_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT data FROM calls WHERE id = ?", (call_id,)).fetchone()
    return _load(row[0]) if row else None


def _load(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _encode_cursor(started_at: str | None, call_id: str) -> str:
    raw = json.dumps([started_at or "", call_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started, call_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return str(started), str(call_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


def list_calls(
    conn: sqlite3.Connection,
    *,
    since: str | None = None,
    until: str | None = None,
    status: str | None = None,
    direction: str | None = None,
    ext: str | None = None,
    number: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """Calls, newest first, and the cursor of the next page (None on the last page).

    ``since``/``until`` are ISO 8601 UTC times compared with ``started_at``;
    ``status`` may also be ``live`` or ``ended``; ``ext`` matches a leg or the
    employee who answered; ``number`` the customer-facing from or to number.
    Raises ValueError for a bad cursor.
    """
    where: list[str] = []
    args: list[Any] = []
    if since:
        where.append("started_at >= ?")
        args.append(since)
    if until:
        where.append("started_at < ?")
        args.append(until)
    if status == "live":
        where.append("live = 1")
    elif status == "ended":
        where.append("live = 0")
    elif status:
        where.append("status = ?")
        args.append(status)
    if direction:
        where.append("direction = ?")
        args.append(direction)
    if ext:
        where.append(
            "(answered_by = ? OR id IN (SELECT call_id FROM legs WHERE ext = ?) "
            "OR (direction != 'inbound' AND from_number = ?))"
        )
        args.extend([ext, ext, ext])
    if number:
        digits = "".join(ch for ch in number if ch.isdigit()) or number
        where.append("(from_number = ? OR to_number = ?)")
        args.extend([digits, digits])
    if cursor:
        started, call_id = _decode_cursor(cursor)
        where.append("(COALESCE(started_at, '') < ? OR (COALESCE(started_at, '') = ? AND id < ?))")
        args.extend([started, started, call_id])
    limit = max(1, min(int(limit), 10_000))
    sql = "SELECT id, started_at, data FROM calls"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY COALESCE(started_at, '') DESC, id DESC LIMIT ?"
    rows = conn.execute(sql, [*args, limit + 1]).fetchall()
    calls = [_load(r[2]) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _encode_cursor(last[1], last[0])
    return calls, next_cursor


def call_changes(conn: sqlite3.Connection, call_id: str) -> list[dict[str, Any]]:
    """Every recorded change of a call, oldest first, as on the websocket (plus ``seq``)."""
    rows = conn.execute(
        "SELECT seq, kind, call_id, at, data, call FROM events WHERE call_id = ? ORDER BY seq",
        (call_id,),
    ).fetchall()
    return [_change(r) for r in rows]


def _change(row: Any) -> dict[str, Any]:
    seq, kind, call_id, at, data, call = row
    return {
        "seq": seq,
        "type": kind,
        "call_id": call_id,
        "at": at,
        "data": json.loads(data),
        "call": _load(call),
    }


def changes_after(conn: sqlite3.Connection, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Changes committed after sequence number ``seq`` (``pinc calls --follow``)."""
    rows = conn.execute(
        "SELECT seq, kind, call_id, at, data, call FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        (seq, limit),
    ).fetchall()
    return [_change(r) for r in rows]


def last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
    return int(row[0] or 0)


def live_calls(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Calls not yet ended, oldest first (the tracker restores them after a restart)."""
    rows = conn.execute(
        "SELECT data FROM calls WHERE live = 1 ORDER BY COALESCE(started_at, ''), id"
    ).fetchall()
    return [_load(r[0]) for r in rows]


def last_talker(conn: sqlite3.Connection, number: str, since: str) -> str | None:
    """The extension that last talked with ``number`` since the ISO time ``since``."""
    digits = "".join(ch for ch in number if ch.isdigit()) or number
    row = conn.execute(
        "SELECT answered_by FROM calls WHERE (from_number = ? OR to_number = ?) "
        "AND answered_by IS NOT NULL AND answered_by != '' AND talk > 0 AND started_at >= ? "
        "ORDER BY started_at DESC, id DESC LIMIT 1",
        (digits, digits, since),
    ).fetchone()
    return str(row[0]) if row else None


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Calls by status, plus totals (for /ping and the CLI footer)."""
    out = {s: 0 for s in FINAL_STATUSES}
    for status, n in conn.execute("SELECT status, COUNT(*) FROM calls GROUP BY status"):
        out[str(status)] = int(n)
    out["events"] = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    return out
