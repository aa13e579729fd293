"""Who the customer on a call is, for pinc's own pages and feed (``/ws``, the dashboard).

When a customer call starts, the customer's number is looked up in the CRM (the lookup
routing already does, and caches: ``VtigerWebservice.describe``), in the background and
bounded; the answer is kept per number, so the call's later messages, the snapshot of
live calls and later calls from the same number carry the CRM's name, record type and a
link to the record, as the CRM's own card does. A lookup never delays a message: a call
from a number pinc has not seen before gets its name on its next message.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final, Protocol
from urllib.parse import urlencode

import trio

from pinc.calls.model import CallChange
from pinc.config import Config
from pinc.crm.numbers import lookup_key
from pinc.routing import Customer
from pinc.services import Feed

log = logging.getLogger(__name__)

MAX_NUMBERS: Final = 20_000  # numbers remembered; the oldest goes first
MAX_INFLIGHT: Final = 64  # lookups at once; beyond it a call waits for its next message
FEED_QUEUE: Final = 1024
MISS_TTL: Final = 60.0  # seconds a number the CRM does not know is not asked again


class Describer(Protocol):
    async def describe(self, number: str) -> Customer | None: ...


def customer_number(call: Mapping[str, Any]) -> str:
    direction = call.get("direction")
    if direction == "inbound":
        return str(call.get("from") or "")
    if direction == "outbound":
        return str(call.get("to") or "")
    return ""


class CustomerNames:
    """Implements ``pinc.services.Customers``; start with ``await nursery.start(c.run)``."""

    def __init__(self, config: Config, lookup: Describer | None, feed: Feed) -> None:
        self.config = config
        self._lookup = lookup
        self._feed = feed
        self._known: OrderedDict[str, tuple[float, dict[str, str] | None]] = OrderedDict()
        self._inflight: set[str] = set()
        self._limiter = trio.CapacityLimiter(4)
        self.lookups = 0
        self.failures = 0

    def of(self, call: Mapping[str, Any]) -> dict[str, str] | None:
        """The customer of a call, when pinc knows it: name, type, id, url."""
        key = lookup_key(customer_number(call), self.config.routing)
        hit = self._known.get(key) if key else None
        return hit[1] if hit is not None else None

    def statistics(self) -> dict[str, Any]:
        return {"numbers": len(self._known), "inflight": len(self._inflight),
                "lookups": self.lookups, "failures": self.failures}

    def link(self, customer: Customer) -> str:
        crmid = customer.record_id.partition("x")[2] or customer.record_id
        query = urlencode({"module": customer.module, "view": "Detail", "record": crmid})
        return f"{self.config.crm.url.rstrip('/')}/index.php?{query}"

    def _remember(self, key: str, customer: Customer | None) -> None:
        info = None
        if customer is not None and customer.module and customer.record_id:
            info = {"name": customer.name, "type": customer.module, "id": customer.record_id,
                    "url": self.link(customer)}
        self._known.pop(key, None)
        self._known[key] = (time.monotonic(), info)
        while len(self._known) > MAX_NUMBERS:
            self._known.popitem(last=False)

    def _wanted(self, key: str) -> bool:
        if not key or key in self._inflight or len(self._inflight) >= MAX_INFLIGHT:
            return False
        hit = self._known.get(key)
        if hit is None:
            return True
        ttl = self.config.routing.cache_ttl if hit[1] is not None else MISS_TTL
        return time.monotonic() - hit[0] > ttl

    async def _describe(self, key: str) -> None:
        assert self._lookup is not None
        try:
            async with self._limiter:
                self.lookups += 1
                with trio.fail_after(self.config.crm.timeout * 3 + 1.0):
                    customer = await self._lookup.describe(key)
        except Exception as exc:  # the CRM's trouble shows on /ping; a name can wait
            self.failures += 1
            log.debug("customer lookup for %s failed: %s", key, exc)
        else:
            self._remember(key, customer)
        finally:
            self._inflight.discard(key)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._lookup is None or not self.config.crm.url:
            task_status.started()
            await trio.sleep_forever()
        subscription = self._feed.subscribe(FEED_QUEUE)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                change: CallChange
                async for change in subscription:
                    key = lookup_key(customer_number(change.call), self.config.routing)
                    if self._wanted(key):
                        self._inflight.add(key)
                        nursery.start_soon(self._describe, key)
        finally:
            with trio.CancelScope(shield=True):
                await subscription.aclose()

