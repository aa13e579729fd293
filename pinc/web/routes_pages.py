"""/ping, /metrics, the dashboard page and its token login."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response, jsonify, request

from pinc import __version__, metrics
from pinc.web.app import api_error, state, text
from pinc.web.auth import (
    COOKIE,
    LEGACY_COOKIE,
    api_access,
    crm_secret_ok,
    refused,
    same_secret,
    secret_of,
    token_of,
    why_refused,
)

log = logging.getLogger(__name__)
blueprint = Blueprint("pages", __name__)
STATIC = Path(__file__).with_name("static")


def _pick(source: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Only the named keys: status dicts may grow fields that must not be public."""
    return {k: source.get(k) for k in keys}


def _safe_status(fn: Any) -> dict[str, Any]:
    try:
        result = fn()
        return dict(result) if isinstance(result, dict) else {}
    except Exception as exc:  # /ping must answer even when a service is in trouble
        log.warning("status() failed in /ping: %s", type(exc).__name__)
        return {"error": True}


def _overall(ami: dict[str, Any], journal: dict[str, Any], crm: dict[str, Any]) -> str:
    """"ok", or "degraded" when pinc cannot do its job in full right now."""
    crm_ok = crm.get("state") in ("ok", "disabled", None)
    healthy = bool(ami.get("connected")) and bool(journal.get("ok")) and crm_ok
    return "ok" if healthy else "degraded"


async def _ping_access() -> bool | Response:
    """True for the details (the API token, or the CRM secret from the CRM's servers),
    False for the bare status; a refusal when a credential was presented and failed."""
    st = state()
    params = {k: request.args[k] for k in request.args}
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        form = await request.form
        params.update({k: form[k] for k in form if k not in params})
    given = secret_of(request, params)
    if given is not None:
        if crm_secret_ok("/ping", request, given, st.services.config.crm.secret, st.crm_peers):
            return True
        return api_error(403, "forbidden", "the secret is refused")
    if api_access(request, st.token, st.sessions):
        return True
    if token_of(request) is None:
        return False
    refused("/ping", request, "wrong token")
    return api_error(401, "unauthorized", "a valid bearer token is required")


@blueprint.route("/ping", methods=["GET", "POST"])
async def ping() -> Response:
    st = state()
    s = st.services
    ami = _safe_status(s.ami.status)
    journal = _safe_status(s.journal.status)
    crm = _safe_status(s.crm.status)
    overall = _overall(ami, journal, crm)
    access = await _ping_access()
    if isinstance(access, Response):
        return access
    if not access:
        return jsonify({"status": overall})
    try:
        live = s.ingest.live_count()
    except Exception:
        live = None
    started = s.started_at or st.started
    body = {
        "status": overall,
        "version": __version__,
        "uptime": round(time.time() - started, 3),
        "ami": {
            "connected": bool(ami.get("connected")),
            **_pick(ami, ("since", "asterisk_version", "ami_version", "reconnects")),
        },
        "journal": {"ok": bool(journal.get("ok")), "pending": journal.get("pending")},
        "crm": {
            **_pick(crm, ("state", "backlog", "oldest_age")),
            "enabled": bool(s.config.crm.url),
        },
        "live_calls": live,
    }
    return jsonify(body)


def _refresh_gauges() -> None:
    s = state().services
    crm = _safe_status(s.crm.status)
    if isinstance(crm.get("backlog"), int):
        metrics.OUTBOX_BACKLOG.set(crm["backlog"])
    if isinstance(crm.get("oldest_age"), (int, float)):
        metrics.OUTBOX_OLDEST_AGE.set(crm["oldest_age"])
    try:
        metrics.LIVE_CALLS.set(s.ingest.live_count())
    except Exception as exc:
        log.debug("live calls unavailable for /metrics: %s", exc)


@blueprint.route("/metrics", methods=["GET"])
async def metrics_page() -> Response:
    st = state()
    public = st.services.config.web.metrics_public
    # Loopback is no proof of anything: a reverse proxy on the same host is loopback too.
    if not (public or api_access(request, st.token, st.sessions)):
        refused("/metrics", request, why_refused(request))
        return text("Unauthorized: a bearer token is required\n", 401)
    _refresh_gauges()
    return Response(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)


def _signed_in(target: str) -> Response:
    """Open a session and send the browser on, with its id in the cookie."""
    st = state()
    response = Response("", status=303, headers={"Location": target})
    response.set_cookie(
        COOKIE,
        st.sessions.open(),
        httponly=True,
        samesite="Strict",
        path="/",
        max_age=int(st.services.config.web.session_hours * 3600),
        secure=st.services.config.web.public_url.startswith("https:") or request.scheme == "https",
    )
    response.delete_cookie(LEGACY_COOKIE, path="/")
    return response


@blueprint.route("/", methods=["GET"])
async def dashboard() -> Response:
    st = state()
    if "token" in request.args:
        # 0.1.0 signed in with /?token=: the token then sat in the browser's history.
        refused("/", request, why_refused(request))
        return _page("login.html", 401)
    if api_access(request, st.token, st.sessions):
        return _page("index.html", 200)
    return _page("login.html", 401)


@blueprint.route("/login", methods=["POST"])
async def login() -> Response:
    form = await request.form
    if same_secret(form.get("token"), state().token):
        return _signed_in("/")
    refused("/login", request, "token")
    return _page("login.html", 401)


@blueprint.route("/signin/<code>", methods=["GET"])
async def signin(code: str) -> Response:
    """A one-time sign-in link (``pinc demo`` prints one): consumed on first use."""
    if state().sessions.redeem(code):
        return _signed_in("/")
    refused("/signin", request, "sign-in link unknown, used or expired")
    return _page("login.html", 401)


@blueprint.route("/logout", methods=["POST"])
async def logout() -> Response:
    state().sessions.close(request.cookies.get(COOKIE))  # revoked on the server, not only here
    response = Response("", status=303, headers={"Location": "/"})
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(LEGACY_COOKIE, path="/")
    return response


def _page(name: str, status: int) -> Response:
    body = (STATIC / name).read_bytes()
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    )
    return response
