"""The composition root: every service in one root nursery, started in order.

journal -> CRM directory (if ``crm.url``) -> AMI client -> ingest -> CRM delivery (if
``crm.url``) -> routing, customer names -> AGI -> web.
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
from pinc.cdr.recovery import Recovery
from pinc.config import Config, ConfigError, parse_listen, redact_url
from pinc.crm.customers import CustomerNames
from pinc.crm.delivery import DeliveryWorker
from pinc.crm.directory import CrmDirectory
from pinc.crm.outbox import make_outbox_hook
from pinc.crm.owners import Owners
from pinc.crm.webservice import VtigerWebservice
from pinc.defaults import with_public_url
from pinc.feed import FeedHub
from pinc.ingest import Ingest
from pinc.journal.store import Journal, JournalError
from pinc.routing import Router
from pinc.runtime.gcpacing import GcPacer
from pinc.runtime.logs import setup_logging
from pinc.runtime.pdeathsig import die_with_parent_if_frozen
from pinc.runtime.timeslice import TimeSlicer
from pinc.secret_rules import weak_secrets
from pinc.services import Directory, NoDirectory, Services
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

    config = with_public_url(config)
    feed = FeedHub()
    journal = Journal(config, feed)
    crm: Any = _NoCrm()
    crm_lookup: VtigerWebservice | None = None
    directory: Directory = NoDirectory()
    router = Router(config, crm=None, journal=journal)
    if config.crm.url:
        crm_lookup = VtigerWebservice(config)
        directory = CrmDirectory(config, crm_lookup)
        router = Router(config, crm=crm_lookup, journal=journal)
        # before the journal starts, so no batch commits without its outbox rows
        journal.add_batch_hook(make_outbox_hook(config, directory))
        owners = Owners(config, directory, router)
        crm = DeliveryWorker(config, journal, feed, directory=directory, owners=owners,
                             lookup=crm_lookup)
        directory.on_change(crm.poke)  # held calls of a now-known extension go out at once
    crm_parts = _CrmParts(crm, crm_lookup, directory, router,
                          CustomerNames(config, crm_lookup, feed))

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
                await _start_services(nursery, config, journal, feed, crm_parts, task_status)
        finally:
            journal_scope.cancel()


@dataclass
class _CrmParts:
    delivery: Any  # DeliveryWorker, or _NoCrm without a CRM
    lookup: VtigerWebservice | None
    directory: Directory
    router: Router
    customers: CustomerNames


async def _start_services(
    nursery: trio.Nursery,
    config: Config,
    journal: Journal,
    feed: FeedHub,
    crm_parts: _CrmParts,
    task_status: Any,
) -> None:
    crm = crm_parts.delivery
    # bulk writers (websockets) give way to everything else
    await nursery.start(TimeSlicer().run)

    if isinstance(crm_parts.directory, CrmDirectory):
        # the CRM's users before the first call is planned (bounded: a CRM that does not
        # answer only delays the start by its timeout, and is read again later)
        await nursery.start(crm_parts.directory.run)

    client = AmiClient(config.ami)
    await nursery.start(client.run)

    ingest = Ingest(config, client, journal)
    recovery = Recovery(config, journal, ami=client)
    if recovery.source is not None:
        ingest.on_login = recovery.on_login
    await nursery.start(ingest.run)

    if config.crm.url:
        await nursery.start(crm.run)

    router = crm_parts.router
    await nursery.start(router.run)
    await nursery.start(crm_parts.customers.run)
    services = Services(
        config=config,
        ami=client,
        journal=journal,
        feed=feed,
        ingest=ingest,
        router=router,
        crm=crm,
        directory=crm_parts.directory,
        customers=crm_parts.customers,
        started_at=time.time(),
        extras={"recovery": recovery},
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
    if config.runtime.gc_pacing:
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
        config = with_public_url(config)
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
