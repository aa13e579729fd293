"""Signed, scoped and (mostly) expiring links and tickets. Pure: no I/O, no clock.

Nothing secret ever reaches a browser or a URL: what does is a *ticket*, good for one
purpose and one subject (a recording of one call, the live feed of one extension), signed
with a key derived for that purpose from a master secret (``crm.secret``; pinc's vtiger
module derives the same keys from vtiger's PBXManager secret key, which is the same value).

    key(purpose)  = HMAC-SHA256(master, "pinc/" + purpose)
    message       = "v1." + purpose + "." + subject + "." + expires
    signature     = base64url(HMAC-SHA256(key(purpose), message)[:16]), no padding (22 chars)
    ticket        = message + "." + signature

``expires`` is a Unix time in whole seconds, or 0 for "never": only stored recording links
(the one stock vtiger keeps in its call row and plays months later) may be permanent;
every other ticket must expire within its purpose's ``MAX_TTL``. Rotating the master secret
revokes every link and ticket at once.

A recording link carries the parts of its ticket as parameters:
``/recording?id=<call id>&sig=<signature>`` (permanent) or
``/recording?id=<call id>&exp=<expires>&sig=<signature>`` (minted on demand).

docs/security.md describes the format for other implementers (the PHP of pinc's vtiger
module mints ``ws`` tickets with it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

VERSION: Final = "v1"
RECORDING: Final = "recording"  # subject: a call id
WS: Final = "ws"  # subject: an employee extension whose calls the feed may show
# The longest life a ticket of each purpose may claim; 0: no limit, and it may be permanent.
MAX_TTL: Final[dict[str, int]] = {RECORDING: 0, WS: 3600}
PURPOSES: Final = frozenset(MAX_TTL)

_SUBJECT = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_SIG = re.compile(r"[A-Za-z0-9_-]{22}", re.ASCII)
_EXPIRES = re.compile(r"0|[1-9][0-9]{0,11}", re.ASCII)


class TicketError(Exception):
    """A ticket or link that must be refused; the message says why (for the log only)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    purpose: str
    subject: str
    expires: int  # 0: never


def derive_key(master: str, purpose: str) -> bytes:
    """The key of one purpose, derived from the master secret."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown ticket purpose {purpose!r}")
    return hmac.new(master.encode("utf-8"), f"pinc/{purpose}".encode(), hashlib.sha256).digest()


def _message(purpose: str, subject: str, expires: int) -> str:
    return f"{VERSION}.{purpose}.{subject}.{expires}"


def signature(master: str, purpose: str, subject: str, expires: int = 0) -> str:
    """The 22-character signature of (purpose, subject, expires) under ``master``."""
    if not master:
        raise ValueError("no master secret to sign with")
    if not _SUBJECT.fullmatch(subject):
        raise ValueError("a ticket subject is 1-64 characters of A-Z a-z 0-9 _ -")
    if expires < 0:
        raise ValueError("expires must be 0 (never) or a Unix time")
    mac = hmac.new(
        derive_key(master, purpose), _message(purpose, subject, expires).encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(mac[:16]).rstrip(b"=").decode("ascii")


def recording_query(master: str, call_id: str, expires: int = 0) -> str:
    """The query string of a recording link: ``id=…&sig=…`` (permanent, ``expires`` 0) or
    ``id=…&exp=…&sig=…``; raises ValueError for an id a ticket cannot name."""
    sig = signature(master, RECORDING, call_id, expires)
    return f"id={call_id}&exp={expires}&sig={sig}" if expires else f"id={call_id}&sig={sig}"


def mint(master: str, purpose: str, subject: str, *, now: float, ttl: int) -> str:
    """A ticket that expires ``ttl`` seconds after ``now`` (``ttl`` 0: never, recordings only)."""
    limit = MAX_TTL[purpose]
    if ttl < 0 or (ttl == 0 and limit != 0) or (limit and ttl > limit):
        raise ValueError(f"a {purpose} ticket may not live {ttl} s")
    expires = 0 if ttl == 0 else int(now) + ttl
    return f"{_message(purpose, subject, expires)}.{signature(master, purpose, subject, expires)}"


def check(
    master: str, purpose: str, subject: str, expires: str | int, sig: str, *, now: float
) -> Ticket:
    """Verify the parts of a ticket; returns it, or raises TicketError saying why."""
    if not master:
        raise TicketError("no key: pinc has no secret to check tickets with")
    exp_text = str(expires)
    if not _EXPIRES.fullmatch(exp_text):
        raise TicketError("malformed expiry")
    exp = int(exp_text)
    if not _SUBJECT.fullmatch(subject) or not _SIG.fullmatch(sig):
        raise TicketError("malformed ticket")
    expected = signature(master, purpose, subject, exp)
    if not hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii")):
        raise TicketError("bad signature")
    limit = MAX_TTL[purpose]
    if exp == 0:
        if limit != 0:
            raise TicketError(f"a {purpose} ticket must expire")
    else:
        if exp <= now:
            raise TicketError("expired")
        if limit and exp > now + limit:
            raise TicketError("expiry too far ahead")
    return Ticket(purpose, subject, exp)


def parse(master: str, purpose: str, ticket: str, *, now: float) -> Ticket:
    """Verify a whole ticket string (``v1.<purpose>.<subject>.<expires>.<signature>``)."""
    parts = ticket.split(".")
    if len(parts) != 5 or parts[0] != VERSION:
        raise TicketError("malformed ticket")
    if parts[1] != purpose:
        raise TicketError(f"not a {purpose} ticket")
    return check(master, purpose, parts[2], parts[3], parts[4], now=now)
