"""The outbox worker: delivers queued callbacks to vtiger, durable and in order per call.

Rules (docs/crm.md): a call's callbacks go one at a time, oldest first, and the next
is sent only after the previous one is committed as done, so StartApp / DialBegin is
confirmed before anything else of the call (vtiger silently drops updates for a
callUUID it does not know). Calls run in parallel up to crm.concurrency. Failures
back off exponentially up to crm.retry_max; an ``Authentication Failure`` answer
pauses everything until ``request_retry()`` or a restart with a fixed secret. All
state lives in the outbox table, so a restart resumes where the last run stopped.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import trio

from pinc import metrics
from pinc.calls.model import CallChange
from pinc.config import Config
from pinc.crm.vtiger import CALLBACK_PATH, form_params
from pinc.services import Feed, JournalAccess

log = logging.getLogger(__name__)

HEADS_LIMIT = 512  # calls looked at per scheduling pass
PASS_GAP = 0.01  # seconds between scheduling passes, at least
STATS_EVERY = 1.0  # backlog metrics refresh while busy, seconds
FEED_QUEUE = 1024  # only a wake-up signal: a burst past this is harmless


@dataclass(frozen=True)
class Row:
    id: int
    call_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: float
    created_at: float


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: done, retry later, or the CRM refused our secret."""

    result: str  # ok, retry, auth
    error: str = ""
    state: str = "ok"  # the worker state this outcome implies (unreachable, error, ...)


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
    )


_COLS = "id, call_id, kind, payload, attempts, next_attempt_at, created_at"


def classify(status: int, body: str) -> Outcome:
    """vtiger's answer to one callback, read the way its PHP writes it."""
    text = body.strip()
    low = text[:512].lower()
    if "<authentication>failure</authentication>" in low:
        return Outcome("auth", "vtiger answered Authentication Failure: crm.secret does not "
                       "match vtiger's PBXManager secret key", "auth-failed")
    if status >= 500:
        return Outcome("retry", f"CRM answered HTTP {status}", "unreachable")
    if low.startswith("<!doctype html") or low.startswith("<html") or "<body" in low:
        return Outcome("retry", f"CRM answered an HTML page (HTTP {status}), not the PBXManager "
                       "callback: check crm.url (the vtiger root, e.g. http://crm/vtigercrm) "
                       "and that PBXManager is installed", "error")
    if status != 200:
        return Outcome("retry", f"CRM answered HTTP {status} for {CALLBACK_PATH}: check crm.url "
                       "and that PBXManager is installed", "error")
    return Outcome("ok")


@dataclass
class _Done:
    row_id: int
    event: trio.Event = field(default_factory=trio.Event)
    kept: bool = False
    error: Exception | None = None


class DeliveryWorker:
    """Implements ``pinc.services.CrmState``; start with ``await nursery.start(w.run)``."""

    def __init__(
        self,
        config: Config,
        journal: JournalAccess,
        feed: Feed,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.crm = config.crm
        self.journal = journal
        self.feed = feed
        self._transport = transport
        self._url = self.crm.url.rstrip("/") + CALLBACK_PATH if self.crm.url else ""
        self._wake = trio.Event()
        self._inflight: set[str] = set()
        self._auth_failed = False
        self._auth_row: int | None = None
        self._done_queue: list[_Done] = []
        self._committing: trio.Event | None = None
        self._retry_requested = False
        self._state = "ok" if self.crm.url else "disabled"
        self._last_error: str | None = None
        self._backlog = 0
        self._oldest_age = 0.0
        self._dead = 0
        self.delivered = 0  # callbacks vtiger accepted in this run
        self._stats_at = -STATS_EVERY

    # --- CrmState ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "profile": self.crm.profile,
            "url": self.crm.url,
            "backlog": self._backlog,
            "oldest_age": round(self._oldest_age, 1),
            "dead": self._dead,
            "in_flight": len(self._inflight),
            "delivered": self.delivered,
            "last_error": self._last_error,
        }

    def request_retry(self) -> None:
        """Resume after an auth failure and retry every waiting callback now."""
        if self._auth_failed:
            log.warning("CRM delivery resumed on request after an authentication failure")
        self._auth_failed = False
        self._auth_row = None
        metrics.CRM_AUTH_FAILED.set(0)
        self._retry_requested = True
        self.poke()

    def poke(self) -> None:
        self._wake.set()

    # --- running -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self.crm.url:
            task_status.started()
            await trio.sleep_forever()
        limits = httpx.Limits(
            max_connections=self.crm.concurrency,
            max_keepalive_connections=self.crm.concurrency,
            keepalive_expiry=30.0,
        )
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(self.crm.timeout),
                limits=limits,
                transport=self._transport,
                headers={"User-Agent": "pinc"},
                follow_redirects=False,
            ) as client,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._watch_feed)
            await self._refresh_stats()
            task_status.started()
            await self._schedule(client, nursery)

    async def _watch_feed(self) -> None:
        """Wake after each commit: the batch hook put its outbox rows in that transaction."""
        subscription = self.feed.subscribe(FEED_QUEUE)
        try:
            change: CallChange
            async for change in subscription:
                del change
                self.poke()
        finally:
            with trio.CancelScope(shield=True):
                await subscription.aclose()

    async def _schedule(self, client: httpx.AsyncClient, nursery: trio.Nursery) -> None:
        while True:
            try:
                await self._schedule_once(client, nursery)
            except Exception as exc:  # the journal refused a read or write: keep going
                log.warning("CRM delivery cannot use the journal: %s (retrying)", exc)
                await trio.sleep(1.0)

    async def _schedule_once(self, client: httpx.AsyncClient, nursery: trio.Nursery) -> None:
        self._wake = trio.Event()
        if self._retry_requested:
            self._retry_requested = False
            await self.journal.write(_reset_backoff)
        # No poll: every change to the outbox comes through this process (a commit of the
        # journal, or `pinc outbox` through the API, which pokes or request_retry()s).
        next_due = float("inf")
        if not self._auth_failed:
            heads = await self.journal.read(_heads)
            now = time.time()
            for call_id, due in heads:
                if call_id in self._inflight:
                    continue
                if due > now:
                    next_due = min(next_due, due)
                    continue
                if len(self._inflight) >= self.crm.concurrency:
                    break
                self._inflight.add(call_id)
                nursery.start_soon(self._deliver_call, client, call_id)
        if trio.current_time() - self._stats_at >= STATS_EVERY or not self._inflight:
            await self._refresh_stats()
        with trio.move_on_at(trio.current_time() + max(0.0, next_due - time.time())):
            await self._wake.wait()
        # coalesce wake-ups: each pass costs a query over the waiting rows
        await trio.sleep(PASS_GAP)

    async def _refresh_stats(self) -> None:
        self._stats_at = trio.current_time()
        backlog, oldest, dead = await self.journal.read(_stats)
        self._backlog = backlog
        self._oldest_age = max(0.0, time.time() - oldest) if oldest else 0.0
        self._dead = dead
        metrics.OUTBOX_BACKLOG.set(backlog)
        metrics.OUTBOX_OLDEST_AGE.set(self._oldest_age)

    async def _deliver_call(self, client: httpx.AsyncClient, call_id: str) -> None:
        """Send one call's waiting callbacks in order until done, failing or paused."""
        try:
            await self._deliver_rows(client, call_id)
        except Exception as exc:  # a journal error: the row stays pending, tried again later
            log.warning("CRM delivery of call %s paused: %s", call_id, exc)
        finally:
            self._inflight.discard(call_id)
            self.poke()

    async def _deliver_rows(self, client: httpx.AsyncClient, call_id: str) -> None:
        while not self._auth_failed:
            rows = await self.journal.read(partial(_pending_of, call_id=call_id))
            if not rows:
                return
            for row in rows:
                if self._auth_failed or row.next_attempt_at > time.time():
                    return
                # a shutdown waits for the request in flight and its commit (bounded by
                # crm.timeout) so that a stop never repeats a callback vtiger accepted
                outcome, kept = Outcome("retry", "interrupted by shutdown", self._state), False
                with trio.CancelScope(shield=True) as shield:
                    shield.deadline = trio.current_time() + self.crm.timeout + 3.0
                    outcome = await self._send(client, row)
                    if outcome.result == "ok":
                        # committed before the next of this call is sent: a crash can
                        # only repeat this one callback (the window docs/crm.md shows)
                        kept = await self._commit_done(row.id)
                if outcome.result == "ok":
                    if not kept:
                        return  # dropped meanwhile by `pinc outbox drop`
                    self.delivered += 1
                    metrics.CRM_CALLBACKS.labels(result="ok").inc()
                    self._note_ok()
                    continue
                if outcome.result == "auth":
                    self._note_auth(outcome.error)
                    self._auth_row = row.id
                    await self.journal.write(
                        partial(_mark_auth, row_id=row.id, error=outcome.error)
                    )
                    metrics.CRM_CALLBACKS.labels(result="auth").inc()
                    return
                await self._note_failure(row, outcome)
                return

    async def _commit_done(self, row_id: int) -> bool:
        """Mark a row done; rows answered meanwhile by other calls share the commit.

        The first waiter writes every queued id in one transaction (a group commit), the
        others wait for it; each returns only once its own row is committed.
        """
        entry = _Done(row_id)
        self._done_queue.append(entry)
        while not entry.event.is_set():
            if self._committing is not None:
                await self._committing.wait()
                continue
            batch, self._done_queue = self._done_queue, []
            self._committing = trio.Event()
            try:
                ids = [e.row_id for e in batch]
                kept = await self.journal.write(partial(_mark_done_many, ids=ids))
                for e in batch:
                    e.kept = e.row_id in kept
            except Exception as exc:
                for e in batch:
                    e.error = exc
            finally:
                for e in batch:
                    e.event.set()
                self._committing.set()
                self._committing = None
        if entry.error is not None:
            raise entry.error
        return entry.kept

    async def _send(self, client: httpx.AsyncClient, row: Row) -> Outcome:
        data = form_params(row.kind, row.payload, self.crm)
        try:
            with trio.fail_after(self.crm.timeout + 1.0):
                response = await client.post(self._url, data=data)
                body = response.text
        except trio.TooSlowError:
            return Outcome("retry", f"no answer from {self._url} within {self.crm.timeout:g} s",
                           "unreachable")
        except httpx.TimeoutException:
            return Outcome("retry", f"no answer from {self._url} within {self.crm.timeout:g} s",
                           "unreachable")
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            return Outcome("retry", f"cannot reach {self._url}: {reason}", "unreachable")
        return classify(response.status_code, body)

    # --- bookkeeping ---------------------------------------------------------------

    def _note_ok(self) -> None:
        if self._state != "ok":
            log.info("CRM delivery is working again (%s)", self._url)
        self._state = "ok"
        self._last_error = None

    def _note_auth(self, error: str) -> None:
        if not self._auth_failed:
            log.error(
                "CRM DELIVERY STOPPED: %s. Nothing is dropped; fix crm.secret and restart, "
                "or request a retry (pinc outbox retry).",
                error,
            )
        self._auth_failed = True
        self._state = "auth-failed"
        self._last_error = error
        metrics.CRM_AUTH_FAILED.set(1)

    async def _note_failure(self, row: Row, outcome: Outcome) -> None:
        now = time.time()
        if outcome.error != self._last_error:
            log.warning("CRM callback %s for call %s not delivered: %s (will retry)",
                        row.kind, row.call_id, outcome.error)
        self._state = outcome.state
        self._last_error = outcome.error
        attempts = row.attempts + 1
        if now - row.created_at >= self.crm.dead_letter_hours * 3600:
            log.error("CRM callbacks of call %s are dead letters after %g h: %s "
                      "(see pinc outbox list --dead)", row.call_id,
                      self.crm.dead_letter_hours, outcome.error)
            await self.journal.write(lambda c: _mark_dead(c, row, outcome.error))
            metrics.CRM_CALLBACKS.labels(result="dead").inc()
            return
        delay = min(self.crm.retry_max, self.crm.retry_min * 2 ** min(attempts - 1, 30))
        delay *= random.uniform(0.8, 1.0)
        def retry(conn: sqlite3.Connection) -> None:
            _mark_retry(conn, row.id, attempts, now + delay, outcome.error)

        await self.journal.write(retry)
        metrics.CRM_CALLBACKS.labels(result="retry").inc()


# --- SQL, run through JournalAccess (writes on the single writer) ----------------------


def _heads(conn: sqlite3.Connection) -> list[tuple[str, float]]:
    """The oldest waiting callback of each call: only it may be sent."""
    rows = conn.execute(
        "SELECT o.call_id, o.next_attempt_at FROM outbox o JOIN ("
        " SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' GROUP BY call_id"
        ") h ON o.id = h.id ORDER BY o.next_attempt_at, o.id LIMIT ?",
        (HEADS_LIMIT,),
    ).fetchall()
    return [(str(r[0]), float(r[1])) for r in rows]


def _pending_of(conn: sqlite3.Connection, call_id: str) -> list[Row]:
    rows = conn.execute(
        f"SELECT {_COLS} FROM outbox WHERE state = 'pending' AND call_id = ? ORDER BY id",
        (call_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def _stats(conn: sqlite3.Connection) -> tuple[int, float | None, int]:
    backlog, oldest = conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'"
    ).fetchone()
    (dead,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").fetchone()
    return int(backlog), (float(oldest) if oldest is not None else None), int(dead)


def _mark_done_many(conn: sqlite3.Connection, ids: list[int]) -> set[int]:
    """Rows vtiger accepted -> done; returns those still pending (not dropped meanwhile)."""
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


def _mark_retry(
    conn: sqlite3.Connection, row_id: int, attempts: int, at: float, error: str
) -> None:
    conn.execute(
        "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? "
        "WHERE id = ? AND state = 'pending'",
        (attempts, at, error, row_id),
    )


def _mark_dead(conn: sqlite3.Connection, row: Row, error: str) -> None:
    # the rest of the call goes with it: vtiger would drop them without their StartApp
    conn.execute(
        "UPDATE outbox SET state = 'dead', attempts = attempts + (id = ?), last_error = ? "
        "WHERE call_id = ? AND state = 'pending' AND id >= ?",
        (row.id, error, row.call_id, row.id),
    )


def _mark_auth(conn: sqlite3.Connection, row_id: int, error: str) -> None:
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ? "
        "WHERE id = ? AND state = 'pending'",
        (error, row_id),
    )


def _reset_backoff(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE outbox SET next_attempt_at = 0 WHERE state = 'pending'")
