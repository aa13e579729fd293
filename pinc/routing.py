"""Who should take a call from a number: cache -> CRM -> journal -> nobody, within a deadline.

The dialplan waits (the caller hears silence) while FastAGI asks this, so the whole
lookup is bounded by ``routing.deadline``. A CRM lookup that outlives the deadline
is not abandoned: it runs on in the Router's own nursery and fills the cache, so the
next call from that number is answered at once.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio

from pinc import metrics
from pinc.calls.model import iso
from pinc.config import Config
from pinc.crm.numbers import normalize_number, number_variants
from pinc.journal import queries
from pinc.services import JournalAccess, Responsible

__all__ = ["CrmLookup", "Customer", "Router", "normalize_number", "number_variants"]

log = logging.getLogger(__name__)

MAX_CACHE: Final = 100_000  # numbers remembered; the oldest entry goes first
MAX_INFLIGHT: Final = 256  # concurrent CRM lookups; beyond it a caller gets no CRM answer
JOURNAL_RESERVE: Final = 0.2  # share of the deadline kept for the journal fallback

LastTalker = Callable[[sqlite3.Connection, str, str], "str | None"]


@dataclass(frozen=True)
class Customer:
    """A CRM record that owns a phone number, and its responsible employee."""

    name: str
    module: str = ""  # Contacts, Accounts, Leads
    record_id: str = ""  # the CRM id, e.g. "12x34"
    user_name: str | None = None
    user_extension: str | None = None


class CrmLookup(Protocol):
    async def find_customer(self, number: str) -> Customer | None:
        """The customer with this (normalised) number, or None when the CRM has none."""
        ...


class _Lookup:
    """One CRM lookup in flight; every caller asking for the same number waits on it."""

    __slots__ = ("customer", "done", "ok")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = False
        self.customer: Customer | None = None


def _default_last_talker() -> LastTalker | None:
    return queries.last_talker


_LOOKUP_COUNTERS: dict[str, Any] = {}


def _count(source: str) -> None:
    # labels() takes a lock and builds a key each time; the hot path keeps the children
    counter = _LOOKUP_COUNTERS.get(source)
    if counter is None:
        counter = _LOOKUP_COUNTERS[source] = metrics.ROUTING_LOOKUPS.labels(source)
    counter.inc()


def _answer(customer: Customer, source: str) -> Responsible:
    return Responsible(
        ext=customer.user_extension,
        user=customer.user_name or None,
        customer_name=customer.name or None,
        source=source,
    )


class Router:
    """Implements :class:`pinc.services.Router`.

    Start ``run`` in a nursery so CRM answers that come after the deadline fill the cache.
    """

    def __init__(
        self,
        config: Config,
        *,
        crm: CrmLookup | None,
        journal: JournalAccess | None,
        last_talker: LastTalker | None = None,
    ) -> None:
        self.config = config
        self._routing = config.routing
        self._crm = crm
        self._crm_timeout = config.crm.timeout
        self._journal = journal
        self._last_talker = last_talker
        self._cache: dict[str, tuple[float, Customer | None]] = {}
        self._inflight: dict[str, _Lookup] = {}
        self._nursery: trio.Nursery | None = None
        self._extension = re.compile(config.pbx.extension_pattern)
        self._counts = {"cache_hits": 0, "crm_lookups": 0, "crm_failures": 0, "late_fills": 0}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def statistics(self) -> dict[str, Any]:
        return {"cache_entries": len(self._cache), "inflight": len(self._inflight), **self._counts}

    def forget(self, number: str | None = None) -> None:
        """Drop one number (any form) or the whole cache."""
        if number is None:
            self._cache.clear()
        else:
            self._cache.pop(normalize_number(number, self._routing), None)

    def cached(self, number: str) -> Responsible | None:
        """The answer at once when the cache holds the number's customer with a responsible
        employee (or the number has no digits); None when answering means waiting."""
        wall = time.perf_counter()
        canonical = normalize_number(number, self._routing)
        if canonical:
            found, customer = self._cache_get(canonical)
            if not found or customer is None or not self._valid_ext(customer):
                return None
            self._counts["cache_hits"] += 1
            answer = _answer(customer, "cache")
        else:
            answer = Responsible()
        _count(answer.source)
        metrics.ROUTING_SECONDS.observe(time.perf_counter() - wall)
        return answer

    async def responsible(self, number: str) -> Responsible:
        start = trio.current_time()
        wall = time.perf_counter()
        canonical = normalize_number(number, self._routing)
        answer = Responsible()
        if canonical:
            answer = await self._lookup(canonical, start + self._routing.deadline)
        _count(answer.source)
        metrics.ROUTING_SECONDS.observe(time.perf_counter() - wall)
        return answer

    async def _lookup(self, number: str, deadline: float) -> Responsible:
        source = "cache"
        found, customer = self._cache_get(number)
        if found:
            self._counts["cache_hits"] += 1
        else:
            source = "crm"
            reserve = JOURNAL_RESERVE * self._routing.deadline if self._journal_enabled() else 0.0
            customer = await self._ask_crm(number, deadline - reserve)
        if customer is not None and self._valid_ext(customer):
            return _answer(customer, source)
        name = customer.name or None if customer is not None else None
        ext = await self._ask_journal(number, deadline)
        if ext:
            return Responsible(ext=ext, customer_name=name, source="journal")
        return Responsible(customer_name=name, source=source if customer is not None else "none")

    # -- cache -------------------------------------------------------------------------

    def _cache_get(self, number: str) -> tuple[bool, Customer | None]:
        entry = self._cache.get(number)
        if entry is None:
            return False, None
        if entry[0] <= trio.current_time():
            del self._cache[number]
            return False, None
        return True, entry[1]

    def _cache_put(self, number: str, customer: Customer | None) -> None:
        ttl = self._routing.cache_ttl if customer is not None else self._routing.negative_ttl
        self._cache.pop(number, None)
        if ttl <= 0:
            return
        while len(self._cache) >= MAX_CACHE:
            del self._cache[next(iter(self._cache))]
        self._cache[number] = (trio.current_time() + ttl, customer)

    # -- CRM ---------------------------------------------------------------------------

    async def _ask_crm(self, number: str, until: float) -> Customer | None:
        if self._crm is None:
            return None
        lookup = self._inflight.get(number)
        if lookup is None:
            if len(self._inflight) >= MAX_INFLIGHT:
                log.warning(
                    "routing: %d CRM lookups in flight; not asking for another", MAX_INFLIGHT
                )
                return None
            lookup = _Lookup()
            self._inflight[number] = lookup
            if self._nursery is not None:
                self._nursery.start_soon(self._fill, number, lookup)
            else:
                # No background nursery (run() not started): the lookup dies with the deadline.
                with trio.move_on_at(until):
                    await self._fill(number, lookup)
        with trio.move_on_at(until):
            await lookup.done.wait()
        if not lookup.done.is_set():
            log.info("routing: CRM did not answer for %s within the deadline", number)
        return lookup.customer if lookup.ok else None

    async def _fill(self, number: str, lookup: _Lookup) -> None:
        assert self._crm is not None
        self._counts["crm_lookups"] += 1
        started = trio.current_time()
        try:
            with trio.fail_after(self._crm_timeout):
                customer = await self._crm.find_customer(number)
        except trio.TooSlowError:
            self._counts["crm_failures"] += 1
            log.warning("routing: CRM lookup for %s timed out after %ss", number, self._crm_timeout)
        except Exception as exc:
            self._counts["crm_failures"] += 1
            log.warning("routing: CRM lookup for %s failed: %s", number, exc)
        else:
            lookup.customer = customer
            lookup.ok = True
            self._cache_put(number, customer)
            if trio.current_time() - started > self._routing.deadline:
                self._counts["late_fills"] += 1
        finally:
            self._inflight.pop(number, None)
            lookup.done.set()

    # -- journal -----------------------------------------------------------------------

    def _valid_ext(self, customer: Customer) -> bool:
        return self._extension_or_none(customer.user_extension, "the CRM") is not None

    def _journal_enabled(self) -> bool:
        return self._journal is not None and self._routing.journal_fallback_days > 0

    async def _ask_journal(self, number: str, deadline: float) -> str | None:
        if not self._journal_enabled():
            return None
        assert self._journal is not None
        fn = self._last_talker or _default_last_talker()
        if fn is None:
            return None
        since = iso(time.time() - self._routing.journal_fallback_days * 86400) or ""
        variants = number_variants(number, self._routing)

        def last(conn: sqlite3.Connection) -> str | None:
            for variant in variants:
                found = fn(conn, variant, since)
                if found:
                    return found
            return None

        ext: str | None = None
        with trio.move_on_at(deadline) as scope:
            try:
                # abandoned at the deadline: the dialplan does not wait for a slow disk
                ext = await self._journal.read(last, abandon_on_cancel=True)
            except Exception as exc:
                log.warning("routing: journal lookup for %s failed: %s", number, exc)
        if scope.cancelled_caught:
            log.info("routing: the journal did not answer for %s within the deadline", number)
        return self._extension_or_none(ext, "journal")

    def _extension_or_none(self, ext: str | None, where: str) -> str | None:
        """Only an employee extension: the dialplan dials what we answer."""
        if not ext:
            return None
        if not self._extension.search(ext):
            log.warning(
                "routing: %s named %r, not an extension (pbx.extension_pattern)", where, ext
            )
            return None
        return ext
