"""The command line talking to the pinc that runs on this host, through its web port.

``pinc outbox retry|drop`` and ``pinc backfill`` change the journal. While a pinc runs,
it is the journal's only writer, so they ask it (``POST /api/...`` with ``web.token``).
Whether one runs is the journal's lock (:func:`pinc.journal.opening.holder_of`): an
flock the kernel drops when its holder dies, so a killed pinc does not count.
"""

from __future__ import annotations

from typing import Any

import click
import httpx

from pinc.config import Config, parse_listen
from pinc.journal.opening import holder_of

TIMEOUT = 60.0


def running_pinc(config: Config) -> int | None:
    """The pid of the pinc holding this configuration's journal, or None."""
    return holder_of(config.journal_path().absolute())


def base_url(config: Config) -> str:
    host, port = parse_listen(config.web.listen, where="web.listen")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def call_service(config: Config, path: str, body: dict[str, Any], pid: int) -> dict[str, Any]:
    """POST ``body`` to the running pinc; a ClickException saying what to do otherwise."""
    if not config.web.token:
        raise click.ClickException(
            f"pinc (pid {pid}) is running and owns the journal, and web.token is not set: "
            "set web.token in the configuration (and restart pinc), or stop pinc first"
        )
    url = base_url(config) + path
    try:
        response = httpx.post(
            url, json=body, timeout=TIMEOUT,
            headers={"Authorization": f"Bearer {config.web.token}"},
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"pinc (pid {pid}) owns the journal but {url} does not answer ({exc}); "
            "check web.listen"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200:
        message = (answer.get("error") or {}).get("message") if isinstance(answer, dict) else ""
        raise click.ClickException(
            f"pinc (pid {pid}) answered HTTP {response.status_code}: {message or response.text}"
        )
    return answer if isinstance(answer, dict) else {}
