"""Resync, stale expiry, restore, click-to-call notes and bounded state."""

from __future__ import annotations

import pathlib

import pytest

from pinc.ami.protocol import AMIConnection, Message, parse_block
from pinc.calls.model import CallChange
from pinc.calls.tracker import DISCONNECTED_REASON, STALE_REASON, Tracker
from pinc.config import Config

from .conftest import LOCAL


def _events(name: str) -> list[Message]:
    conn = AMIConnection()
    conn.feed((LOCAL / name).read_bytes())
    return [m for m in conn.messages() if isinstance(m, Message) and m.is_event]


def _first_half(events: list[Message]) -> list[Message]:
    """Everything up to the first Hangup: the call is live."""
    idx = next(i for i, m in enumerate(events) if m.name == "Hangup")
    return events[:idx]


def _feed(tracker: Tracker, events: list[Message], at: float | None = None) -> list[CallChange]:
    out: list[CallChange] = []
    for m in events:
        out += tracker.feed(m, at)
    return out


def test_live_feed_with_arrival_times_ends_after_grace(config: Config) -> None:
    tracker = Tracker(config.pbx)
    changes: list[CallChange] = []
    at = 1795480904.0
    for m in _events("inbound_answered.ami"):
        at += 0.01
        changes += tracker.feed(m, at)
    assert "call.ended" not in [c.kind for c in changes]  # waiting for trailing Cdrs
    changes += tracker.expire(at + 5)
    ended = [c for c in changes if c.kind == "call.ended"]
    assert len(ended) == 1 and ended[0].call["status"] == "completed"
    assert ended[0].call["answered_by"] == "101"
    assert tracker.statistics()["channels"] == 0 and tracker.live_calls() == []


def test_resync_ends_calls_whose_channels_are_gone(config: Config) -> None:
    tracker = Tracker(config.pbx)
    changes = _feed(tracker, _first_half(_events("inbound_answered.ami")))
    assert [c.kind for c in changes][:1] == ["call.started"]
    live = tracker.live_calls()
    assert len(live) == 1
    roles = {c["role"] for c in tracker.channels_of(live[0].id)}
    assert "customer" in roles and "employee" in roles
    assert tracker.live_count() == 1
    employee = next(c for c in tracker.channels_of(live[0].id) if c["role"] == "employee")
    assert tracker.call_of_extension(employee["ext"]) == live[0].id
    assert tracker.call_of_extension("999") is None
    out = tracker.resync([], at=1795480999.0)
    assert [c.kind for c in out] == ["call.ended"]
    assert out[0].call["end_reason"] == DISCONNECTED_REASON
    assert tracker.live_calls() == [] and tracker.live_count() == 0
    assert tracker.call_of_extension(employee["ext"]) is None


def test_resync_keeps_calls_still_up(config: Config) -> None:
    tracker = Tracker(config.pbx)
    events = _first_half(_events("inbound_answered.ami"))
    _feed(tracker, events)
    uid = next(m.get("Uniqueid").strip() for m in events if m.get("Uniqueid"))
    snapshot = parse_block(
        f"Event: CoreShowChannel\nActionID: r1\nChannel: Local/x-1;1\nUniqueid: {uid}\n"
        f"Linkedid: {uid}"
    )
    assert tracker.resync([snapshot], at=1795480999.0) == []
    assert len(tracker.live_calls()) == 1


def test_stale_calls_expire(config: Config) -> None:
    tracker = Tracker(config.pbx)
    _feed(tracker, _first_half(_events("inbound_missed.ami")), at=1000.0)
    assert tracker.expire(1000.0 + 60) == []
    out = tracker.expire(1000.0 + config.pbx.stale_call_seconds + 1)
    assert [c.kind for c in out] == ["call.ended"]
    assert out[0].call["end_reason"] == STALE_REASON
    assert tracker.statistics()["live_calls"] == 0


def test_restore_then_resync(config: Config) -> None:
    tracker = Tracker(config.pbx)
    _feed(tracker, _first_half(_events("inbound_answered.ami")))
    snapshot = tracker.live_calls()[0].to_dict()
    fresh = Tracker(config.pbx)
    fresh.restore([snapshot])
    assert [c.id for c in fresh.live_calls()] == [snapshot["id"]]
    out = fresh.resync([], at=1795480999.0)
    assert out[0].call_id == snapshot["id"]
    assert out[0].call["end_reason"] == DISCONNECTED_REASON


def test_note_originate_announces_click_to_call_at_once(config: Config) -> None:
    tracker = Tracker(config.pbx)
    events = _events("outbound_click_to_call.ami")
    channel_id = next(m.get("Uniqueid").strip() for m in events if m.name == "Newchannel")
    tracker.note_originate(
        channel_id, ext="101", number="+7 916 123-45-67", record_id="12x34", origin="crm"
    )
    idx = next(i for i, m in enumerate(events) if m.name == "Newchannel") + 1
    first = _feed(tracker, events[:idx])
    assert first and first[0].kind == "call.started"
    assert first[0].call["direction"] == "outbound"
    assert first[0].call["to"] == "79161234567" and first[0].call["record_id"] == "12x34"
    _feed(tracker, events[idx:])
    ended = [c for c in tracker.flush() if c.kind == "call.ended"]
    assert ended[0].call["status"] == "completed" and ended[0].call["talk"] == 4


def test_ended_calls_leave_the_state(config: Config) -> None:
    tracker = Tracker(config.pbx)
    _feed(tracker, _events("concurrent_load.ami"))
    tracker.flush()
    stats = tracker.statistics()
    assert stats["channels"] == 0 and stats["live_calls"] == 0 and stats["closing_calls"] == 0
    assert stats["calls_ended"] == 50


def test_unrelated_and_broken_events_are_ignored(config: Config) -> None:
    tracker = Tracker(config.pbx)
    for text in (
        "Event: VarSet\nChannel: none\nUniqueid: none\nVariable: X\nValue: 1",
        "Event: Hangup\nUniqueid: garbage\nCause: notanumber",
        "Event: DialEnd\nDestUniqueid: 1.2\nDialStatus: WHATEVER",
        "Event: Cdr\nUniqueID: 9.9\nStartTime: not a time",
        "Response: Success\nActionID: x",
    ):
        tracker.feed(parse_block(text))
    assert tracker.flush() == []


def test_failed_originate_response_makes_no_phantom_call() -> None:
    """A failed Originate answers with ``Uniqueid: <unknown>``: that is no channel, and
    (live, where a resync looks at every tracked call) it once became a bogus call."""
    from pinc.ami.protocol import parse_block
    from pinc.calls.tracker import Tracker
    from pinc.config import load_config

    tracker = Tracker(load_config(None, env={}).pbx)
    failed = parse_block(
        "Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: orig-1\r\n"
        "Response: Failure\r\nChannel: Local/79169999999@from-internal\r\n"
        "Context: sim-caller\r\nExten: hold\r\nReason: 5\r\nUniqueid: <unknown>\r\n"
        "CallerIDNum: 101\r\nCallerIDName: Anna 101"
    )
    assert tracker.feed(failed, 1000.0) == []
    assert tracker.resync([], 1001.0) == []
    assert tracker.live_calls() == []
    assert tracker.statistics()["events"] == 1


@pytest.mark.parametrize(
    ("asked", "answer", "kinds"),
    [
        (False, None, ["blind"]),
        (True, "before", ["crm"]),  # Success came, then the transfer's events
        (True, "after", ["crm"]),  # the events came before Asterisk's Success
        (True, "refused", ["blind"]),  # refused: no mark may stay behind
        (True, "other", ["blind"]),  # accepted, but for another target
    ],
)
def test_transfer_through_pincs_endpoint_is_kind_crm(
    fixtures_dir: pathlib.Path, asked: bool, answer: str | None, kinds: list[str]
) -> None:
    """The blind transfer of blind_transfer.ami, asked for through pinc's /transfer
    (note_transfer first, then Asterisk's answer), is recorded as kind ``crm`` only once
    Asterisk said Success, whether its events come before that answer or after."""
    from pinc.calls.replay import messages_of
    from pinc.config import load_config

    data = (fixtures_dir / "asterisk-local" / "blind_transfer.ami").read_bytes()
    tracker = Tracker(load_config(None, env={}).pbx)
    changes: list[CallChange] = []
    call_id = ""
    for msg in messages_of([data]):
        if msg.name == "BlindTransfer":
            (live,) = tracker.live_calls()
            call_id = live.id
            if asked:
                tracker.note_transfer(call_id, "102")
            if answer in ("before", "refused", "other"):
                tracker.transfer_result(
                    call_id, "103" if answer == "other" else "102", answer != "refused"
                )
        changes += tracker.feed(msg)
        if msg.name == "BlindTransfer" and answer == "after":
            tracker.transfer_result(call_id, "102", True)
    changes += tracker.flush()
    (ended,) = [c for c in changes if c.kind == "call.ended"]
    assert [t["kind"] for t in ended.call["transfers"]] == kinds
    assert [(t["from"], t["to"]) for t in ended.call["transfers"]] == [("101", "102")]
    assert ended.call["answered_by"] == "102"
    transferred = [c.data["kind"] for c in changes if c.kind == "call.transferred"]
    assert transferred == (["blind", "crm"] if answer == "after" else kinds)
