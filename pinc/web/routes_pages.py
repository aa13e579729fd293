"""/ping, /metrics, the dashboard page and its token login."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response, jsonify, request

from pinc import __version__, metrics
from pinc.web.app import state, text
from pinc.web.auth import COOKIE, has_token, is_loopback, refused, same_secret

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


@blueprint.route("/ping", methods=["GET"])
async def ping() -> Response:
    st = state()
    s = st.services
    ami = _safe_status(s.ami.status)
    journal = _safe_status(s.journal.status)
    crm = _safe_status(s.crm.status)
    try:
        live = s.ingest.live_count()
    except Exception:
        live = None
    started = s.started_at or st.started
    body = {
        "status": "ok",
        "version": __version__,
        "uptime": round(time.time() - started, 3),
        "ami": {
            "connected": bool(ami.get("connected")),
            **_pick(ami, ("since", "asterisk_version", "ami_version", "reconnects")),
        },
        "journal": {"ok": bool(journal.get("ok")), "pending": journal.get("pending")},
        "crm": {
            **_pick(crm, ("state", "backlog", "oldest_age")),
            **_crm_details(crm, has_token(request, st.token)),
            "enabled": bool(s.config.crm.url),
        },
        "live_calls": live,
    }
    return jsonify(body)


def _crm_details(crm: dict[str, Any], authorized: bool) -> dict[str, Any]:
    """What the delivery worker adds: calls held back, dead letters, the users directory;
    with the token also why the CRM is not ok (an answer may quote anything)."""
    out: dict[str, Any] = {k: crm[k] for k in ("held", "dead") if k in crm}
    directory = crm.get("directory")
    if isinstance(directory, dict):
        keys = ("state", "users", "age", "last_error") if authorized else ("state", "users", "age")
        out["directory"] = _pick(directory, keys)
    if authorized and "last_error" in crm:
        out["last_error"] = crm["last_error"]
    return out


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
    if not (public or is_loopback(request.remote_addr) or has_token(request, st.token)):
        refused("/metrics", request, "token")
        return text("Unauthorized: a bearer token is required off the local host\n", 401)
    _refresh_gauges()
    return Response(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST)


def _cookie_response(target: str) -> Response:
    response = Response("", status=303, headers={"Location": target})
    response.set_cookie(
        COOKIE,
        state().token,
        httponly=True,
        samesite="Strict",
        path="/",
        max_age=30 * 24 * 3600,
        secure=request.scheme == "https",
    )
    return response


@blueprint.route("/", methods=["GET"])
async def dashboard() -> Response:
    st = state()
    query_token = request.args.get("token")
    if query_token is not None:
        # The token in the URL is accepted once: set the cookie, drop it from the address bar.
        if same_secret(query_token, st.token):
            return _cookie_response("/")
        refused("/", request, "token")
        return _page("login.html", 401)
    if has_token(request, st.token):
        return _page("index.html", 200)
    return _page("login.html", 401)


@blueprint.route("/login", methods=["POST"])
async def login() -> Response:
    form = await request.form
    if same_secret(form.get("token"), state().token):
        return _cookie_response("/")
    refused("/login", request, "token")
    return _page("login.html", 401)


@blueprint.route("/logout", methods=["POST"])
async def logout() -> Response:
    response = Response("", status=303, headers={"Location": "/"})
    response.delete_cookie(COOKIE, path="/")
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
