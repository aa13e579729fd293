"""Recovering the calls made while pinc was not listening, from Asterisk's CDR.

After every AMI login (before the live calls are resynced) the rows newer than what pinc
last saw are read (:mod:`pinc.cdr.sources`), grouped into calls (:mod:`pinc.cdr.calls`),
and each call the journal does not hold is submitted as one ``call.ended`` change marked
``"source": "cdr"``: the journal commits it, the feed shows it, and the CRM outbox hook
queues its callbacks like any other call's, in order. A call the journal holds as still
live (pinc was killed during it) ends with what the CDR says, under its own id. A call
whose channels are still up is left to the live tracker. ``pinc backfill`` runs the same.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import trio

from pinc.calls.model import Call, CallChange, CallIdFactory, iso, random_call_id
from pinc.calls.names import Office
from pinc.cdr.calls import calls_from_rows
from pinc.cdr.sources import LONGEST_CALL, CdrError, Source, open_source
from pinc.config import Config
from pinc.services import AmiActions

log = logging.getLogger(__name__)

SOURCE: Final = "cdr"
OVERLAP: Final = 120.0  # seconds each window reaches back into the previous one
SEEN_KEY: Final = "cdr_listening_since"  # meta: the last AMI login's time


@dataclass
class Report:
    """What one recovery found and did."""

    since: float
    rows: int = 0
    calls: int = 0  # calls the rows tell of
    known: int = 0  # already in the journal
    live: int = 0  # still up in Asterisk: the live tracker has them
    recovered: list[dict[str, Any]] = field(default_factory=list)  # submitted (or would be)
    completed: int = 0  # of them, calls the journal held as live (pinc died during them)

    def summary(self) -> str:
        return (
            f"{self.rows} CDR rows since {iso(self.since)}: {self.calls} calls, "
            f"{self.known} already in the journal, {self.live} still up, "
            f"{len(self.recovered)} recovered ({self.completed} ended while pinc was down)"
        )


class Recovery:
    def __init__(
        self,
        config: Config,
        journal: Any,
        *,
        ami: AmiActions | None = None,
        source: Source | None = None,
        new_id: CallIdFactory = random_call_id,
    ) -> None:
        self.config = config
        self.journal = journal  # JournalAccess plus submit (pinc.journal.store.Journal)
        self.ami = ami
        self.source = source if source is not None else open_source(config.cdr)
        self.office = Office(config.pbx)
        self.new_id = new_id
        self._since: float | None = None  # start of the next window; None: ask the journal
        self.runs = 0
        self.recovered = 0
        self.last_error: str | None = None

    def statistics(self) -> dict[str, Any]:
        return {"runs": self.runs, "recovered": self.recovered, "last_error": self.last_error}

    async def on_login(self) -> None:
        """The ingest calls this after every AMI login, before the resync."""
        if self.source is None:
            return
        login_at = time.time()
        try:
            report = await self.run(since=self._since)
        except (CdrError, trio.TooSlowError, OSError, sqlite3.Error) as exc:
            self.last_error = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc)
            log.warning("CDR recovery failed (%s); tried again at the next AMI login",
                        self.last_error)
            return
        except Exception as exc:  # a row pinc cannot make sense of must not stop the ingest
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("CDR recovery failed unexpectedly; tried again at the next login")
            return
        self.last_error = None
        self._since = login_at - OVERLAP  # from now on the live tracker sees every call
        # kept for the next start: a pinc that saw no call still knows when it listened
        await self.journal.write(partial(_set_meta, key=SEEN_KEY, value=str(login_at)))
        if report.recovered or report.completed:
            log.info("CDR recovery: %s", report.summary())

    async def run(self, *, since: float | None = None, dry_run: bool = False) -> Report:
        """Recover the calls of the CDR rows that ended at ``since`` or later (by default:
        since the journal's last change, at most ``cdr.lookback_hours`` back)."""
        if self.source is None:
            raise CdrError("cdr.source is not set: nothing to recover from")
        now = time.time()
        if since is None:
            last = await self.journal.read(_last_seen)
            since = (last - OVERLAP) if last is not None else now
            since = max(since, now - self.config.cdr.lookback_hours * 3600)
        report = Report(since=since)
        source = self.source
        with trio.fail_after(self.config.cdr.timeout):
            rows = await trio.to_thread.run_sync(
                source.rows_since, since, abandon_on_cancel=True
            )
            # the calls that ended since then, with all their rows (also the earlier ones)
            ended = {r.key for r in rows if r.end >= since}
            rows = [r for r in rows if r.key in ended]
            report.rows = len(rows)
            calls = calls_from_rows(rows, self.office, self.new_id)
            report.calls = len(calls)
            if not calls:
                self.runs += 1
                return report
            held = await self.journal.read(
                lambda c: _held(c, [call.linkedid for call in calls], since - LONGEST_CALL)
            )
            up = await self._linkedids_up()
        changes: list[CallChange] = []
        for call in calls:
            if call.linkedid in up:
                report.live += 1
                continue
            found = held.get(call.linkedid)
            if found is not None and not found["live"]:
                report.known += 1
                continue
            snapshot = _snapshot(call, found)
            if found is not None:
                report.completed += 1
            report.recovered.append(snapshot)
            changes.append(CallChange(
                "call.ended", snapshot["id"], snapshot["ended_at"] or iso(now) or "",
                snapshot, {"source": SOURCE},
            ))
        if changes and not dry_run:
            await self.journal.submit(changes)
            self.recovered += len(changes)
        self.runs += 1
        return report

    async def _linkedids_up(self) -> set[str]:
        """Linkedids with a channel up in Asterisk now (empty when AMI is not there)."""
        if self.ami is None or not self.ami.status().get("connected"):
            return set()
        try:
            result = await self.ami.action("CoreShowChannels")
        except Exception as exc:  # not fatal: a live call's rows are not final yet, though
            log.warning("CDR recovery: CoreShowChannels failed (%s)", exc)
            return set()
        return {e.get("Linkedid") for e in result.events if e.get("Linkedid")}


def _snapshot(call: Call, held: dict[str, Any] | None) -> dict[str, Any]:
    data = call.to_dict()
    if held is not None:  # the call pinc followed until it died: same id, same CRM record
        old = held["data"]
        data["id"] = held["id"]
        for key in ("record_id", "origin"):
            data[key] = old.get(key) or data.get(key)
        data["end_reason"] = "ended while pinc was down (from the CDR)"
    data["source"] = SOURCE
    return data


def _last_seen(conn: sqlite3.Connection) -> float | None:
    """The last moment pinc is known to have listened: its last change, or its last login."""
    row = conn.execute("SELECT MAX(recorded_at) FROM events").fetchone()
    seen = [float(row[0])] if row and row[0] is not None else []
    meta = conn.execute("SELECT value FROM meta WHERE key = ?", (SEEN_KEY,)).fetchone()
    if meta is not None:
        try:
            seen.append(float(meta[0]))
        except ValueError:
            pass
    return max(seen) if seen else None


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _held(conn: sqlite3.Connection, linkedids: Sequence[str], since: float) -> dict[str, Any]:
    """The journal's calls for these linkedids (also those merged into another call)."""
    wanted = set(linkedids)
    out: dict[str, Any] = {}
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT id, linkedid, live, data FROM calls WHERE linkedid IN ({marks}) "
        "OR (started_at >= ? AND data LIKE '%\"linkedids\":[\"%,%')",
        [*wanted, iso(since)],
    ).fetchall()
    for call_id, linkedid, live, text in rows:
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        entry = {"id": call_id, "live": bool(live), "data": data}
        for link in {linkedid, *(data.get("linkedids") or ())}:
            if link in wanted:
                out[link] = entry
    return out


__all__ = ["SOURCE", "Recovery", "Report"]
