"""The CRM's users and their extensions (implements ``pinc.services.Directory``).

Read through the webservice with the integration user's access key (an admin: vtiger
refuses ``Users`` to others), with the columns named (SalesPlatform answers ``select *``
with HTTP 500 on some modules, and Users' ``*`` holds password hashes). Kept in memory,
read once at start (before the first call is planned), then every
``crm.directory_refresh`` seconds and on demand (:meth:`CrmDirectory.refresh_soon`). A
failed read keeps the last good list and is retried sooner.

An extension belongs to the *active* user whose ``phone_crm_extension`` is exactly that
extension, which is how SalesPlatform finds a call's user (stock vtiger also matches
inactive users and other phone fields: an inactive user owns nothing useful).
The journal's batch hook reads :meth:`user_of` from the writer thread: the maps are
replaced whole, never changed in place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import trio

from pinc import metrics
from pinc.config import Config
from pinc.crm.numbers import extension
from pinc.services import CrmUser

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE: Final = 30.0  # seconds; never more often than the timer itself


class UserSource(Protocol):
    @property
    def has_credentials(self) -> bool: ...

    async def users(self) -> list[dict[str, Any]]: ...


def user_of_record(record: Mapping[str, Any]) -> CrmUser:
    first = str(record.get("first_name") or "").strip()
    last = str(record.get("last_name") or "").strip()
    return CrmUser(
        id=str(record.get("id") or ""),
        user_name=str(record.get("user_name") or ""),
        name=" ".join(p for p in (first, last) if p),
        extension=extension(record.get("phone_crm_extension")),
        active=str(record.get("status") or "Active").lower() == "active",
    )


class CrmDirectory:
    """Start with ``await nursery.start(directory.run)``: ready after the first read."""

    def __init__(self, config: Config, source: UserSource) -> None:
        self.config = config
        self._source = source
        self._all: list[CrmUser] = []
        self._by_ext: dict[str, CrmUser] = {}
        self._by_name: dict[str, CrmUser] = {}
        self._known = False
        self._wake = trio.Event()
        self.version = 0  # bumped whenever the extensions -> users map changes
        self.read_at: float | None = None  # epoch of the last successful read
        self.last_error: str | None = None
        self.reads = 0
        self.failures = 0
        self._listeners: list[Callable[[], None]] = []

    # --- pinc.services.Directory ---------------------------------------------------

    def known(self) -> bool:
        return self._known

    def user_of(self, ext: str) -> CrmUser | None:
        return self._by_ext.get(ext)

    def users(self) -> list[CrmUser]:
        """Active users with an extension, by extension."""
        return sorted(self._by_ext.values(), key=lambda u: u.extension)

    # --- more -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.config.crm.url) and self._source.has_credentials

    def find(self, who: str) -> CrmUser | None:
        """A user by user name, or the user of an extension (config keys name users so)."""
        who = who.strip()
        return self._by_name.get(who) or self._by_ext.get(who)

    def all_users(self) -> list[CrmUser]:
        return list(self._all)

    def status(self) -> dict[str, Any]:
        age = round(time.time() - self.read_at, 1) if self.read_at else None
        state = "off" if not self.enabled else "ok" if self._known else "unknown"
        if self.enabled and self.last_error:
            state = "stale" if self._known else "error"
        return {
            "state": state,
            "users": len(self._by_ext),
            "age": age,
            "last_error": self.last_error,
        }

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments, must not block) whenever the users change."""
        self._listeners.append(listener)

    def refresh_soon(self) -> None:
        """Read the users again now (after an admin changed them)."""
        self._wake.set()

    def load(self, users: list[CrmUser]) -> None:
        """Take a fresh list (the reader's result; tests use it directly)."""
        by_ext: dict[str, CrmUser] = {}
        for user in users:
            if user.active and user.extension and user.extension not in by_ext:
                by_ext[user.extension] = user
        by_name = {u.user_name: u for u in users if u.user_name}
        changed = not self._known or {k: v.id for k, v in by_ext.items()} != {
            k: v.id for k, v in self._by_ext.items()
        }
        self._all, self._by_ext, self._by_name = list(users), by_ext, by_name
        self._known = True
        self.read_at = time.time()
        metrics.CRM_DIRECTORY_USERS.set(len(by_ext))
        if changed:
            self.version += 1
            for listener in self._listeners:
                listener()

    async def refresh(self) -> bool:
        """One read; False (and the last good list kept) when the CRM could not be asked."""
        if not self.enabled:
            return False
        self.reads += 1
        try:
            with trio.fail_after(self.config.crm.timeout * 3 + 1.0):
                records = await self._source.users()
        except Exception as exc:  # any failure of the CRM keeps the old list
            reason = "no answer in time" if isinstance(exc, trio.TooSlowError) else str(exc)
            self.failures += 1
            metrics.CRM_DIRECTORY_FAILURES.inc()
            if reason != self.last_error:
                log.warning("CRM users could not be read: %s (%s)", reason,
                            "keeping the last list" if self._known else "no list yet")
            self.last_error = reason
            return False
        before = self.version
        self.load([user_of_record(r) for r in records])
        if self.last_error is not None or self.version != before:
            log.info("CRM users: %d with an extension (%s)", len(self._by_ext),
                     ", ".join(f"{u.extension}={u.user_name}" for u in self.users()[:20]))
        self.last_error = None
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self.enabled:
            if self.config.crm.url:
                log.warning("crm.username / crm.access_key not set: pinc cannot read the "
                            "CRM's users, so it cannot tell which extensions are CRM users")
            task_status.started()
            await trio.sleep_forever()
        await self.refresh()
        task_status.started()
        interval = max(1.0, self.config.crm.directory_refresh)
        while True:
            wait = interval if self.last_error is None else min(interval, RETRY_AFTER_FAILURE)
            with trio.move_on_after(wait):
                await self._wake.wait()
            self._wake = trio.Event()
            await self.refresh()
