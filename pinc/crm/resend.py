"""Sending a row-creating callback again: ask vtiger first whether it holds the row.

vtiger's ``StartApp`` inserts a row every time (reference/vtiger.md 4.3). When a
``StartApp`` went out and its answer never reached the outbox (pinc was killed while
vtiger worked, or vtiger answered after ``crm.timeout``), sending it again would leave
the call twice in the CRM. Before such a resend pinc looks the call up by ``sourceuuid``
through the webservice; without webservice credentials, or when vtiger cannot say, it
sends (a second row is better than a lost call). SalesPlatform updates its (call, user)
rows instead, so only the vtiger profile asks.
"""

from __future__ import annotations

import logging
import re
import time
from functools import partial
from typing import Protocol

from pinc.config import Config
from pinc.crm import outbox
from pinc.crm.outbox import Row
from pinc.services import JournalAccess

log = logging.getLogger(__name__)

CREATES_ROW = "StartApp"
_CALL_ID = re.compile(r"[0-9A-Za-z._-]{1,100}")  # pinc's own ids: nothing to escape


class Lookup(Protocol):
    """The webservice (``pinc.crm.webservice.VtigerWebservice``)."""

    @property
    def has_credentials(self) -> bool: ...

    async def query(self, vtql: str) -> list[dict[str, object]]: ...


def creates_row(config: Config, row: Row) -> bool:
    """Each arrival of this callback inserts a row (vtiger's StartApp; SalesPlatform
    updates its (call, user) row instead)."""
    return config.crm.profile == "vtiger" and row.kind == CREATES_ROW


def must_ask(config: Config, row: Row) -> bool:
    """This row may have created vtiger's row already: it went out and no answer was kept."""
    return creates_row(config, row) and row.sent_at is not None


async def already_in_crm(lookup: Lookup | None, call_id: str) -> bool:
    """vtiger holds a call row with this ``sourceuuid`` (False when it cannot tell)."""
    if lookup is None or not lookup.has_credentials or not _CALL_ID.fullmatch(call_id):
        log.warning("call %s: StartApp sent again without asking vtiger first (needs "
                    "crm.username and crm.access_key): vtiger may list the call twice",
                    call_id)
        return False
    try:
        found = await lookup.query(
            f"SELECT id FROM PBXManager WHERE sourceuuid = '{call_id}' LIMIT 1;")
    except Exception as exc:  # unreachable, refused, odd answer: send rather than lose
        log.warning("call %s: could not ask vtiger whether its StartApp arrived (%s); "
                    "sending it again", call_id, exc)
        return False
    return bool(found)


async def arrived_before(config: Config, lookup: Lookup | None, journal: JournalAccess,
                         row: Row) -> bool:
    """True: this StartApp already made vtiger's row, do not send it. False: send it;
    a StartApp is first noted as going out, so a crash from here on is asked about."""
    if must_ask(config, row) and await already_in_crm(lookup, row.call_id):
        log.info("call %s: vtiger already holds the row of its StartApp: not sent again",
                 row.call_id)
        return True
    if creates_row(config, row):
        await journal.write(partial(outbox.mark_sent, row_id=row.id, at=time.time()))
    return False
