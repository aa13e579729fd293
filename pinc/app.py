"""The composition root: every service in one root nursery, started in order.

journal -> AMI client -> ingest -> CRM delivery (if ``crm.url``) -> routing -> AGI -> web.
Each ``nursery.start`` returns only when its service is ready, so the journal is
open before the first event arrives and the ports are bound before pinc says it
is ready. Shutdown (SIGTERM, SIGINT) cancels the root nursery; the journal commits
whatever is still pending inside its shielded drain before the process exits.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from pinc.agi.server import AgiServer
from pinc.ami.client import AmiClient
from pinc.config import Config, ConfigError, parse_listen, redact_url
from pinc.crm.delivery import DeliveryWorker
from pinc.crm.vtiger import VtigerWebservice, make_outbox_hook
from pinc.feed import FeedHub
from pinc.ingest import Ingest
from pinc.journal.store import Journal, JournalError
from pinc.routing import Router
from pinc.runtime.gcpacing import GcPacer
from pinc.runtime.logs import setup_logging
from pinc.runtime.pdeathsig import die_with_parent_if_frozen
from pinc.runtime.timeslice import TimeSlicer
from pinc.secret_rules import weak_secrets
from pinc.services import Services
from pinc.web.server import WebServer

log = logging.getLogger("pinc.app")


@dataclass
class ServeHandle:
    """What ``serve`` hands to ``task_status.started``: the services and bound ports."""

    services: Services
    journal: Journal
    feed: FeedHub
    ingest: Ingest
    ami: Any
    web_port: int | None = None
    agi_port: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class StartupError(Exception):
    """A service could not start; the message says why and what to do."""


class _NoCrm:
    """CrmState when ``crm.url`` is empty: pinc runs without a CRM."""

    def status(self) -> dict[str, Any]:
        return {"state": "disabled", "backlog": 0, "oldest_age": 0.0, "last_error": None}

    def request_retry(self) -> None:
        return None


async def serve(config: Config, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run every service until cancelled; ``task_status.started(ServeHandle)`` once ready."""
    problems = weak_secrets(config)
    if problems:  # before anything listens: a guessable secret must never be served
        raise StartupError("; ".join(problems))

    feed = FeedHub()
    journal = Journal(config, feed)
    crm: Any = _NoCrm()
    crm_lookup: Any = None
    if config.crm.url:
        # before the journal starts, so no batch commits without its outbox rows
        journal.add_batch_hook(make_outbox_hook(config))
        crm = DeliveryWorker(config, journal, feed)
        crm_lookup = VtigerWebservice(config)

    async with trio.open_nursery() as outer:
        # The journal stops last: shielded from the shutdown that stops the others, so
        # what the ingest submits while stopping is still in the drained batch.
        journal_scope = trio.CancelScope(shield=True)

        async def run_journal(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with journal_scope:
                await journal.run(task_status=task_status)

        await outer.start(run_journal)
        try:
            async with trio.open_nursery() as nursery:
                await _start_services(nursery, config, journal, feed, crm, crm_lookup, task_status)
        finally:
            journal_scope.cancel()


async def _start_services(
    nursery: trio.Nursery,
    config: Config,
    journal: Journal,
    feed: FeedHub,
    crm: Any,
    crm_lookup: Any,
    task_status: Any,
) -> None:
    # bulk writers (websockets) give way to everything else
    await nursery.start(TimeSlicer().run)

    client = AmiClient(config.ami)
    await nursery.start(client.run)

    ingest = Ingest(config, client, journal)
    await nursery.start(ingest.run)

    if config.crm.url:
        await nursery.start(crm.run)

    router = Router(config, crm=crm_lookup, journal=journal)
    await nursery.start(router.run)
    services = Services(
        config=config,
        ami=client,
        journal=journal,
        feed=feed,
        ingest=ingest,
        router=router,
        crm=crm,
        started_at=time.time(),
    )
    handle = ServeHandle(services, journal, feed, ingest, client)

    handle.agi_port = await nursery.start(AgiServer(config, router).run)
    handle.web_port = await nursery.start(WebServer(services).run)

    ami_status = client.status()
    log.info(
        "pinc ready: journal %s, AMI %s:%d (%s), AGI port %s, web port %s, CRM %s",
        journal.path,
        config.ami.host,
        config.ami.port,
        "connected" if ami_status.get("connected") else "not connected yet",
        handle.agi_port,
        handle.web_port,
        redact_url(config.crm.url) or "off",
    )
    # Last: it freezes what start-up built, then keeps full collections short.
    await nursery.start(GcPacer().run)
    task_status.started(handle)


def _describe(exc: BaseException) -> list[str]:
    """The start-up errors inside an exception (group), as messages."""
    if isinstance(exc, BaseExceptionGroup):
        return [m for e in exc.exceptions for m in _describe(e)]
    if isinstance(exc, (JournalError, StartupError, ConfigError)):
        return [str(exc)]
    if isinstance(exc, OSError):
        return [f"cannot start: {exc.strerror or exc} (is another program using the port?)"]
    return []


async def _main(config: Config) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("%s: shutting down", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            await nursery.start(serve, config)


def _check_listen(config: Config) -> None:
    for name, value in (("web.listen", config.web.listen), ("agi.listen", config.agi.listen)):
        parse_listen(value, where=name)


def run_main(config: Config) -> int:
    """``pinc run``: serve until SIGTERM/SIGINT; 0 on a clean stop, 2 on a start-up error."""
    setup_logging(config)
    die_with_parent_if_frozen()
    try:
        _check_listen(config)
        trio.run(_main, config)
    except Exception as exc:
        messages = _describe(exc)
        if not messages:
            log.exception("pinc stopped on an unexpected error")
            return 1
        for message in messages:
            log.error("%s", message)
            if config.log.file:  # the log goes elsewhere: say it on the terminal too
                print(f"pinc: {message}", file=sys.stderr)
        return 2
    log.info("pinc stopped")
    return 0
