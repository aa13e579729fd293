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
from pinc.crm import outbox, resend
from pinc.crm.outbox import Row, fill_owner
from pinc.crm.owners import Owners
from pinc.crm.replies import Outcome, classify
from pinc.crm.vtiger import CALLBACK_PATH, form_params
from pinc.services import Directory, Feed, JournalAccess, NoDirectory

log = logging.getLogger(__name__)

PASS_GAP = 0.01  # seconds between scheduling passes, at least
STATS_EVERY = 1.0  # backlog metrics refresh while busy, seconds
FEED_QUEUE = 1024  # only a wake-up signal: a burst past this is harmless


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
        directory: Directory | None = None,
        owners: Owners | None = None,
        lookup: resend.Lookup | None = None,
    ) -> None:
        self.config = config
        self.lookup = lookup  # asked before a StartApp goes out again (pinc/crm/resend.py)
        self.directory: Directory = directory if directory is not None else NoDirectory()
        self.owners = owners if owners is not None else Owners(config, self.directory, None)
        self._directory_version = -1
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
        self._held = 0
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
            "held": self._held,
            "directory": _directory_status(self.directory),
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
            await self.journal.write(outbox.reset_backoff)
        # No poll: every change to the outbox comes through this process (a commit of the
        # journal, or `pinc outbox` through the API, which pokes or request_retry()s).
        next_due = float("inf")
        await self._release_held()
        if not self._auth_failed:
            heads = await self.journal.read(outbox.heads)
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
        backlog, oldest, dead, held = await self.journal.read(outbox.stats)
        self._backlog = backlog
        self._oldest_age = max(0.0, time.time() - oldest) if oldest else 0.0
        self._dead = dead
        self._held = held
        metrics.OUTBOX_HELD.set(held)
        metrics.OUTBOX_BACKLOG.set(backlog)
        metrics.OUTBOX_OLDEST_AGE.set(self._oldest_age)

    async def _release_held(self) -> None:
        """After the directory changed: held calls whose extension is now a CRM user's
        go out as they were planned."""
        version = getattr(self.directory, "version", 0)
        if version == self._directory_version or not self.directory.known():
            return
        self._directory_version = version
        directory = self.directory

        def mapped(ext: str) -> bool:
            return directory.user_of(ext) is not None

        released = await self.journal.write(partial(outbox.release_held, mapped=mapped))
        if released:
            log.info("CRM delivery: %d held call(s) released, their extensions are CRM users "
                     "now", len(released))
            await self._refresh_stats()

    async def _resolve_owner(self, row: Row) -> None:
        """Name the owner of a call in its waiting rows (once per call, kept on disk)."""
        ext, why = await self.owners.owner_of(str(row.payload.get("_owner") or ""))
        if ext is None:
            # stock vtiger keeps the row with admin; SalesPlatform has no row without a user
            log.warning("CRM: call %s has no owner in the CRM (%s): %s", row.call_id, why,
                        "it has no row there" if self.crm.profile == "salesplatform"
                        else "it stays with the CRM's admin")
        await self.journal.write(
            partial(outbox.set_owner, call_id=row.call_id, ext=ext, why=why)
        )

    async def _deliver_call(self, client: httpx.AsyncClient, call_id: str) -> None:
        """Send one call's waiting callbacks in order until done, failing or paused; then
        go on with the next call that is due, so a slot never idles for a scheduling pass
        while a backlog waits (with a CRM answering in 2 ms, that pass halved the rate)."""
        try:
            while await self._deliver_rows(client, call_id) and not self._auth_failed:
                following = await self._next_due()
                if following is None:
                    break
                self._inflight.discard(call_id)
                call_id = following
        except Exception as exc:  # a journal error: the row stays pending, tried again later
            log.warning("CRM delivery of call %s paused: %s", call_id, exc)
        finally:
            self._inflight.discard(call_id)
            self.poke()

    async def _next_due(self) -> str | None:
        """A due call nobody delivers yet, now marked in flight; None when there is none."""
        heads = await self.journal.read(outbox.heads)
        now = time.time()
        for call_id, due in heads:
            if due <= now and call_id not in self._inflight:
                self._inflight.add(call_id)
                return call_id
        return None

    async def _deliver_rows(self, client: httpx.AsyncClient, call_id: str) -> bool:
        """True once the call has nothing left to send (False: paused, failing, not due)."""
        while not self._auth_failed:
            rows = await self.journal.read(partial(outbox.pending_of, call_id=call_id))
            if not rows:
                return True
            if rows[0].needs_owner:
                await self._resolve_owner(rows[0])
                continue
            for row in rows:
                if self._auth_failed or row.next_attempt_at > time.time():
                    return False
                if row.needs_owner:
                    break  # resolve it first (the loop above), then go on in order
                if await resend.arrived_before(self.config, self.lookup, self.journal, row):
                    if not await self._commit_done(row.id):
                        return False
                    continue
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
                        return False  # dropped meanwhile by `pinc outbox drop`
                    self.delivered += 1
                    metrics.CRM_CALLBACKS.labels(result="ok").inc()
                    self._note_ok()
                    continue
                if outcome.result == "auth":
                    # the row records the failure before the status says so
                    await self.journal.write(
                        partial(outbox.mark_auth, row_id=row.id, error=outcome.error)
                    )
                    self._note_auth(outcome.error)
                    self._auth_row = row.id
                    metrics.CRM_CALLBACKS.labels(result="auth").inc()
                    return False
                await self._note_failure(row, outcome)
                return False
        return False

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
                kept = await self.journal.write(partial(outbox.mark_done_many, ids=ids))
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
        data = form_params(row.kind, fill_owner(row.payload), self.crm)
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
        if self.crm.secret:  # an error page may echo the request: never quote the secret
            body = body.replace(self.crm.secret, "********")
        return classify(response.status_code, body, self._url)

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
            await self.journal.write(lambda c: outbox.mark_dead(c, row, outcome.error))
            metrics.CRM_CALLBACKS.labels(result="dead").inc()
            return
        delay = min(self.crm.retry_max, self.crm.retry_min * 2 ** min(attempts - 1, 30))
        delay *= random.uniform(0.8, 1.0)
        def retry(conn: sqlite3.Connection) -> None:
            outbox.mark_retry(conn, row.id, attempts, now + delay, outcome.error)

        await self.journal.write(retry)
        metrics.CRM_CALLBACKS.labels(result="retry").inc()


def _directory_status(directory: Directory) -> dict[str, Any]:
    status = getattr(directory, "status", None)
    if callable(status):
        found = status()
        if isinstance(found, dict):
            return found
    return {"state": "off", "users": len(directory.users())}
