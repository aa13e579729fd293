"""Dashboard sessions and one-time sign-in codes, held in pinc's memory. Pure: no I/O.

Signing in (``POST /login`` with the API token) opens a session: a random id in an
``HttpOnly``, ``SameSite=Strict`` cookie, ``Secure`` when pinc is served over https. The
cookie never holds the token, and signing out revokes the session on the server, so a
copied cookie stops working too. Sessions live ``web.session_hours`` and do not survive a
restart of pinc (sign in again).

A one-time sign-in code (``GET /signin/<code>``, printed by ``pinc demo``) opens a session
once, within minutes; it is not the token, and it is gone after its first use.

Only SHA-256 digests of ids and codes are kept, so a lookup's timing says nothing about
a stored value, and a memory dump shows no usable id.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

SESSION_BYTES: Final = 32
MAX_SESSIONS: Final = 10_000  # the oldest is dropped past this (each is ~100 bytes)
CODE_TTL: Final = 900.0  # a one-time sign-in code, seconds
MAX_CODES: Final = 100


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


class Sessions:
    """Open, check and revoke sessions; mint and redeem one-time sign-in codes."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self._sessions: OrderedDict[bytes, float] = OrderedDict()  # digest -> expires
        self._codes: OrderedDict[bytes, float] = OrderedDict()

    def open(self) -> str:
        """A new session id (the cookie value)."""
        sid = secrets.token_urlsafe(SESSION_BYTES)
        self._sessions[_digest(sid)] = self.clock() + self.ttl
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid or len(sid) > 128:
            return False
        key = _digest(sid)
        expires = self._sessions.get(key)
        if expires is None:
            return False
        if expires <= self.clock():
            del self._sessions[key]
            return False
        return True

    def close(self, sid: str | None) -> bool:
        """Revoke one session (sign-out); True if it was open."""
        if not sid or len(sid) > 128:
            return False
        return self._sessions.pop(_digest(sid), None) is not None

    def close_all(self) -> int:
        count = len(self._sessions)
        self._sessions.clear()
        return count

    def count(self) -> int:
        return len(self._sessions)

    def signin_code(self, ttl: float = CODE_TTL) -> str:
        """A code that opens one session, once, within ``ttl`` seconds."""
        code = secrets.token_urlsafe(SESSION_BYTES)
        self._codes[_digest(code)] = self.clock() + ttl
        while len(self._codes) > MAX_CODES:
            self._codes.popitem(last=False)
        return code

    def redeem(self, code: str | None) -> bool:
        """Consume a sign-in code: True the first time, within its life; never again."""
        if not code or len(code) > 128:
            return False
        expires = self._codes.pop(_digest(code), None)
        return expires is not None and expires > self.clock()
