"""The outbox table: callbacks planned at commit, read and marked by the delivery worker.

``make_outbox_hook`` runs the profile inside the journal's batch transaction, so a
change and its callbacks commit together. Row states: ``pending`` (to send, in id order
per call), ``done``, ``dead`` (failed for crm.dead_letter_hours), ``dropped`` (never to
be sent: ``pinc outbox drop``, or an owner nobody can be), ``held`` (the call's extension
has no CRM user and no crm.fallback_user is set: the CRM would misfile it; released as
planned once the directory knows the extension, or by ``pinc outbox retry``).
The SQL here runs through ``JournalAccess`` (writes on the single writer).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pinc.calls.model import CallChange
from pinc.config import Config
from pinc.crm import salesplatform, vtiger
from pinc.crm.callbacks import OWNER, Callback, History, Parties, Plan
from pinc.crm.owners import parties as parties_of
from pinc.crm.vtiger import recording_exists
from pinc.services import Directory, NoDirectory

HEADS_LIMIT: Final = 512  # calls looked at per scheduling pass

PROFILES: dict[str, Callable[[CallChange, History, Config, Parties, bool], Plan]] = {
    "vtiger": vtiger.plan,
    "salesplatform": salesplatform.plan,
}


def plan_call(
    change: CallChange, history: History, config: Config, parties: Parties, recording_ok: bool
) -> Plan:
    """The callbacks one change adds for its call, in the order they must be sent.

    Internal calls are not customer calls: the CRM gets none of them.
    """
    if str(change.call.get("direction") or "") not in ("inbound", "outbound"):
        return Plan()
    return PROFILES[config.crm.profile](change, history, config, parties, recording_ok)


def plan_callbacks(
    change: CallChange,
    history: History,
    config: Config,
    *,
    recording_ok: bool = False,
    parties: Parties | None = None,
) -> list[Callback]:
    """``plan_call``'s callbacks; without ``parties`` every extension is a CRM user's."""
    chosen = parties if parties is not None else parties_of(config, NoDirectory())
    return plan_call(change, history, config, chosen, recording_ok).callbacks


def _history(conn: sqlite3.Connection, call_id: str) -> tuple[list[Callback], str | None]:
    """The callbacks queued for a call (any state) and, if it is held, for whom."""
    rows = conn.execute(
        "SELECT kind, payload, state FROM outbox WHERE call_id = ? ORDER BY id", (call_id,)
    ).fetchall()
    out = []
    held: str | None = None
    for kind, payload, state in rows:
        try:
            params = json.loads(payload)
        except ValueError:
            params = {}
        params = params if isinstance(params, dict) else {}
        if state == "held":
            held = str(params.get("_hold") or "")
        out.append(Callback(str(kind), params))
    return out, held


def make_outbox_hook(
    config: Config, directory: Directory | None = None
) -> Callable[[sqlite3.Connection, Sequence[CallChange]], None]:
    """The journal batch hook: the outbox rows of a batch commit with the batch itself."""
    known = directory if directory is not None else NoDirectory()

    def hook(conn: sqlite3.Connection, changes: Sequence[CallChange]) -> None:
        if not config.crm.url:
            return
        now = time.time()
        who = parties_of(config, known)
        for change in changes:
            history, held = _history(conn, change.call_id)
            ok = change.kind == "call.ended" and recording_exists(
                config, change.call.get("recording")
            )
            plan = plan_call(change, history, config, who, ok)
            hold = held if held is not None else plan.hold
            for cb in plan.callbacks:
                params = {**cb.params, "_hold": hold} if hold else cb.params
                conn.execute(
                    "INSERT INTO outbox (call_id, kind, payload, state, last_error, created_at,"
                    " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 0)",
                    (change.call_id, cb.kind, json.dumps(params, ensure_ascii=False),
                     "held" if hold else "pending", held_reason(hold) if hold else None, now),
                )

    return hook


def held_reason(ext: str) -> str:
    return (f"held: extension {ext} has no CRM user (set its CRM Phone Extension, or "
            "crm.fallback_user)")


def fill_owner(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with :data:`OWNER` replaced by the owner the worker resolved."""
    ext = payload.get("_owner_ext")
    if not ext:
        return payload
    return {k: (v.replace(OWNER, str(ext)) if isinstance(v, str) else v)
            for k, v in payload.items()}


# --- reads and writes of the delivery worker -------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    call_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: float
    created_at: float
    sent_at: float | None = None  # its last request went out then (None: never sent)

    @property
    def needs_owner(self) -> bool:
        return "_owner" in self.payload and not self.payload.get("_owner_ext")


_COLS = "id, call_id, kind, payload, attempts, next_attempt_at, created_at, sent_at"


def _row(r: sqlite3.Row | tuple[Any, ...]) -> Row:
    try:
        payload = json.loads(r[3])
    except ValueError:
        payload = {}
    return Row(
        id=int(r[0]),
        call_id=str(r[1]),
        kind=str(r[2]),
        payload=payload if isinstance(payload, dict) else {},
        attempts=int(r[4]),
        next_attempt_at=float(r[5]),
        created_at=float(r[6]),
        sent_at=float(r[7]) if r[7] is not None else None,
    )


def heads(conn: sqlite3.Connection) -> list[tuple[str, float]]:
    """The oldest waiting callback of each call: only it may be sent."""
    rows = conn.execute(
        "SELECT o.call_id, o.next_attempt_at FROM outbox o JOIN ("
        " SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' GROUP BY call_id"
        ") h ON o.id = h.id ORDER BY o.next_attempt_at, o.id LIMIT ?",
        (HEADS_LIMIT,),
    ).fetchall()
    return [(str(r[0]), float(r[1])) for r in rows]


def pending_of(conn: sqlite3.Connection, call_id: str) -> list[Row]:
    rows = conn.execute(
        f"SELECT {_COLS} FROM outbox WHERE state = 'pending' AND call_id = ? ORDER BY id",
        (call_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def stats(conn: sqlite3.Connection) -> tuple[int, float | None, int, int]:
    """(backlog, oldest created_at, dead rows, held calls)."""
    backlog, oldest = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'"
    ).fetchone()
    (dead,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").fetchone()
    (held,) = conn.execute(
        "SELECT COUNT(DISTINCT call_id) FROM outbox WHERE state = 'held'"
    ).fetchone()
    return int(backlog), (float(oldest) if oldest is not None else None), int(dead), int(held)


def mark_done_many(conn: sqlite3.Connection, ids: list[int]) -> set[int]:
    """Rows the CRM accepted -> done; returns those still pending (not dropped meanwhile)."""
    now = time.time()
    kept = set()
    for row_id in ids:
        cur = conn.execute(
            "UPDATE outbox SET state = 'done', done_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE id = ? AND state = 'pending'",
            (now, row_id),
        )
        if cur.rowcount == 1:
            kept.add(row_id)
    return kept


def mark_sent(conn: sqlite3.Connection, row_id: int, at: float) -> None:
    conn.execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (at, row_id))


def mark_retry(
    conn: sqlite3.Connection, row_id: int, attempts: int, at: float, error: str
) -> None:
    conn.execute(
        "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? "
        "WHERE id = ? AND state = 'pending'",
        (attempts, at, error, row_id),
    )


def mark_dead(conn: sqlite3.Connection, row: Row, error: str) -> None:
    # the rest of the call goes with it: the CRM would drop them without their first one
    conn.execute(
        "UPDATE outbox SET state = 'dead', attempts = attempts + (id = ?), last_error = ? "
        "WHERE call_id = ? AND state = 'pending' AND id >= ?",
        (row.id, error, row.call_id, row.id),
    )


def mark_auth(conn: sqlite3.Connection, row_id: int, error: str) -> None:
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ? "
        "WHERE id = ? AND state = 'pending'",
        (error, row_id),
    )


def was_reset(conn: sqlite3.Connection, row_id: int) -> bool:
    row = conn.execute("SELECT attempts, state FROM outbox WHERE id = ?", (row_id,)).fetchone()
    return row is None or row[0] == 0 or row[1] != "pending"


def reset_backoff(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE outbox SET next_attempt_at = 0 WHERE state = 'pending'")


def set_owner(conn: sqlite3.Connection, call_id: str, ext: str | None, why: str) -> int:
    """Record a call's resolved owner in its waiting rows (so a restart keeps it), or
    drop the rows that only existed to name an owner when there is none."""
    rows = conn.execute(
        "SELECT id, payload FROM outbox WHERE call_id = ? AND state = 'pending'", (call_id,)
    ).fetchall()
    changed = 0
    for row_id, raw in rows:
        try:
            payload = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(payload, dict) or "_owner" not in payload or payload.get("_owner_ext"):
            continue
        if ext:
            payload["_owner_ext"] = ext
            conn.execute("UPDATE outbox SET payload = ? WHERE id = ?",
                         (json.dumps(payload, ensure_ascii=False), row_id))
        else:
            conn.execute("UPDATE outbox SET state = 'dropped', done_at = ?, last_error = ? "
                         "WHERE id = ?", (time.time(), f"no owner: {why}", row_id))
        changed += 1
    return changed


def release_held(conn: sqlite3.Connection, mapped: Callable[[str], bool]) -> list[str]:
    """Held calls whose extension is now a CRM user's go to pending, as planned."""
    rows = conn.execute(
        "SELECT call_id, payload FROM outbox WHERE state = 'held' ORDER BY id"
    ).fetchall()
    waiting: dict[str, str] = {}
    for call_id, raw in rows:
        if call_id in waiting:
            continue
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        waiting[str(call_id)] = str(payload.get("_hold") or "") if isinstance(payload,
                                                                              dict) else ""
    released = [call_id for call_id, ext in waiting.items() if ext and mapped(ext)]
    for call_id in released:
        conn.execute("UPDATE outbox SET state = 'pending', next_attempt_at = 0, last_error = "
                     "NULL WHERE call_id = ? AND state = 'held'", (call_id,))
    return released


# --- pinc outbox retry|drop: run by the service's single writer (POST /api/outbox/...) or,
# only when no pinc holds the journal, by the CLI --------------------------------------


def retry(conn: sqlite3.Connection, ids: Sequence[int], now: float | None = None) -> int:
    """Dead (or waiting) callbacks back to pending, to be tried at once; no ids: every dead
    or waiting one. A held call goes only when named by id (its extension has no CRM user:
    sent as planned, the CRM files it under whoever has that extension by then). Returns
    how many rows changed. Runs inside the caller's transaction."""
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
        "AND state IN ('dead', 'pending', 'held') GROUP BY call_id",
        list(ids),
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
    return changed


def drop(conn: sqlite3.Connection, ids: Sequence[int], now: float | None = None) -> int:
    """Never send these callbacks (state 'dropped'; the rows stay for the record)."""
    if not ids:
        return 0
    now = time.time() if now is None else now
    marks = ",".join("?" * len(ids))
    return int(conn.execute(
        f"UPDATE outbox SET state = 'dropped', done_at = ? "
        f"WHERE id IN ({marks}) AND state IN ('pending', 'dead', 'held')",
        [now, *ids],
    ).rowcount)
