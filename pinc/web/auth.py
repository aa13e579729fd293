"""Secrets and tokens: constant-time checks, and where a request may carry them.

Two credentials guard the HTTP surface:
- the vtiger secret (``crm.secret``) on the vtiger-compatible endpoints, passed as
  ``secret=`` like vtiger does (or an ``X-Pinc-Secret`` header), accepted only from the
  CRM's servers (pinc.web.access);
- the API token (``web.token``) on /api, /ws, /metrics and /ping's details, as
  ``Authorization: Bearer`` only. Browsers sign in with it once (``POST /login``) and then
  hold a revocable session (pinc.web.sessions) in the ``pinc_session`` cookie, never the
  token. A token in a query string is refused everywhere: URLs end up in histories and
  logs (the ``/ws`` ticket is the one query credential, short-lived and scoped).
"""

from __future__ import annotations

import hmac
import logging
import time

from quart import Request, Websocket, current_app

from pinc import metrics
from pinc.web.access import CrmPeers, from_browser, proxied
from pinc.web.sessions import Sessions
from pinc.web.throttle import Throttle, client_key

log = logging.getLogger(__name__)

COOKIE = "pinc_session"
LEGACY_COOKIE = "pinc_token"  # pinc 0.1.0 kept the raw token in it: cleared at sign-in
SECRET_HEADER = "X-Pinc-Secret"


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an unset expected secret never matches."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def token_of(req: Request | Websocket) -> str | None:
    header = req.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def has_token(req: Request | Websocket, expected: str) -> bool:
    return same_secret(token_of(req), expected)


def api_access(req: Request | Websocket, token: str, sessions: Sessions) -> bool:
    """The API token as a bearer header, or a signed-in dashboard session."""
    return has_token(req, token) or sessions.valid(req.cookies.get(COOKIE))


def why_refused(req: Request | Websocket) -> str:
    """What was wrong with a request's API credential, for the log line."""
    if "token" in req.args:
        return "token in a query string (no longer accepted: use a header or sign in)"
    if token_of(req) is not None:
        return "wrong token"
    if req.cookies.get(COOKIE):
        return "session expired or signed out"
    return "no token"


def secret_of(req: Request | Websocket, params: dict[str, str]) -> str | None:
    """The CRM secret a request presents: ``secret`` (query or form) or X-Pinc-Secret."""
    given = params.get("secret")
    return given if given is not None else req.headers.get(SECRET_HEADER)


def crm_secret_ok(
    route: str, req: Request | Websocket, given: str | None, expected: str, peers: CrmPeers
) -> bool:
    """The CRM secret, presented by one of the CRM's servers; refusals counted and logged.

    From any other address, through a proxy or from a browser, the secret is refused
    without being compared, right or wrong: it has no business there.
    """
    if not given:
        refused(route, req, "missing secret")
        return False
    if not peers.allows(req.remote_addr):
        refused(route, req, "secret from an address outside crm.allow_from")
        return False
    if proxied(req.headers):
        refused(route, req, "secret through a proxy (forwarding headers)")
        return False
    if from_browser(req.headers):
        refused(route, req, "secret from a browser (Origin or Sec-Fetch headers)")
        return False
    if same_secret(given, expected):
        return True
    refused(route, req, "wrong secret")
    return False


def refused(route: str, req: Request | Websocket, why: str) -> None:
    """Count and log a refused credential (never the value); it counts against the
    client in the throttle (pinc.web.throttle)."""
    metrics.AUTH_FAILURES.labels(route=route).inc()
    client = req.remote_addr or "?"
    log.warning("refused %s %s from %s: %s", req.method, route, client, why)
    state = current_app.extensions.get("pinc") if current_app else None
    throttle = getattr(state, "throttle", None)
    if isinstance(throttle, Throttle):
        key = throttle_key(req)
        now = time.time()
        throttle.failed(key, now)
        wait = throttle.blocked(key, now)
        if wait:
            log.warning("%s: %d failed credentials in %.0f s: refused for %.0f s",
                        client, throttle.failures, throttle.window, wait)


def throttle_key(req: Request | Websocket) -> str:
    forwarded = next((req.headers[h] for h in ("X-Forwarded-For", "X-Real-IP", "Forwarded")
                      if h in req.headers), None)
    return client_key(req.remote_addr, forwarded)
