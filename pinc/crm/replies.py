"""What the CRM's answer to one callback means: delivered, or not, and why.

vtiger reports some failures in an HTTP 200, so the status alone proves nothing. Seen on
the real ones: success is an empty body (every SalesPlatform answer; stock vtiger's
updates) or, for stock vtiger's StartApp, ``<Response><Dial>…``. A wrong secret is
``<Response><Authentication>Failure``; SalesPlatform's failing inbound StartApp is the
text ``Sorry! Attempt to access restricted file. - user_privileges/…``; a wrong
``crm.url`` or a proxy gives an HTML page; a database down gives HTTP 500. Anything that
is not a known success is a failure: the callback stays in the outbox, pending.
PHP's non-fatal diagnostics (``Warning:``, ``Notice:``, ``Deprecated:``) printed before a
successful answer by a CRM with ``display_errors`` on are not failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

AUTH_FAILED: Final = (
    "vtiger answered Authentication Failure: crm.secret does not match vtiger's "
    "PBXManager secret key"
)
# one PHP diagnostic as display_errors prints it (HTML or text), up to its "on line N"
_PHP_NOTICE = re.compile(
    r"(?:<br\s*/?>\s*)?(?:<b>)?(?:PHP\s+)?(?:Warning|Notice|Deprecated|Strict Standards)"
    r"(?:</b>)?:.*?on line\s*(?:<b>)?\d+(?:</b>)?(?:<br\s*/?>)?",
    re.IGNORECASE | re.DOTALL,
)
_SUCCESS_XML = re.compile(r"^(?:<\?xml[^>]*\?>\s*)?<Response>\s*<Dial>", re.IGNORECASE)


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: done, retry later, or the CRM refused our secret."""

    result: str  # ok, retry, auth
    error: str = ""
    state: str = "ok"  # the worker state this outcome implies (unreachable, error, ...)


def _first_words(text: str, limit: int = 120) -> str:
    """A short, single-line excerpt of an answer for logs and /ping (tags dropped)."""
    plain = re.sub(r"<[^>]*>", " ", text)
    plain = re.sub(r"\s+", " ", plain).strip()
    return plain[:limit] + ("…" if len(plain) > limit else "")


def classify(status: int, body: str, url: str = "the CRM callback URL") -> Outcome:
    """The CRM's answer to one callback, read the way its PHP writes it."""
    text = body.strip()
    low = text[:4096].lower()
    if "<authentication>failure</authentication>" in low:
        return Outcome("auth", AUTH_FAILED, "auth-failed")
    if status >= 500:
        return Outcome("retry", f"CRM answered HTTP {status}", "unreachable")
    if low.startswith(("<!doctype html", "<html")) or "<body" in low:
        return Outcome("retry", f"CRM answered an HTML page (HTTP {status}), not the PBXManager "
                       "callback: check crm.url (the vtiger root, e.g. http://crm/vtigercrm) "
                       "and that PBXManager is installed", "error")
    if status != 200:
        return Outcome("retry", f"CRM answered HTTP {status} for {url}: check crm.url "
                       "and that PBXManager is installed", "error")
    rest = _PHP_NOTICE.sub("", text).strip()
    if not rest or _SUCCESS_XML.match(rest):
        return Outcome("ok")
    return Outcome("retry", f"CRM refused the callback: {_first_words(rest)!r}", "error")
