"""A fake SalesPlatform vtiger 7.2 ("Звонки"), as the real one was seen to behave.

From reference/vtiger.md's Addendum, SalesPlatform's PHP (commit 0604e55b) and what the
lab's SalesPlatform answered to pinc (tests/lab/test_crm_rows.py):

- every signed callback answers HTTP 200 with an **empty body**; a wrong secret the
  ``<Authentication>Failure`` XML;
- one row per (callUUID, user), owned by that user; a user is found by an exact match
  on any of the Users' phone fields (``deleted = 0``, status not checked);
- ``DialBegin``: the destination is the part of ``dialString`` after its last ``/``, else
  before ``@``; ignored when caller == destination or either is empty; the caller a user
  -> outbound, else the destination a user -> inbound, **else ignored**; a repeated one
  for the same (callUUID, user) puts that row back to ``ringing``;
- ``StartApp`` of an inbound call (the caller is no user) writes nothing and answers
  ``Sorry! Attempt to access restricted file. - user_privileges/user_privileges_.php``;
- ``DialAnswer``: the row of user(callerid1), else user(callerid2) -> ``in-progress``;
- ``Hangup``: ``callerIdNum`` must be a user's (only that row changes); empty or
  ``null`` causetxt is ignored; without EndTime/Duration the CRM's clock is used;
- ``EndCall`` / ``Record`` with a ``callerNumber`` that is **no user's update every row**
  of the call (the defect pinc must never trigger); a missing parameter is written empty;
- customers are found by the last 10 digits, preferring a record the call's user owns;
- ``SPAgi.php``: the extension of the owner of the first phone-lookup match;
- webservice ``select *`` on Contacts and Leads answers HTTP 500 with an empty body.
"""

from __future__ import annotations

from typing import Any

from tests.crm.fakevtiger import (
    PHONE_FIELDS,
    Entity,
    FakeVtiger,
    User,
    as_column,
    fnumber,
    php_truthy,
)

RESTRICTED = "Sorry! Attempt to access restricted file. - user_privileges/user_privileges_.php"


class FakeSalesPlatform(FakeVtiger):
    has_spagi = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = "2026-11-24 03:00:00"  # PHP's date() in $default_timezone (Moscow)

    def select_star_ok(self, module: str) -> bool:
        return module not in ("Contacts", "Leads")

    def customer_for(self, number: Any, user: User | None) -> Entity | None:
        """lookUpRelatedWithNumber: last 10 digits, a record of the call's user first."""
        n = fnumber(as_column(number))
        if not n:
            return None
        found = []
        for entity in self.entities:
            for name in PHONE_FIELDS[entity.module]:
                stored = fnumber(entity.fields.get(name, ""))
                if stored and (stored.endswith(n[-10:]) if len(n) >= 10 else stored == n):
                    found.append(entity)
                    break
        for entity in found:
            if user is not None and not entity.group and entity.owner == user.id:
                return entity
        return found[0] if found else None

    def _answer_callback(self, values: dict[str, Any]) -> tuple[int, str, bytes]:
        if values.get("callstatus") == "StartApp" and self._start_app_sp(values) is None:
            return 200, "text/html; charset=UTF-8", RESTRICTED.encode()
        self._callback_sp(values)
        return 200, "text/html; charset=UTF-8", b""

    # --- the callbacks ----------------------------------------------------------------

    def _start(self, p: dict[str, Any], user: User, direction: str, number: Any) -> None:
        uuid = as_column(p.get("callUUID"))
        customer = self.customer_for(number, user)
        values = dict(user=user.id, smownerid=user.id, callstatus="ringing",
                      customer=customer.id if customer else None,
                      customertype=customer.module if customer else None,
                      customernumber=number)
        existing = self.row(uuid, user.id)
        if existing is not None:
            self._update(existing, values)
        else:
            self._new_row(direction=direction, sourceuuid=uuid, starttime=p.get("StartTime"),
                          **values)

    def _start_app_sp(self, p: dict[str, Any]) -> bool | None:
        """processStartupCall: only an outbound call (the caller is a user) gets a row."""
        channel = as_column(p.get("channel"))
        peer = [*channel.split("-")[0].split("/"), ""][1]
        user = self.user_by_number(p.get("callerIdNumber"))
        if user is None and peer.isdigit():
            user = self.user_by_number(peer)
        if user is None:
            return None
        caller = p.get("callerIdNumber")
        to = p.get("callerIdName") if caller == peer else caller or p.get("callerId")
        self._start(p, user, "outbound", to)
        return True

    def _callback_sp(self, p: dict[str, Any]) -> None:
        status = p.get("callstatus")
        uuid = as_column(p.get("callUUID"))
        if status == "DialBegin":
            caller = as_column(p.get("callerIdNumber"))
            dial = as_column(p.get("dialString"))
            if "/" in dial:
                dest = dial.split("/")[-1]
            elif "@" in dial:
                dest = dial.split("@")[0]
            else:
                dest = dial
            if caller == dest or not dest or not caller:
                return
            user = self.user_by_number(caller)
            if user is not None:
                self._start(p, user, "outbound", dest)
                return
            user = self.user_by_number(dest)
            if user is not None:
                self._start(p, user, "inbound", caller)
            return
        if status == "DialAnswer":
            user = self.user_by_number(p.get("callerid1")) or self.user_by_number(
                p.get("callerid2"))
            row = self.row(uuid, user.id) if user else None
            if row is not None:
                row["callstatus"] = "in-progress"
            return
        if status == "Hangup":
            cause = p.get("causetxt")
            user = self.user_by_number(p.get("callerIdNum"))
            row = self.row(uuid, user.id) if user else None
            if not php_truthy(cause) or cause == "null" or row is None:
                return
            values: dict[str, Any] = {"callstatus": self._cause_status(p)}
            if not row["totalduration"] and not row["endtime"] and row["starttime"]:
                values["endtime"] = self.clock
            if php_truthy(p.get("EndTime")) and php_truthy(p.get("Duration")):
                values |= {"endtime": p.get("EndTime"), "totalduration": p.get("Duration")}
            self._update(row, values)
            return
        if status not in ("EndCall", "Record"):
            return
        user = self.user_by_number(p.get("callerNumber"))
        rows = [r for r in self.rows_of(uuid) if user is None or r["user"] == user.id]
        if status == "EndCall":
            values = {"starttime": p.get("starttime"), "endtime": p.get("endtime"),
                      "totalduration": p.get("duration"),
                      "billduration": p.get("billableseconds")}
        else:
            values = {"recordingurl": p.get("recordinglink")}
        for row in rows:  # no user: every row of the call
            self._update(row, values)

    # --- SPAgi.php --------------------------------------------------------------------

    def spagi(self, p: dict[str, Any]) -> dict[str, Any]:
        number = p.get("callerNumber")
        if not php_truthy(number):
            return {"success": False, "error": {"code": 400, "message": "Invalid request params"}}
        customer = self.customer_for(number, None)
        ext = None
        if customer is not None and not customer.group:
            owner = next((u for u in self.users if u.id == customer.owner), None)
            ext = owner.phone_crm_extension if owner else None
        return {"success": True, "result": {"crmUserExtension": ext or None}}
