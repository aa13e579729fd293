"""`pinc demo`: the whole product with nothing else installed.

An embedded fake Asterisk (:class:`pinc.sim.amiserver.AmiSimServer` on 127.0.0.1) plays
the recorded scenarios in ``pinc/sim/data`` over and over as fresh calls (fresh ids,
channel names and bridges), each paced over its real duration divided by ``--speed``,
a few at a time. The real application (:func:`pinc.app.serve`: journal, AMI client,
ingest, CRM delivery, AGI, web) runs against it, with a built-in fake vtiger
(:mod:`pinc.sim.fakevtiger`) as its CRM. A one-time sign-in link to the dashboard is
printed (not the token: that goes in a header or the sign-in form, never in a URL).
"""

from __future__ import annotations

import errno
import logging
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import trio

from pinc.config import Config, replace
from pinc.runtime.pdeathsig import die_with_parent_if_frozen
from pinc.sim.fakevtiger import CrmSink
from pinc.sim.player import Player
from pinc.sim.scenarios import load_scenarios

log = logging.getLogger(__name__)

CONCURRENCY = 3  # calls played at the same time


@dataclass
class DemoOptions:
    speed: float = 1.0
    port: int = 8099
    db: str | None = None
    max_calls: int = 0  # 0: play forever
    concurrency: int = CONCURRENCY
    seed: int | None = None
    out: TextIO | None = None  # where the banner and call lines go (default stdout)


@dataclass
class DemoHandle:
    """What :func:`run_demo` hands to ``task_status.started``."""

    web_port: int
    sink_port: int
    ami_port: int
    token: str
    dashboard_url: str
    sink: CrmSink
    sim: Any
    app: Any
    config: Config
    workdir: Path
    stats: dict[str, int] = field(default_factory=dict)


def demo_config(
    *,
    ami_port: int,
    ami_secret: str,
    sink_port: int,
    crm_secret: str,
    token: str,
    web_port: int,
    journal: Path,
    recordings: Path,
) -> Config:
    """The configuration the demo runs the real application with."""
    return replace(
        Config(source="(pinc demo)"),
        ami={
            "host": "127.0.0.1",
            "port": ami_port,
            "username": "pinc",
            "secret": ami_secret,
            "reconnect_min": 0.2,
            "reconnect_max": 2.0,
        },
        pbx={"recordings_dir": str(recordings)},
        journal={"path": str(journal)},
        # public_url: the recording links pinc sends to the CRM point back at the demo
        web={
            "listen": f"127.0.0.1:{web_port}",
            "public_url": f"http://127.0.0.1:{web_port}",
            "token": token,
        },
        agi={"listen": "127.0.0.1:0"},
        crm={
            "profile": "vtiger",
            "url": f"http://127.0.0.1:{sink_port}",
            "secret": crm_secret,
            "retry_min": 0.5,
            "retry_max": 5.0,
        },
        log={"level": "warning"},
    )


def _free_port() -> int:
    """A free port now, so the URLs in the configuration can name it before pinc binds it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_of(handle: Any, name: str) -> int:
    value = getattr(handle, name, None)
    if value is None and isinstance(handle, dict):
        value = handle.get(name)
    return int(value or 0)


def _signin_code(handle: Any) -> str:
    """A one-time sign-in code from the web server's sessions (pinc.web.sessions)."""
    from pinc.web.sessions import Sessions

    sessions = handle.services.extras.get("web_sessions")
    if not isinstance(sessions, Sessions):
        raise RuntimeError("the web server did not publish its sessions")
    return sessions.signin_code()


def _feed_of(handle: Any) -> Any:
    services = getattr(handle, "services", None)
    return getattr(services, "feed", None) if services is not None else None


def describe(call: dict[str, Any]) -> str:
    """One line for a finished call, for the console."""
    who = f"answered by {call['answered_by']}" if call.get("answered_by") else "no one answered"
    talk = f", talk {call.get('talk')} s" if call.get("talk") else ""
    return (
        f"{call.get('direction', '?'):8} {call.get('from') or '?'} -> {call.get('to') or '?'}: "
        f"{call.get('status', '?')}, {who}{talk}"
    )


async def run_demo(options: DemoOptions, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run the demo until cancelled, or until ``max_calls`` calls were played and ended."""
    from pinc.app import serve
    from pinc.sim.amiserver import AmiSimServer

    out = options.out or sys.stdout
    rng = random.Random(options.seed)
    scenarios = load_scenarios()
    with tempfile.TemporaryDirectory(prefix="pinc-demo-") as tmp:
        workdir = Path(tmp)
        recordings = workdir / "recordings"
        recordings.mkdir()
        journal = Path(options.db) if options.db else workdir / "pinc.db"
        journal.parent.mkdir(parents=True, exist_ok=True)
        ami_secret = secrets.token_hex(12)
        crm_secret = "demo" + secrets.token_hex(8)  # vtiger compares loosely: keep it non-numeric
        token = secrets.token_urlsafe(18)
        async with trio.open_nursery() as nursery:
            sink = CrmSink(crm_secret)
            sink_port = await nursery.start(sink.run)
            sim = AmiSimServer(username="pinc", secret=ami_secret, replay_on_login=True)
            ami_port = await nursery.start(sim.run)
            config = demo_config(
                ami_port=ami_port,
                ami_secret=ami_secret,
                sink_port=sink_port,
                crm_secret=crm_secret,
                token=token,
                web_port=options.port or _free_port(),
                journal=journal,
                recordings=recordings,
            )
            app = await nursery.start(serve, config)
            web_port = _port_of(app, "web_port") or options.port
            url = f"http://127.0.0.1:{web_port}/signin/{_signin_code(app)}"
            handle = DemoHandle(
                web_port=web_port,
                sink_port=sink_port,
                ami_port=ami_port,
                token=token,
                dashboard_url=url,
                sink=sink,
                sim=sim,
                app=app,
                config=config,
                workdir=workdir,
            )
            watch = CallWatch(out, handle.stats)
            feed = _feed_of(app)
            if feed is not None:
                nursery.start_soon(watch.run, feed.subscribe(1024))
            _banner(out, handle, options, journal, len(scenarios))
            player = Player(
                sim,
                scenarios,
                speed=options.speed,
                max_calls=options.max_calls,
                concurrency=options.concurrency,
                recordings=recordings,
                rng=rng,
            )
            handle.stats["played"] = 0
            task_status.started(handle)
            await player.run()
            handle.stats["played"] = player.started
            await _wait_settled(sim, watch, sink)
            print(
                f"pinc demo: {player.started} calls played, "
                f"{handle.stats.get('ended', 0)} ended; stopping.",
                file=out,
                flush=True,
            )
            nursery.cancel_scope.cancel()


class CallWatch:
    """Prints each call as it ends and knows which calls are live (for --calls)."""

    def __init__(self, out: TextIO, stats: dict[str, int]) -> None:
        self.out = out
        self.stats = stats
        self.live: set[str] = set()
        self._changed = trio.Event()

    async def run(self, subscription: Any) -> None:
        async for change in subscription:
            if change.kind == "call.started":
                self.live.add(change.call_id)
                self.stats["started"] = self.stats.get("started", 0) + 1
            elif change.kind == "call.ended":
                self.live.discard(change.call_id)
                self.stats["ended"] = self.stats.get("ended", 0) + 1
                stamp = time.strftime("%H:%M:%S")
                print(f"{stamp}  {describe(change.call)}", file=self.out, flush=True)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_idle(self) -> None:
        """Return once at least one call ended and none is live."""
        while self.live or not self.stats.get("ended"):
            await self._changed.wait()


async def _wait_settled(sim: Any, watch: CallWatch, sink: CrmSink) -> None:
    """After the last call was fed: let pinc see it end and deliver it to the CRM."""
    with trio.move_on_after(20):
        await sim.wait_replayed()
        await watch.wait_idle()
    # CRM delivery trails the journal a little; wait until the callbacks stop coming.
    with trio.move_on_after(10):
        last = -1
        while (count := sum(sink.counts.values())) != last:
            last = count
            await trio.sleep(0.5)


def _banner(out: TextIO, h: DemoHandle, o: DemoOptions, journal: Path, scenarios: int) -> None:
    limit = f"{o.max_calls} calls" if o.max_calls else "until you stop it"
    print(
        f"""
pinc demo: a simulated Asterisk plays {scenarios} recorded call scenarios as fresh calls,
{o.concurrency} at a time, at {o.speed:g}x speed ({limit}).

  Dashboard (live calls):  {h.dashboard_url}
                           (a one-time sign-in link for the next 15 minutes; after that
                           open http://127.0.0.1:{h.web_port}/ and sign in with the token)
  What vtiger receives:    http://127.0.0.1:{h.sink_port}/
  Token (sign-in, API):    {h.token}
  API:                     curl -H 'Authorization: Bearer {h.token}' \\
                               http://127.0.0.1:{h.web_port}/api/calls
  Health:                  http://127.0.0.1:{h.web_port}/ping
  Journal:                 {journal}   (pinc calls --db {journal})

Finished calls are listed below. Stop with Ctrl-C.
""",
        file=out,
        flush=True,
    )


def _os_error(exc: BaseException) -> OSError | None:
    """The first OSError inside ``exc`` (which may be an exception group)."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _os_error(inner)
            if found is not None:
                return found
    return None


async def _main(options: DemoOptions) -> int:
    async with trio.open_nursery() as nursery:
        stop: Callable[[], None] = nursery.cancel_scope.cancel

        async def on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
                async for signum in sigs:
                    log.info("demo: signal %d, stopping", signum)
                    stop()
                    return

        nursery.start_soon(on_signal)
        await run_demo(options)
        stop()
    return 0


def demo_main(*, speed: float, port: int, db: str | None, max_calls: int) -> int:
    """The `pinc demo` command. Exit 0 on SIGTERM/SIGINT or after ``max_calls`` calls."""
    die_with_parent_if_frozen()
    if speed <= 0:
        print("pinc demo: --speed must be greater than 0", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = DemoOptions(speed=speed, port=port, db=db, max_calls=max_calls)
    try:
        return trio.run(_main, options)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        error = _os_error(exc)
        if error is None:
            raise
        hint = f" (port {port} is taken; try --port 0)" if error.errno == errno.EADDRINUSE else ""
        print(f"pinc demo: {error.strerror or error}{hint}", file=sys.stderr)
        return 1
