"""AMI faults with the fake Asterisk, against the whole of pinc (``serve()``), while /ping
and AGI are probed: drop mid-call, restart with new Uniqueids, stall (no pong), login
refused, a truncated message then close. pinc reconnects within its backoff, resyncs,
leaves no call live that ended, logs each fault once and keeps serving meanwhile."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from pinc.sim.amiserver import AmiSimServer
from pinc.sim.transcripts import load_transcript, rewrite_ids
from tests.reliability.conftest import add, record
from tests.reliability.stack import (
    AMI_SECRET,
    FIXTURES,
    Probe,
    db_rows,
    live_in_journal,
    percentile,
    stack_config,
    start_stack,
    wait_for,
)

CALL = FIXTURES / "asterisk-local" / "inbound_answered.ami"
MID = 160  # after the answer (BridgeEnter), before any Hangup


def messages(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith(logger) and text in r.getMessage()]


async def fault_stack(nursery: trio.Nursery, tmp_path: Path, events: list[bytes],
                      **sim_kwargs: object) -> tuple[AmiSimServer, object, Probe, Path]:
    sim = AmiSimServer(events, secret=AMI_SECRET, **sim_kwargs)  # type: ignore[arg-type]
    port = await nursery.start(sim.run)
    config = stack_config(tmp_path, port)
    handle = await start_stack(nursery, config)
    probe = Probe(handle.web_port or 0, handle.agi_port)
    nursery.start_soon(probe.run)
    return sim, handle, probe, config.journal_path()


def finish(name: str, probe: Probe) -> None:
    assert probe.ping_ms, "no /ping answered during the fault"
    assert probe.agi_ms, "no AGI session answered during the fault"
    assert not probe.failures, probe.failures
    add("faults.ami_survived", 1)
    record(f"ami.{name}.ping_ms_p50_p99", (percentile(probe.ping_ms, 0.5),
                                          percentile(probe.ping_ms, 0.99)))


async def test_drop_mid_call_then_resync(nursery: trio.Nursery, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """The link drops mid-call and the call ends while pinc is away: the resync ends it."""
    caplog.set_level(logging.INFO)
    events = load_transcript(CALL)
    with trio.fail_after(30):
        sim, handle, probe, db = await fault_stack(nursery, tmp_path, events[:MID])
        await sim.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 1)
        sim.replay_on_login = False  # from now on it plays on like a real PBX
        await sim.drop_clients()
        sim.feed(events[MID:])  # played to nobody: pinc misses the hangup
        await sim.wait_replayed()
        await wait_for(lambda: sim.logins >= 2)
        await wait_for(lambda: live_in_journal(db) == 0 and not handle.ingest.live_calls())
        await trio.sleep(0.3)
    drops = messages(caplog, "pinc.ami.client", "reconnecting with backoff")
    assert len(drops) == 1, drops
    assert handle.ingest.resyncs >= 2  # after the first login and after the reconnect
    finish("drop_mid_call", probe)


async def test_asterisk_restart_with_new_uniqueids(nursery: trio.Nursery, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Asterisk restarts mid-call (a new process, new Uniqueids): the old call ends on
    resync, the calls of the new run are tracked as new calls, none stays live."""
    caplog.set_level(logging.INFO)
    events = load_transcript(CALL)
    with trio.fail_after(40):
        old = AmiSimServer(events[:MID], secret=AMI_SECRET)
        old_scope = trio.CancelScope()

        async def run_old(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            with old_scope:
                await old.run(task_status=task_status)

        port = await nursery.start(run_old)
        handle = await start_stack(nursery, stack_config(tmp_path, port))
        db = handle.journal.path
        probe = Probe(handle.web_port or 0, handle.agi_port)
        nursery.start_soon(probe.run)
        await old.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 1)
        old_scope.cancel()  # the Asterisk process dies: listener and links gone
        await trio.sleep(0.3)
        fresh = AmiSimServer(rewrite_ids(events, epoch=1_800_000_000, seq_offset=5000),
                             secret=AMI_SECRET, port=port)
        await nursery.start(fresh.run)
        await fresh.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 0 and not handle.ingest.live_calls())
        await wait_for(lambda: len(db_rows(db, "SELECT id FROM calls")) == 2)
        await trio.sleep(0.3)
    # both calls may start in the same second: Linkedid breaks the tie (ids are random)
    calls = db_rows(
        db, "SELECT linkedid, live, end_reason FROM calls ORDER BY started_at, linkedid"
    )
    assert len(calls) == 2 and all(live == 0 for _, live, _ in calls), calls
    assert calls[0][2] == "ended while pinc was disconnected", calls
    assert calls[1][0].startswith("18000"), calls  # the new run's call, with its own id
    drops = messages(caplog, "pinc.ami.client", "reconnecting with backoff")
    assert 1 <= len(drops) <= 2, drops  # the drop, then at most one "refused" while down
    finish("restart_new_uniqueids", probe)


async def test_stall_without_close_no_pong(nursery: trio.Nursery, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Asterisk stops answering but keeps the socket open: no pong, pinc drops the link and
    reconnects once Asterisk answers again; the call that ended meanwhile is ended."""
    caplog.set_level(logging.INFO)
    events = load_transcript(CALL)
    with trio.fail_after(40):
        sim, handle, probe, db = await fault_stack(nursery, tmp_path, events[:MID])
        await sim.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 1)
        sim.replay_on_login = False
        sim.stall = True
        await wait_for(lambda: not handle.ami.status()["connected"])
        await sim.drop_clients()  # the old half-dead links go; nothing was said on them
        sim.stall = False
        sim.feed(events[MID:])
        await sim.wait_replayed()
        await wait_for(lambda: handle.ami.status()["connected"] and sim.logins >= 2)
        await wait_for(lambda: live_in_journal(db) == 0 and not handle.ingest.live_calls())
    assert messages(caplog, "pinc.ami.client", "no pong"), "the stall was not noticed"
    assert len(messages(caplog, "pinc.ami.client", "no pong")) == 1
    finish("stall_no_pong", probe)


async def test_login_refused_logged_once(nursery: trio.Nursery, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    events = load_transcript(CALL)
    with trio.fail_after(30):
        sim, handle, probe, db = await fault_stack(nursery, tmp_path, events[:MID])
        await sim.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 1)
        sim.fail_auth = True
        await sim.drop_clients()
        await wait_for(lambda: sim.failed_logins >= 4)  # several attempts, with backoff
        sim.fail_auth = False
        sim.feed(events[MID:])
        await wait_for(lambda: sim.logins >= 2)
        await sim.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 0 and not handle.ingest.live_calls())
    refused = messages(caplog, "pinc.ami.client", "login refused")
    assert len(refused) == 1, refused
    finish("login_refused", probe)


async def test_truncated_message_then_close(nursery: trio.Nursery, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """Half an event, then the connection closes: the half is dropped (not parsed as an
    event), pinc reconnects and the call goes on from where it was."""
    caplog.set_level(logging.INFO)
    events = load_transcript(CALL)
    with trio.fail_after(30):
        sim, handle, probe, db = await fault_stack(nursery, tmp_path, events[:MID])
        await sim.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 1)
        # the ingest may still be working through the last events the fake sent (their
        # number is not MID: the fake filters by the event classes pinc asked for)
        before = -1
        while handle.ingest.events != before:
            before = handle.ingest.events
            await trio.sleep(0.3)
        # the fake has no switch for this: write half an event on its live session
        session = next(s for s in sim._sessions if s.logged_in)
        await session.send(events[MID][: len(events[MID]) // 2])
        await sim.drop_clients()
        await wait_for(lambda: sim.logins >= 2)
        assert handle.ingest.events == before  # the half event never became an event
        sim.feed(events[MID:])  # replay_on_login: the rest comes after the reconnect
        await sim.wait_replayed()
        await wait_for(lambda: live_in_journal(db) == 0 and not handle.ingest.live_calls())
    calls = db_rows(db, "SELECT status, end_reason FROM calls")
    assert calls == [("completed", None)] or calls[0][0] == "completed", calls
    assert len(messages(caplog, "pinc.ami.client", "reconnecting with backoff")) == 1
    finish("truncated_then_close", probe)
