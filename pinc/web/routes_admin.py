"""The service's own maintenance, for the command line: ``pinc outbox retry|drop`` and
``pinc backfill`` while pinc runs go through these routes, so every write to the journal
stays on the running pinc's single writer.

Bearer-token auth (``web.token``), JSON in and out, like the rest of /api.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import trio
from quart import Blueprint, Response, jsonify, request

from pinc.crm import outbox
from pinc.web.app import api_error, state
from pinc.web.routes_api import require_json, require_token

log = logging.getLogger(__name__)
blueprint = Blueprint("admin", __name__, url_prefix="/api")
MAX_IDS = 10_000  # and each id an SQLite integer (below 2**63)


# the same guards as the rest of /api: a bearer token, and JSON said to be JSON
blueprint.before_request(require_token)
blueprint.before_request(require_json)


async def _body() -> dict[str, Any] | Response:
    raw = await request.get_data(as_text=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)  # bytes: any encoding error is a ValueError here, not a 500
    except ValueError:
        return api_error(400, "bad_request", "the body must be JSON (UTF-8)")
    if not isinstance(body, dict):
        return api_error(400, "bad_request", "the body must be a JSON object")
    return body


def _ids(body: dict[str, Any]) -> list[int] | Response:
    ids = body.get("ids", [])
    if (
        not isinstance(ids, list)
        or len(ids) > MAX_IDS
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids)
    ):
        return api_error(400, "bad_request", "ids: a list of outbox ids (positive integers)")
    return ids


async def _request_ids() -> list[int] | Response:
    """The ``ids`` of the request's JSON body, or the 400 that says what is wrong."""
    body = await _body()
    return body if isinstance(body, Response) else _ids(body)


@blueprint.route("/outbox/retry", methods=["POST"])
async def outbox_retry() -> Response:
    ids = await _request_ids()
    if isinstance(ids, Response):
        return ids
    services = state().services
    changed = await services.journal.write(partial(outbox.retry, ids=ids, now=time.time()))
    services.crm.request_retry()  # wakes the worker, also out of an auth-failure pause
    log.info("outbox: %d callback(s) set to retry now (API, from %s)", changed,
             request.remote_addr)
    return jsonify({"changed": changed})


@blueprint.route("/outbox/drop", methods=["POST"])
async def outbox_drop() -> Response:
    ids = await _request_ids()
    if isinstance(ids, Response):
        return ids
    if not ids:
        return api_error(400, "bad_request", "ids: name the callbacks to drop")
    services = state().services
    changed = await services.journal.write(partial(outbox.drop, ids=ids, now=time.time()))
    log.info("outbox: %d callback(s) dropped (API, from %s)", changed, request.remote_addr)
    return jsonify({"changed": changed})


@blueprint.route("/backfill", methods=["POST"])
async def backfill() -> Response:
    body = await _body()
    if isinstance(body, Response):
        return body
    since_text = body.get("since")
    dry_run = body.get("dry_run", False)
    if not isinstance(since_text, str) or not isinstance(dry_run, bool):
        return api_error(400, "bad_request", "since: an ISO 8601 time; dry_run: true or false")
    try:
        since = datetime.fromisoformat(since_text.replace("Z", "+00:00"))
    except ValueError:
        return api_error(400, "bad_request", "since: not an ISO 8601 time")
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    recovery = state().services.extras.get("recovery")
    if recovery is None or recovery.source is None:
        return api_error(409, "no_cdr_source", "cdr.source is not set: nothing to recover from")
    from pinc.cdr.sources import CdrError

    try:
        report = await recovery.run(since=since.timestamp(), dry_run=dry_run)
    except CdrError as exc:
        return api_error(502, "cdr_unreadable", str(exc))
    except trio.TooSlowError:
        return api_error(504, "cdr_timeout", "the CDR source did not answer within cdr.timeout")
    log.info("backfill%s (API, from %s): %s", " (dry run)" if dry_run else "",
             request.remote_addr, report.summary())
    return jsonify({
        "summary": report.summary(), "rows": report.rows, "calls": report.calls,
        "known": report.known, "live": report.live, "completed": report.completed,
        "recovered": report.recovered, "dry_run": dry_run,
    })
