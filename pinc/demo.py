"""`pinc demo`: the whole product with nothing else installed.

An embedded fake Asterisk (:class:`pinc.ami.simserver.AmiSimServer` on 127.0.0.1) plays
the recorded scenarios in ``pinc/demo_data`` over and over as fresh calls (fresh ids,
channel names and bridges), each paced over its real duration divided by ``--speed``,
a few at a time. The real application (:func:`pinc.app.serve`: journal, AMI client,
ingest, CRM delivery, AGI, web) runs against it, with a built-in fake vtiger
(:mod:`pinc.demo_sink`) as its CRM. The dashboard URL, with its token, is printed.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import math
import random
import re
import secrets
import signal
import socket
import struct
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import trio

from pinc.config import Config, replace
from pinc.demo_sink import CrmSink
from pinc.pdeathsig import die_with_parent_if_frozen

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "demo_data"
CONCURRENCY = 3  # calls played at the same time
PAUSE_SECONDS = (1.0, 4.0)  # between two calls of one line, before --speed
MAX_RECORDINGS = 100  # fake recording files kept in the demo's recordings directory
# Noise that a real AMI session shows once per login, not once per call.
_SKIP_PRIVILEGES = (b"Privilege: security,", b"Privilege: system,")
_BRIDGE_ID = re.compile(
    rb"(?<=BridgeUniqueid: )([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
_RECORDING = re.compile(
    rb"^(?:Value|RecordingFile|UserField): (?:.*/)?([\w.+-]+\.(?:wav|WAV|gsm|mp3|ogg))\r?$", re.M
)


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: float
    events: tuple[bytes, ...]
    doc: str = ""


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


def load_scenarios(data_dir: Path = DATA_DIR) -> list[Scenario]:
    """The recorded scenarios the demo plays, with their real durations."""
    from pinc.ami.simserver import load_transcript

    meta = json.loads((data_dir / "scenarios.json").read_text(encoding="utf-8"))
    out = []
    for name, info in sorted(meta.items()):
        events = tuple(
            ev
            for ev in load_transcript(data_dir / info["transcript"])
            if not any(p in ev[:200] for p in _SKIP_PRIVILEGES)
        )
        out.append(Scenario(name, float(info["seconds"]), events, info.get("doc", "")))
    return out


def freshen(scenario: Scenario, index: int, *, now: float | None = None) -> list[bytes]:
    """The scenario's events as a new call: ids, channel names and bridges all fresh."""
    from pinc.ami.simserver import rewrite_ids

    epoch = int(time.time() if now is None else now)
    # Room for 10,000 channels per call: sequence numbers never meet another call's.
    events = rewrite_ids(list(scenario.events), epoch=epoch, seq_offset=(index + 1) * 10_000)
    bridges: dict[bytes, bytes] = {}

    def bridge(m: re.Match[bytes]) -> bytes:
        old = m.group(1)
        if old not in bridges:
            bridges[old] = str(uuid.uuid4()).encode()
        return bridges[old]

    return [_BRIDGE_ID.sub(bridge, ev) for ev in events]


def recording_names(events: list[bytes]) -> set[str]:
    """Recording file names the events mention (MIXMONITOR_FILENAME, CDR fields)."""
    names = set()
    for ev in events:
        for m in _RECORDING.finditer(ev):
            names.add(m.group(1).decode("ascii", "replace"))
    return names


def write_tone(path: Path, seconds: float = 2.0, freq: float = 440.0) -> None:
    """A short 8 kHz tone, so the dashboard's recording links play something."""
    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


class Player:
    """Plays scenarios into the simulated PBX, ``concurrency`` calls at a time."""

    def __init__(
        self,
        sim: Any,
        scenarios: list[Scenario],
        *,
        speed: float,
        max_calls: int,
        concurrency: int,
        recordings: Path,
        rng: random.Random,
    ) -> None:
        self.sim = sim
        self.scenarios = scenarios
        self.speed = max(speed, 0.01)
        self.max_calls = max_calls
        self.concurrency = max(1, concurrency)
        self.recordings = recordings
        self.rng = rng
        self.started = 0
        self.finished = 0
        self._order = self._cycle()
        self._recording_files: list[Path] = []

    def _cycle(self) -> Iterator[Scenario]:
        """Every scenario once in a shuffled round, round after round."""
        for _ in itertools.count():
            batch = list(self.scenarios)
            self.rng.shuffle(batch)
            yield from batch

    def _claim(self) -> tuple[int, Scenario] | None:
        if self.max_calls and self.started >= self.max_calls:
            return None
        index = self.started
        self.started += 1
        return index, next(self._order)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Play until ``max_calls`` scenarios were fed (forever when 0)."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            for line in range(self.concurrency):
                nursery.start_soon(self._line, line)

    async def _line(self, line: int) -> None:
        await trio.sleep(line * self.rng.uniform(*PAUSE_SECONDS) / self.speed)
        while (claimed := self._claim()) is not None:
            index, scenario = claimed
            await self._play(index, scenario)
            self.finished += 1
            await trio.sleep(self.rng.uniform(*PAUSE_SECONDS) / self.speed)

    async def _play(self, index: int, scenario: Scenario) -> None:
        events = freshen(scenario, index)
        self._make_recordings(events)
        log.debug("demo: playing %s as call #%d", scenario.name, index)
        gap = scenario.seconds / self.speed / max(len(events), 1)
        for ev in events:
            self.sim.feed([ev])
            _trim_replayed(self.sim)
            await trio.sleep(gap)

    def _make_recordings(self, events: list[bytes]) -> None:
        for name in sorted(recording_names(events)):
            path = self.recordings / name
            if path.exists():
                continue
            try:
                write_tone(path)
            except OSError as exc:
                log.warning("demo: cannot write %s: %s", path, exc)
                continue
            self._recording_files.append(path)
        while len(self._recording_files) > MAX_RECORDINGS:
            self._recording_files.pop(0).unlink(missing_ok=True)


def _trim_replayed(sim: Any) -> None:
    """Forget events every client has been sent, so an endless demo keeps flat memory.

    The simulator keeps its whole replay log (tests inspect it); the demo plays forever.
    """
    log_ = getattr(sim, "_log", None)
    done = getattr(sim, "replayed", 0)
    if isinstance(log_, list) and done > 1000:
        del log_[:done]
        sim.replayed = 0


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
    from pinc.ami.simserver import AmiSimServer
    from pinc.app import serve

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
            url = f"http://127.0.0.1:{web_port}/?token={token}"
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
  What vtiger receives:    http://127.0.0.1:{h.sink_port}/
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
