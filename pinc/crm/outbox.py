"""``pinc outbox retry|drop`` as SQL on one connection: run by the service's single writer
(``POST /api/outbox/retry|drop``) or, only when no pinc holds the journal, by the CLI."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence


def retry(conn: sqlite3.Connection, ids: Sequence[int], now: float | None = None) -> int:
    """Dead (or waiting) callbacks back to pending, to be tried at once; no ids: all of
    them. Returns how many rows changed. Runs inside the caller's transaction."""
    now = time.time() if now is None else now
    if not ids:
        return int(conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0, "
            "last_error = NULL, created_at = ? WHERE state = 'dead' OR state = 'pending'",
            (now,),
        ).rowcount)
    marks = ",".join("?" * len(ids))
    heads = conn.execute(
        f"SELECT call_id, MIN(id) FROM outbox WHERE id IN ({marks}) "
        "AND state IN ('dead', 'pending') GROUP BY call_id",
        list(ids),
    ).fetchall()
    changed = 0
    for call_id, first in heads:
        # the call's later callbacks died with it and must follow it, in order
        changed += conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0, "
            "last_error = NULL, created_at = ? WHERE call_id = ? AND id >= ? "
            "AND state IN ('dead', 'pending')",
            (now, call_id, first),
        ).rowcount
    return changed


def drop(conn: sqlite3.Connection, ids: Sequence[int], now: float | None = None) -> int:
    """Never send these callbacks (state 'dropped'; the rows stay for the record)."""
    if not ids:
        return 0
    now = time.time() if now is None else now
    marks = ",".join("?" * len(ids))
    return int(conn.execute(
        f"UPDATE outbox SET state = 'dropped', done_at = ? "
        f"WHERE id IN ({marks}) AND state IN ('pending', 'dead')",
        [now, *ids],
    ).rowcount)
