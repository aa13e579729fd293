"""AMI pinc does not know: nothing crashes, nothing stays open for ever, every oddity is
counted (``Tracker.statistics()["oddities"]``), and a call whose events were lost closes
as stale, marked so."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinc.ami.protocol import Message, parse_block
from pinc.calls.closing import GONE_REASON, STALE_REASON
from pinc.calls.model import CallChange
from pinc.calls.replay import messages_of
from pinc.calls.tracker import RESYNC_QUIET, Tracker
from pinc.config import Config, load_config

from .ami import Ch, dial_begin, dial_end, event, hangup, newchannel
from .conftest import LOCAL, PJSIP

CONFIG: Config = load_config(None, env={})
T0 = 1800000000.0


def _block(text: str) -> Message:
    return parse_block(text.replace("\n", "\r\n"))


def test_each_oddity_is_counted_and_nothing_crashes() -> None:
    tracker = Tracker(CONFIG.pbx)
    trunk = Ch("PJSIP/trunk-00000001", "1800000000.1", "1800000000.1", "from-trunk", "7495", "7903")
    inputs = [
        # an Asterisk 11 event, a UserEvent-like flavour pinc does not know
        _block("Event: Dial\nSubEvent: Begin\nChannel: SIP/101-1\nUniqueID: 1.1"),
        _block("Event: FreePBXCustomThing\nFoo: bar"),
        # missing fields
        _block("Event: DialBegin\nChannel: SIP/x-1\nUniqueid: 1800000000.9"),
        _block("Event: Hangup\nChannel: SIP/y-1"),
        _block("Event: Cdr\nStartTime: 2027-01-15 08:00:00"),
        # a channel name no technology/peer form reads
        _block("Event: Newchannel\nChannel: ???\nUniqueid: 1800000000.7\nLinkedid: 1800000000.7"),
        # events for channels pinc never saw begin
        _block(
            "Event: Newstate\nChannel: PJSIP/102-5\nUniqueid: 1800000000.5\nLinkedid: 1800000000.5"
        ),
        hangup(Ch("PJSIP/103-6", "1800000000.6", "1800000000.6")),
        # and a plain call, which must come out whole
        newchannel(trunk),
        hangup(trunk),
    ]
    out: list[CallChange] = []
    for msg in inputs:
        out += tracker.feed(msg)
    out += tracker.flush()
    odd = tracker.statistics()["oddities"]
    assert odd == {
        "unknown_event": 2,
        "missing_field": 3,
        "odd_channel": 1,
        "unseen_channel": 3,  # the DialBegin's caller, the Newstate, the Hangup
        "stale_call": 0,
    }
    assert tracker.oddity_example("unknown_event") == "Dial"
    assert tracker.oddity_example("missing_field") == "DialBegin without DestUniqueid"
    # a Hangup of a channel that never began makes no call
    ended = [c.call for c in out if c.kind == "call.ended"]
    assert [(c["linkedid"], c["status"]) for c in ended] == [("1800000000.1", "missed")]


def test_a_call_whose_hangups_were_lost_closes_as_stale() -> None:
    tracker = Tracker(CONFIG.pbx)
    trunk = Ch("PJSIP/trunk-1", "1800000000.1", "1800000000.1", "from-trunk", "74951230101", "79")
    phone = Ch("PJSIP/101-2", "1800000000.2", "1800000000.1", "from-internal", "74951230101")
    for msg in (newchannel(trunk), newchannel(phone), dial_begin(trunk, phone)):
        tracker.feed(msg, T0)
    tracker.feed(dial_end(trunk, phone, "ANSWER"), T0 + 2)
    assert tracker.expire(T0 + 60) == []
    (ended,) = tracker.expire(T0 + 2 + CONFIG.pbx.stale_call_seconds + 1)
    assert ended.kind == "call.ended"
    assert ended.call["end_reason"] == STALE_REASON
    assert ended.call["status"] == "completed" and ended.call["answered_by"] == "101"
    assert tracker.statistics()["oddities"]["stale_call"] == 1
    assert tracker.live_calls() == []


def test_a_periodic_resync_ends_quiet_calls_whose_channels_are_gone() -> None:
    tracker = Tracker(CONFIG.pbx)
    old = Ch("PJSIP/trunk-1", "1800000000.1", "1800000000.1", "from-trunk", "74951230101", "79")
    new = Ch("PJSIP/trunk-2", "1800000050.2", "1800000050.2", "from-trunk", "74951230101", "79")
    tracker.feed(newchannel(old), T0)
    tracker.feed(newchannel(new), T0 + RESYNC_QUIET)
    # neither channel is up any more; the young call may be ending right now: left alone
    out = tracker.resync([], T0 + RESYNC_QUIET + 1, periodic=True)
    ended = [c.call for c in out if c.kind == "call.ended"]
    assert [(c["linkedid"], c["status"], c["end_reason"]) for c in ended] == [
        ("1800000000.1", "missed", GONE_REASON)
    ]
    assert tracker.statistics()["live_calls"] == 1
    assert tracker.statistics()["oddities"]["stale_call"] == 1


def test_a_late_event_of_an_ended_call_makes_no_phantom_call() -> None:
    tracker = Tracker(CONFIG.pbx)
    trunk = Ch("PJSIP/trunk-1", "1800000000.1", "1800000000.1", "from-trunk", "74951230101", "79")
    out = tracker.feed(newchannel(trunk), T0) + tracker.feed(hangup(trunk), T0 + 1)
    out += tracker.expire(T0 + 10)
    assert [c.kind for c in out] == ["call.started", "call.ended"]
    late = event("VarSet", trunk.block(), ("Variable", "X"), ("Value", "1"))
    assert tracker.feed(late, T0 + 11) == []
    assert tracker.flush() == [] and tracker.live_calls() == []
    assert tracker.statistics()["oddities"]["unseen_channel"] == 0


# ---- fuzz: real transcripts, damaged ------------------------------------------------------

SOURCES = [
    (LOCAL / "blind_transfer.ami").read_bytes(),
    (LOCAL / "attended_transfer.ami").read_bytes(),
    (LOCAL / "followme.ami").read_bytes(),
    (PJSIP / "pjsip_attended_transfer.ami").read_bytes(),
    (PJSIP / "pjsip_inbound_answered.ami").read_bytes(),
]
EVENTS = [[m for m in messages_of([data]) if m.is_event] for data in SOURCES]
NAMES = ["DialBegin", "DialEnd", "Hangup", "Bogus", "AttendedTransfer", "Cdr", "BridgeEnter"]


def _damage(msg: Message, rng: random.Random) -> Message:
    fields = list(msg.headers)
    roll = rng.random()
    if roll < 0.3 and len(fields) > 1:  # a missing field
        del fields[rng.randrange(1, len(fields))]
    elif roll < 0.5:  # a garbled value
        i = rng.randrange(len(fields))
        key, value = fields[i]
        junk = rng.choice(["", "<unknown>", "none", "x;y@z-", "9" * 40, value[::-1], "ü\x00"])
        fields[i] = (key, junk)
    elif roll < 0.6:  # another event's name
        fields[0] = ("Event", rng.choice(NAMES))
    return parse_block("\r\n".join(f"{k}: {v}" for k, v in fields))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=len(SOURCES) - 1),
    st.integers(min_value=0, max_value=2**32),
    st.floats(min_value=0.0, max_value=0.5),
    st.floats(min_value=0.0, max_value=0.5),
)
def test_damaged_transcripts_never_crash_nor_leave_calls_open(
    which: int, seed: int, drop: float, damage: float
) -> None:
    rng = random.Random(seed)
    tracker = Tracker(CONFIG.pbx)
    at = T0
    for msg in EVENTS[which]:
        r = rng.random()
        if r < drop:
            continue  # a lost event
        if r < drop + damage:
            msg = _damage(msg, rng)
        at += 0.01
        tracker.feed(msg, at)
    tracker.resync([], at + 1)  # the PBX says nothing is up any more
    tracker.expire(at + CONFIG.pbx.stale_call_seconds + 10)
    stats = tracker.statistics()
    assert tracker.live_calls() == []
    assert stats["live_calls"] == 0 and stats["closing_calls"] == 0 and stats["channels"] == 0
