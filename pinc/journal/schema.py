"""The journal's schema and its versioned migrations (sqlite-utils).

``meta.schema_version`` records the last migration applied; each migration runs
once, in order, inside one transaction. Add a migration by appending a function to
``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

import sqlite_utils

OUTBOX_DDL: Final = """
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  call_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at REAL NOT NULL,
  done_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, call_id, id);
"""


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.table("calls").create(
        {
            "id": str,
            "linkedid": str,
            "direction": str,
            "status": str,
            "from_number": str,
            "to_number": str,
            "started_at": str,
            "answered_at": str,
            "ended_at": str,
            "duration": int,
            "talk": int,
            "answered_by": str,
            "recording": str,
            "end_reason": str,
            "live": int,
            "updated_at": float,  # epoch seconds of the last write
            "data": str,  # the whole snapshot, JSON, in the `pinc replay` shape
        },
        pk="id",
        not_null={"linkedid", "direction", "status", "live", "data"},
    )
    db.table("calls").create_index(["started_at", "id"], index_name="calls_started")
    db.table("calls").create_index(["from_number"], index_name="calls_from")
    db.table("calls").create_index(["to_number"], index_name="calls_to")
    db.table("calls").create_index(["answered_by"], index_name="calls_answered_by")
    db.execute("CREATE INDEX calls_live ON calls(live) WHERE live = 1")
    db.table("legs").create(
        {
            "call_id": str,
            "idx": int,
            "ext": str,
            "result": str,
            "rang_at": str,
            "answered_at": str,
            "ended_at": str,
        },
        pk=("call_id", "idx"),
    )
    db.table("legs").create_index(["ext"], index_name="legs_ext")
    db.table("transfers").create(
        {"call_id": str, "idx": int, "kind": str, "from_ext": str, "to_target": str, "at": str},
        pk=("call_id", "idx"),
    )
    # every CallChange, in commit order (seq); retention prunes by recorded_at
    db.execute(
        """CREATE TABLE events (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             call_id TEXT NOT NULL,
             kind TEXT NOT NULL,
             at TEXT NOT NULL,
             recorded_at REAL NOT NULL,
             data TEXT NOT NULL,
             call TEXT NOT NULL
           )"""
    )
    db.table("events").create_index(["call_id", "seq"], index_name="events_call")
    db.table("events").create_index(["recorded_at"], index_name="events_recorded")
    # statement by statement: executescript would commit the migration's transaction
    for statement in OUTBOX_DDL.split(";"):
        if statement.strip():
            db.execute(statement)


# when a callback's last request went out: a StartApp sent before (its answer lost to a
# crash or a timeout) may have created vtiger's row already (pinc/crm/delivery.py)
OUTBOX_V2_DDL: Final = "ALTER TABLE outbox ADD COLUMN sent_at REAL"


def _v2_outbox_sent_at(db: sqlite_utils.Database) -> None:
    db.execute(OUTBOX_V2_DDL)


Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: Final[list[Migration]] = [_v1_initial, _v2_outbox_sent_at]
SCHEMA_VERSION: Final = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The file was written by a newer pinc."""


def schema_version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to ``SCHEMA_VERSION``; returns the version found before."""
    db = sqlite_utils.Database(conn, execute_plugins=False)
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"schema version {found} is newer than this pinc knows ({SCHEMA_VERSION})"
        )
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version - 1](db)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(version),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
