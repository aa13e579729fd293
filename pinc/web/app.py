"""The Quart-Trio application factory: routes, error pages, request metrics.

``create_app(services, spawn=...)`` builds the app without touching the services
(the docs test builds one with ``None`` to list its routes). Background work such
as a click-to-call Originate goes to ``spawn``, which starts it in pinc's own
nursery (WebServer's), never in Quart's ``app.nursery``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from quart import Request, Response, Websocket, current_app, jsonify, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from pinc import __version__, metrics
from pinc.config import Config, parse_listen
from pinc.services import Services
from pinc.web.access import LOOPBACK, CrmPeers, literal_peers
from pinc.web.auth import throttle_key
from pinc.web.dialpolicy import DialPolicy
from pinc.web.origins import STATE_CHANGING, Origins
from pinc.web.sessions import Sessions
from pinc.web.throttle import Throttle

log = logging.getLogger(__name__)

Spawn = Callable[[Callable[[], Awaitable[Any]]], None]


@dataclass
class WebState:
    services: Services
    spawn: Spawn
    token: str  # web.token, or one generated for this run when it is empty
    started: float
    # Who may present crm.secret (pinc.web.access); WebServer resolves crm.allow_from.
    crm_peers: CrmPeers = field(default_factory=lambda: CrmPeers(LOOPBACK, "loopback"))
    sessions: Sessions = field(default_factory=lambda: Sessions(12 * 3600.0))
    origins: Origins = field(default_factory=lambda: Origins.from_config("", "", ""))
    policy: DialPolicy = field(default_factory=lambda: DialPolicy(Config()))
    throttle: Throttle = field(default_factory=Throttle)

    @property
    def master(self) -> str:
        """The secret tickets and links are signed with (pinc.web.tickets): crm.secret,
        which pinc's vtiger module also knows; without a CRM, the API token."""
        return self.services.config.crm.secret or self.token


def state() -> WebState:
    st: WebState = current_app.extensions["pinc"]
    return st


def api_error(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/plain; charset=utf-8")


def refuse_request(
    req: Request | Websocket, rule: str, why: str, status: int, message: str
) -> Response:
    """A request refused by a security rule: one log line, a metric, a reason that
    names the rule and nothing else (JSON under /api/, plain text elsewhere)."""
    metrics.REFUSED.labels(rule=rule).inc()
    log.warning("refused %s %s from %s: %s", req.method, req.path, req.remote_addr or "?", why)
    if req.path.startswith("/api/"):
        return api_error(status, rule, message)
    return text(message + "\n", status)


def front_door(
    req: Request | Websocket, *, origin_rule: bool, ticket: bool = False
) -> Response | None:
    """The throttle of failed credentials (pinc.web.throttle), then the Host and Origin
    rules (pinc.web.origins): None, or the refusal to answer."""
    st = state()
    wait = st.throttle.blocked(throttle_key(req), time.time())
    if wait and not (req.path == "/ping" and not req.args and req.method == "GET"):
        metrics.REFUSED.labels(rule="throttle").inc()
        log.debug("refused %s %s from %s: throttled", req.method, req.path, req.remote_addr)
        response = (api_error(429, "throttled", "too many failed attempts: try again later")
                    if req.path.startswith("/api/")
                    else text("Too Many Requests: too many failed attempts\n", 429))
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    origins = st.origins
    host = req.headers.get("Host")
    if not origins.host_ok(host):
        return refuse_request(req, "host", f"Host {str(host)[:80]!r} is not pinc's", 421,
                              "Misdirected Request: this host name is not pinc's")
    origin = req.headers.get("Origin")
    if origin_rule and not origins.origin_ok(
        origin, scheme=req.scheme, host_header=host,
        fetch_site=req.headers.get("Sec-Fetch-Site"), ticket=ticket,
    ):
        return refuse_request(req, "origin", f"Origin {str(origin)[:80]!r} is not pinc's", 403,
                              "Forbidden: a request from another site's page")
    return None


def _no_spawn(fn: Callable[[], Awaitable[Any]]) -> None:
    raise RuntimeError("the web app was built without a nursery to run background work in")


def create_app(services: Services | None, *, spawn: Spawn | None = None) -> QuartTrio:
    from pinc.web import routes_admin, routes_api, routes_module, routes_pages, routes_vtiger, ws

    app = QuartTrio(__name__, static_folder="static", static_url_path="/static")
    app.config["RESPONSE_TIMEOUT"] = None  # streams are bounded by the write deadline instead
    app.config["BODY_TIMEOUT"] = 30
    app.config["MAX_CONTENT_LENGTH"] = services.config.web.max_body if services else 65_536
    app.url_map.strict_slashes = False
    token = ""
    if services is not None:
        token = services.config.web.token
        if not token:
            token = services.extras.get("web_token") or secrets.token_urlsafe(24)
            services.extras["web_token"] = token
            log.warning(
                "web.token is not set: generated one for this run (services.extras['web_token']);"
                " set web.token to keep API access across restarts"
            )
        crm = services.config.crm
        # In extras, so `pinc demo` (same process) can mint a one-time sign-in link.
        sessions = services.extras.get("web_sessions")
        if not isinstance(sessions, Sessions):
            sessions = Sessions(services.config.web.session_hours * 3600.0)
            services.extras["web_sessions"] = sessions
        web = services.config.web
        origins = Origins.from_config(web.public_url, parse_listen(web.listen)[0], crm.url,
                                      hosts=web.hosts, crm_origins=crm.origins)
        app.extensions["pinc"] = WebState(
            services, spawn or _no_spawn, token, time.time(),
            literal_peers(crm.allow_from, crm.url), sessions, origins,
            DialPolicy(services.config), Throttle(web.auth_failures_per_minute or 0),
        )

    app.register_blueprint(routes_pages.blueprint)
    app.register_blueprint(routes_vtiger.blueprint)
    app.register_blueprint(routes_api.blueprint)
    app.register_blueprint(routes_admin.blueprint)
    app.register_blueprint(routes_module.blueprint)
    app.register_blueprint(ws.blueprint)

    @app.before_request
    async def browser_rules() -> Response | None:
        if "pinc" not in app.extensions:
            return None
        return front_door(request, origin_rule=request.method in STATE_CHANGING)

    @app.after_request
    async def count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.HTTP_REQUESTS.labels(route=rule, code=str(response.status_code)).inc()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Server", f"pinc/{__version__}")
        # No page of pinc's hands its URL (a recording link, an id) to another site.
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        if request.path.startswith("/api/"):
            return api_error(status, name, exc.description or exc.name or "error")
        return text(f"{exc.name}\n", status)

    @app.errorhandler(Exception)
    async def crash(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return api_error(500, "internal", "internal error (logged)")
        return text("Error", 500)

    return app
