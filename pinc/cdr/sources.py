"""Reading CDR rows newer than a moment: Master.csv (read from its end) or MySQL (PyMySQL).

Both run in a worker thread (``trio.to_thread``); the caller bounds them with a deadline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, Protocol

from pinc.cdr.rows import SLACK, CdrRow, parse_csv_line, rows_from_dicts, zone
from pinc.config import CdrConfig

BLOCK: Final = 64 * 1024
LONGEST_CALL: Final = 6 * 3600.0  # a call that began this long before `since` may end after it


class CdrError(Exception):
    """The CDR source cannot be read; the message names it and what to check."""


class Source(Protocol):
    def describe(self) -> str: ...

    def rows_since(self, since: float) -> list[CdrRow]:
        """Rows that ended at ``since`` or later, and those of the hour before (a call's
        earlier rows, e.g. a ring that stopped before ``since``). Worker thread."""
        ...


class CsvSource:
    """``cdr_csv``'s Master.csv, read backwards from its end until rows are older than
    ``since`` (less the slack for rows dispatched out of order): a years-old file costs
    what its last hours cost."""

    def __init__(self, config: CdrConfig) -> None:
        self.path = Path(config.csv_path)
        self.tz = zone(config.timezone)

    def describe(self) -> str:
        return f"Master.csv {self.path}"

    def rows_since(self, since: float) -> list[CdrRow]:
        wanted = since - SLACK.total_seconds()
        oldest = wanted - SLACK.total_seconds()
        out: list[CdrRow] = []
        try:
            for line in _lines_backwards(self.path):
                row = parse_csv_line(line, self.tz)
                if row is None:
                    continue
                if row.end < oldest:
                    break
                if row.end >= wanted:
                    out.append(row)
        except FileNotFoundError:
            raise CdrError(
                f"{self.path}: no such file (is cdr_csv loaded? see cdr.csv_path)"
            ) from None
        except PermissionError:
            raise CdrError(
                f"{self.path}: permission denied: let the user running pinc read it"
            ) from None
        out.reverse()
        return out


def _lines_backwards(path: Path) -> Any:
    """The file's lines, last first (a line cut by a write in progress is skipped)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        pos = f.tell()
        tail = b""
        first = True
        while pos > 0:
            size = min(BLOCK, pos)
            pos -= size
            f.seek(pos)
            chunk = f.read(size) + tail
            parts = chunk.split(b"\n")
            tail = parts[0]
            lines = parts[1:]
            if first:
                first = False
                if lines and lines[-1] != b"":
                    lines = lines[:-1]  # still being written
            for raw in reversed(lines):
                if raw.strip():
                    yield raw.decode("utf-8", errors="replace")
        if tail.strip():
            yield tail.decode("utf-8", errors="replace")


class MysqlSource:
    """A MySQL/MariaDB ``cdr`` table (FreePBX's ``asteriskcdrdb.cdr``, cdr_adaptive_odbc's)
    through PyMySQL."""

    def __init__(self, config: CdrConfig) -> None:
        self.config = config
        self.tz = zone(config.timezone)

    def describe(self) -> str:
        c = self.config
        where = f"{c.mysql_host}:{c.mysql_port}/{c.mysql_database}.{c.mysql_table}"
        return f"MySQL {c.mysql_user}@{where}"

    def rows_since(self, since: float) -> list[CdrRow]:
        import pymysql
        import pymysql.cursors

        c = self.config
        if not c.mysql_table.replace("_", "").isalnum():
            raise CdrError(f"cdr.mysql_table {c.mysql_table!r} is not a table name")
        try:
            conn = pymysql.connect(
                host=c.mysql_host, port=c.mysql_port, user=c.mysql_user,
                password=c.mysql_password, database=c.mysql_database,
                connect_timeout=max(1, int(c.timeout)), read_timeout=max(1, int(c.timeout)),
                cursorclass=pymysql.cursors.DictCursor, charset="utf8mb4",
            )
        except pymysql.MySQLError as exc:
            raise CdrError(f"{self.describe()}: cannot connect: {exc.args[-1]}") from None
        try:
            with conn.cursor() as cur:
                cur.execute(f"SHOW COLUMNS FROM `{c.mysql_table}`")
                columns = {str(r["Field"]).lower() for r in cur.fetchall()}
                started = "start" if "start" in columns else "calldate"
                # the start is what the table indexes; a call may end hours after it began
                cur.execute(
                    f"SELECT * FROM `{c.mysql_table}` WHERE `{started}` >= %s "
                    f"ORDER BY `{started}`",
                    (_local_text(since - LONGEST_CALL, self.tz),),
                )
                rows = rows_from_dicts(cur.fetchall(), self.tz)
        except pymysql.MySQLError as exc:
            raise CdrError(f"{self.describe()}: {exc.args[-1]}") from None
        finally:
            conn.close()
        return [r for r in rows if r.end >= since - SLACK.total_seconds()]


def _local_text(ts: float, tz: Any) -> str:
    from datetime import datetime

    moment = datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def open_source(config: CdrConfig) -> Source | None:
    if config.source == "csv":
        return CsvSource(config)
    if config.source == "mysql":
        return MysqlSource(config)
    return None
