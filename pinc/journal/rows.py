"""Writing one batch of CallChanges into the journal's tables (the writer's thread).

Every change becomes a row of ``events``; each call touched by the batch gets its row in
``calls`` (the last snapshot wins) and its ``legs`` and ``transfers`` rewritten.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from pinc.calls.model import FINAL_STATUSES, CallChange

log = logging.getLogger("pinc.journal.store")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def store_changes(conn: sqlite3.Connection, changes: Sequence[CallChange]) -> set[int]:
    """Write ``changes`` (inside the caller's transaction); returns the indexes left out:
    a call ends once, so a second ``call.ended`` (e.g. after a restart) is not recorded."""
    now = time.time()
    skipped: set[int] = set()
    ended_here: set[str] = set()
    ended = [c.call_id for c in changes if c.kind == "call.ended"]
    already: set[str] = set()
    if ended:
        marks = ",".join("?" * len(set(ended)))
        already = {
            r[0]
            for r in conn.execute(
                f"SELECT id FROM calls WHERE live = 0 AND id IN ({marks})", list(set(ended))
            )
        }
    rows = []
    latest: dict[str, tuple[dict[str, Any], str]] = {}
    for i, change in enumerate(changes):
        if change.kind == "call.ended":
            if change.call_id in already or change.call_id in ended_here:
                skipped.add(i)
                log.warning(
                    "journal: call %s ended twice; the second end is ignored", change.call_id
                )
                continue
            ended_here.add(change.call_id)
        snapshot = dumps(change.call)
        rows.append((change.call_id, change.kind, change.at, now, dumps(change.data), snapshot))
        latest[change.call_id] = (change.call, snapshot)
    conn.executemany(
        "INSERT INTO events (call_id, kind, at, recorded_at, data, call) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    call_rows = []
    leg_rows = []
    transfer_rows = []
    for call_id, (call, snapshot) in latest.items():
        status = str(call.get("status") or "")
        call_rows.append(
            (
                call_id,
                str(call.get("linkedid") or ""),
                str(call.get("direction") or ""),
                status,
                call.get("from"),
                call.get("to"),
                call.get("started_at"),
                call.get("answered_at"),
                call.get("ended_at"),
                int(call.get("duration") or 0),
                int(call.get("talk") or 0),
                call.get("answered_by"),
                call.get("recording"),
                call.get("end_reason"),
                0 if status in FINAL_STATUSES else 1,
                now,
                snapshot,
            )
        )
        for idx, leg in enumerate(call.get("legs") or ()):
            leg_rows.append(
                (
                    call_id,
                    idx,
                    leg.get("ext"),
                    leg.get("result"),
                    leg.get("rang_at"),
                    leg.get("answered_at"),
                    leg.get("ended_at"),
                )
            )
        for idx, tr in enumerate(call.get("transfers") or ()):
            transfer_rows.append(
                (call_id, idx, tr.get("kind"), tr.get("from"), tr.get("to"), tr.get("at"))
            )
    ids = [(k,) for k in latest]
    conn.executemany(
        "INSERT OR REPLACE INTO calls (id, linkedid, direction, status, from_number, "
        "to_number, started_at, answered_at, ended_at, duration, talk, answered_by, "
        "recording, end_reason, live, updated_at, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        call_rows,
    )
    conn.executemany("DELETE FROM legs WHERE call_id = ?", ids)
    conn.executemany("DELETE FROM transfers WHERE call_id = ?", ids)
    conn.executemany(
        "INSERT INTO legs (call_id, idx, ext, result, rang_at, answered_at, ended_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        leg_rows,
    )
    conn.executemany(
        "INSERT INTO transfers (call_id, idx, kind, from_ext, to_target, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        transfer_rows,
    )
    return skipped
