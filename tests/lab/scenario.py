"""Running one scenario: the recorder, the parties, the ground truth, the files it writes.

A scenario is an async function ``fn(ctx, **params)`` registered with `scenario(...)`. It
drives the calls (sipp parties, AMI actions) and states, as it drives each call, what really
happened with ``ctx.expect(...)``. `run_scenario` wraps it: a fresh AMI session as ``pinc``
recording every byte, the new Master.csv rows, the new recordings, the SIP ladder, and the
driver's own checks of what Asterisk did (a check that fails marks the run failed: the
truth would then not describe what happened, and the recording is not kept as a fixture).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from tests.lab.amirec import AmiRecorder, Msg, match
from tests.lab.parties import Parties
from tests.lab.truth import CallTruth

OFFICE_VARIANTS = {
    # name: (template folder under tests/lab, TZ)
    "labpjsip": ("office", "UTC"),
    "labnots": ("office-nots", "UTC"),
    "labmsk": ("office", "Europe/Moscow"),
    "labmsk_nots": ("office-nots", "Europe/Moscow"),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    item: int
    shape: str
    fn: Callable[..., Awaitable[None]]
    office: str = "labpjsip"
    params: dict[str, Any] = field(default_factory=dict)
    limit: float = 90.0
    tech: str = "pjsip"

    @property
    def how(self) -> str:
        doc = " ".join((self.fn.__doc__ or "").split())
        return doc.format(**self.params) if self.params else doc


REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, item: int, shape: str, *, office: str = "labpjsip", limit: float = 90,
             tech: str = "pjsip", **params: Any) -> Callable[[Callable[..., Awaitable[None]]],
                                                        Callable[..., Awaitable[None]]]:
    """Register ``fn`` as scenario ``name`` (several names may share one function with
    different ``params``: other numbers, timings, offices)."""

    def register(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        if name in REGISTRY:
            raise ValueError(f"scenario {name} registered twice")
        REGISTRY[name] = Scenario(name, item, shape, fn, office, params, limit, tech)
        return fn

    return register


class Ctx:
    """What a scenario drives with, and where it writes what really happened."""

    def __init__(self, sc: Scenario, office: dict[str, Any], ami: AmiRecorder,
                 parties: Parties) -> None:
        self.sc = sc
        self.office = office
        self.ami = ami
        self.sipp = parties
        self.calls: list[CallTruth] = []
        self.checks: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}  # more top-level truth keys (cdr_groups, ...)
        self.recs_before: dict[str, int] = {}

    def expect(self, direction: str, frm: str, to: str, status: str,
               answered_by: str | None, **kw: Any) -> CallTruth:
        call = CallTruth(direction, frm, to, status, answered_by, **kw)
        self.calls.append(call)
        return call

    def check(self, what: str, ok: object, detail: object = "") -> bool:
        self.checks.append({"check": what, "ok": bool(ok), "detail": str(detail)})
        return bool(ok)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def events(self) -> list[Msg]:
        return self.ami.events

    def count(self, event: str, **want: str) -> int:
        return sum(1 for e in self.ami.events if match(e, event, **want))

    async def wait_event(self, event: str, timeout: float = 20, since: int = 0,
                         **want: str) -> Msg:
        return await self.ami.wait_for(lambda e: match(e, event, **want), timeout, since)

    async def answered(self, dest_prefix: str, timeout: float = 20, since: int = 0) -> Msg:
        """The DialEnd ANSWER of a channel whose name starts with ``dest_prefix``."""
        return await self.wait_event("DialEnd", timeout, since, DialStatus="ANSWER",
                                     DestChannel=dest_prefix + "*")

    async def action(self, name: str, headers: list[tuple[str, str]]) -> Msg:
        r = await self.ami.action(name, headers)
        self.check(f"{name} accepted ({r.get('Message')})", r.get("Response") == "Success",
                   r.get("Message"))
        return r

    async def originate(self, channel: str, context: str, exten: str, *, callerid: str = "",
                        variables: dict[str, str] | None = None, timeout_ms: int = 30000) -> Msg:
        """Async Originate; returns its OriginateResponse event."""
        aid = f"orig-{len(self.ami.events)}"
        h = [("Channel", channel), ("Context", context), ("Exten", exten), ("Priority", "1"),
             ("Timeout", str(timeout_ms)), ("Async", "true")]
        if callerid:
            h.append(("CallerID", callerid))
        h += [("Variable", f"{k}={v}") for k, v in (variables or {}).items()]
        r = await self.ami.action("Originate", h, action_id=aid)
        if r.get("Response") != "Success":
            raise RuntimeError(f"Originate refused: {r.headers}")
        return await self.ami.wait_for(
            lambda e: e.event == "OriginateResponse" and e.get("ActionID") == aid,
            timeout_ms / 1000 + 30)

    def new_recordings(self) -> dict[str, int]:
        """Files the office's MixMonitor wrote since the scenario began: relative path ->
        size (44 bytes is an empty wav: the call was never bridged)."""
        now = _recordings(Path(self.office["recordings"]))
        return {k: v for k, v in now.items() if k not in self.recs_before}

    async def wait_uac(self, party: Any, timeout: float = 60) -> None:
        rc = await self.sipp.wait(party, timeout)
        self.check(f"sipp {party.role} finished its call (rc {rc})", rc == 0, rc)


def office_clock(office: dict[str, Any]) -> tuple[str, bool]:
    """The office's time zone (its Asterisk's TZ) and whether its AMI sends Timestamp."""
    tz = "UTC"
    try:
        env = Path(f"/proc/{office['pid']}/environ").read_bytes().split(b"\0")
        for item in env:
            if item.startswith(b"TZ="):
                tz = item[3:].decode() or "UTC"
    except OSError:
        pass
    manager = Path(office["conf_dir"]) / "manager.conf"
    stamps = "timestampevents = yes" in manager.read_text(encoding="utf-8")
    return tz, stamps


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _recordings(folder: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = Path(root) / f
            out[os.fspath(p.relative_to(folder))] = _file_size(p)
    return out


@dataclass
class _Run:
    """Where a scenario run writes, and what the office held before it."""

    base: Path
    csv_path: Path
    csv_pos: int
    recdir: Path
    recs_before: dict[str, int]


def _prepare(sc: Scenario, office: dict[str, Any], out: Path) -> _Run:
    out.mkdir(parents=True, exist_ok=True)
    csv_path = Path(office["cdr_csv"])
    recdir = Path(office["recordings"])
    return _Run(out / sc.name, csv_path, _file_size(csv_path), recdir, _recordings(recdir))


async def run_scenario(sc: Scenario, office: dict[str, Any], out: Path) -> dict[str, Any]:
    """Run one scenario against a running office; write its files under ``out``."""
    run = _prepare(sc, office, out)
    ami_conf = office["ami"]
    ami = AmiRecorder(ami_conf["host"], int(ami_conf["port"]), run.base.with_suffix(".ami"),
                      run.base.with_suffix(".ami.client"))
    started = time.time()
    error = None
    async with trio.open_nursery() as nursery:
        await nursery.start(ami.run, ami_conf["user"], ami_conf["secret"])
        parties = Parties(office, Path(office["run_dir"]) / "sipp-run" / sc.name, nursery)
        ctx = Ctx(sc, office, ami, parties)
        ctx.recs_before = run.recs_before
        try:
            with trio.fail_after(sc.limit):
                await sc.fn(ctx, **sc.params)
                await ami.wait_idle(30)
        except Exception as exc:  # report it; the run is marked failed
            error = f"{type(exc).__name__}: {exc}"
            ctx.check("scenario ran to completion", False, error)
            await _hang_up_all(ami)
        finally:
            with trio.CancelScope(shield=True):
                await parties.stop()
                await ami.logoff()
    return _finish(sc, office, run, ctx, error, time.time() - started)


def _finish(sc: Scenario, office: dict[str, Any], run: _Run, ctx: Ctx, error: str | None,
            seconds: float) -> dict[str, Any]:
    """Write the CDR rows, the SIP ladder, the truth and the summary of a run."""
    new_rows = b""
    if run.csv_path.exists():
        with run.csv_path.open("rb") as f:
            f.seek(run.csv_pos)
            new_rows = f.read()
    run.base.with_suffix(".cdr.csv").write_bytes(new_rows)
    ladder = ctx.sipp.ladder()
    if ladder:
        run.base.with_suffix(".sip.txt").write_text(
            f"# SIP messages the sipp parties of {sc.name} sent and received (time, party,"
            " direction, first line, CSeq)\n" + "\n".join(ladder) + "\n", encoding="utf-8")
    sip_errors = ctx.sipp.errors()
    ctx.check("no unexpected SIP message", not sip_errors, sip_errors)
    tz, stamps = office_clock(office)
    truth: dict[str, Any] = {
        "scenario": sc.name, "office": office["name"], "tech": sc.tech, "item": sc.item,
        "shape": sc.shape, "how": sc.how, "timezone": tz, "timestamps": stamps,
        "recordings_dir": os.fspath(run.recdir),
        **ctx.extra,
        "calls": [c.to_dict() for c in ctx.calls],
    }
    run.base.with_suffix(".truth.json").write_text(
        json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    passed = error is None and all(c["ok"] for c in ctx.checks)
    summary = {
        "scenario": sc.name, "passed": passed, "error": error, "seconds": round(seconds, 1),
        "banner": ctx.ami.banner, "events": len(ctx.ami.events), "checks": ctx.checks,
        "notes": ctx.notes, "recordings": ctx.new_recordings(),
    }
    run.base.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n",
                                                     encoding="utf-8")
    return summary


async def _hang_up_all(ami: AmiRecorder) -> None:
    with trio.move_on_after(20), trio.CancelScope(shield=True):
        try:
            for name in list(ami.live.values()):
                await ami.action("Hangup", [("Channel", name)])
            await ami.wait_idle(15)
        except (ConnectionError, trio.TooSlowError, trio.BrokenResourceError):
            pass
