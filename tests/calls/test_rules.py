"""The tracker's hardest rules, each on the fewest events that show it (beyond replays)."""

from __future__ import annotations

from typing import Any

import pytest

from pinc.ami.protocol import Message
from pinc.calls.cdr import zone_offset
from pinc.calls.model import CallChange
from pinc.calls.tracker import Tracker
from pinc.config import Config

from .ami import Ch, bridge_enter, cdr, dial_begin, dial_end, event, hangup, newchannel

T0 = 1800000000.0  # 2027-01-15 08:00:00 UTC


def _run(config: Config, events: list[Message], at: list[float] | None = None) -> list[CallChange]:
    tracker = Tracker(config.pbx)
    out: list[CallChange] = []
    for i, msg in enumerate(events):
        out += tracker.feed(msg, None if at is None else at[i])
    out += tracker.flush()
    return out


def _ended(changes: list[CallChange]) -> list[dict[str, Any]]:
    return [c.call for c in changes if c.kind == "call.ended" and not c.data.get("merged_into")]


# ---- a Local channel's name says whom it dials -------------------------------------------


def test_local_channel_names_whom_it_dials_not_who_calls(config: Config) -> None:
    """``Local/102@from-internal-…;1`` made by an Originate with caller id 101 is phone 101
    calling 102 (the lab's Local office places internal calls so): 101 -> 102, not 102 -> 102."""
    one = Ch(
        "Local/102@from-internal-00000000;1", "1800000000.0", "1800000000.0", "from-internal", "102"
    )
    two = Ch(
        "Local/102@from-internal-00000000;2",
        "1800000000.1",
        "1800000000.0",
        "from-internal",
        "102",
        "101",
    )
    ring = Ch("Local/102@phones-00000001;1", "1800000000.2", "1800000000.0", "phones", "102")
    events = [
        newchannel(one),
        newchannel(two),
        dial_begin(None, one),
        newchannel(ring),
        dial_begin(two, ring),
        dial_end(two, ring, "ANSWER"),
        dial_end(None, one, "ANSWER"),
        hangup(one.moved(cid="101")),
        hangup(two),
        hangup(ring),
    ]
    (call,) = _ended(_run(config, events))
    assert (call["direction"], call["from"], call["to"]) == ("internal", "101", "102")
    assert call["answered_by"] == "102"
    assert [(x["ext"], x["result"]) for x in call["legs"]] == [("102", "answered")]


def test_a_phone_channel_is_its_phone_whatever_its_caller_id(config: Config) -> None:
    """A dialled PJSIP phone shows the dialled number as caller id; its name decides."""
    caller = Ch("PJSIP/103-00000001", "1800000000.1", "1800000000.1", "from-internal", "101", "103")
    phone = Ch("PJSIP/101-00000002", "1800000000.2", "1800000000.1", "from-internal", "101", "101")
    events = [
        newchannel(caller),
        newchannel(phone),
        dial_begin(caller, phone),
        dial_end(caller, phone, "ANSWER"),
        hangup(phone),
        hangup(caller),
    ]
    (call,) = _ended(_run(config, events))
    assert (call["direction"], call["from"], call["to"], call["answered_by"]) == (
        "internal",
        "103",
        "101",
        "101",
    )


# ---- one clock ---------------------------------------------------------------------------


def _inbound(ts: list[float] | None, cdr_start: str = "", cdr_end: str = "") -> list[Message]:
    trunk = Ch(
        "PJSIP/trunk-00000001",
        "1800000000.1",
        "1800000000.1",
        "from-trunk",
        "74951230101",
        "79035550011",
    )
    phone = Ch(
        "PJSIP/101-00000002", "1800000000.2", "1800000000.1", "from-internal", "74951230101", "101"
    )
    t = ts or [None] * 6  # type: ignore[list-item]
    events = [
        newchannel(trunk, ts=t[0]),
        newchannel(phone, ts=t[1]),
        dial_begin(trunk, phone, ts=t[2]),
        dial_end(trunk, phone, "ANSWER", ts=t[3]),
        hangup(phone, ts=t[4]),
        hangup(trunk, ts=t[5]),
    ]
    if cdr_start:
        events.append(cdr(trunk, cdr_start, "", cdr_end, "ANSWERED", phone.name))
    return events


def test_timestamp_headers_are_the_clock_live_and_in_replay(config: Config) -> None:
    stamps = [T0 + 0.2, T0 + 0.3, T0 + 0.4, T0 + 2.6, T0 + 7.7, T0 + 7.8]
    replayed = _ended(_run(config, _inbound(stamps)))
    arrival = [T0 + 5000 + i for i in range(6)]  # pinc's own clock says something else
    live = _ended(_run(config, _inbound(stamps), at=arrival))
    assert replayed == live
    (call,) = replayed
    assert (call["started_at"], call["answered_at"], call["ended_at"]) == (
        "2027-01-15T08:00:00Z",
        "2027-01-15T08:00:02Z",
        "2027-01-15T08:00:07Z",
    )
    assert (call["duration"], call["talk"]) == (8, 5)


def test_without_timestamps_live_takes_arrival_times(config: Config) -> None:
    arrival = [T0 + 0.1, T0 + 0.2, T0 + 0.3, T0 + 3.4, T0 + 9.5, T0 + 9.6]
    (call,) = _ended(_run(config, _inbound(None), at=arrival))
    assert (call["duration"], call["talk"]) == (10, 6)


@pytest.mark.parametrize(
    ("local", "offset"),
    [
        ("2027-01-15 11:00:00", 3 * 3600),  # Europe/Moscow
        ("2027-01-15 13:30:01", 5.5 * 3600),  # Asia/Kolkata, a record a second late
        ("2027-01-15 03:00:00", -5 * 3600),  # America/New_York
        ("2027-01-15 08:00:00", 0),
    ],
)
def test_cdr_zone_offset_from_the_uniqueid_epoch(local: str, offset: float) -> None:
    from pinc.calls.cdr import cdr_time

    assert zone_offset(cdr_time(local), "1800000000.5") == (offset, True)


def test_a_late_record_gives_only_an_estimate() -> None:
    from pinc.calls.cdr import cdr_time

    # a record that began 40 s after its channel (a transferred call's later record)
    assert zone_offset(cdr_time("2027-01-15 11:00:40"), "1800000000.5") == (3 * 3600, False)
    assert zone_offset(cdr_time("not a time"), "1800000000.5") is None
    assert zone_offset(cdr_time("2027-01-15 11:00:00"), "no-epoch") is None


def test_cdr_in_pbx_local_time_is_mapped_to_utc(config: Config) -> None:
    """A PBX on Moscow time writes Cdr times 3 h ahead of UTC; read as UTC they once
    turned 7 s into 10,807 s."""
    events = _inbound(None, cdr_start="2027-01-15 11:00:00", cdr_end="2027-01-15 11:00:07")
    (call,) = _ended(_run(config, events))
    assert (call["started_at"], call["ended_at"], call["duration"]) == (
        "2027-01-15T08:00:00Z",
        "2027-01-15T08:00:07Z",
        7,
    )


def test_cdr_grace_is_the_same_live_and_in_replay(config: Config) -> None:
    """A Cdr 1 s after the last hangup is merged (its recording kept); one 5 s after is
    not: the call ended 3 s after its last hangup, by the event clock, in both modes."""
    stamps = [T0 + 0.2, T0 + 0.3, T0 + 0.4, T0 + 2.6, T0 + 7.7, T0 + 7.8]
    trunk = Ch("PJSIP/trunk-00000001", "1800000000.1", "1800000000.1")

    def with_cdr(delay: float) -> list[Message]:
        late = event(
            "Cdr",
            ("UniqueID", trunk.uid),
            ("StartTime", "2027-01-15 08:00:00"),
            ("EndTime", "2027-01-15 08:00:07"),
            ("Disposition", "ANSWERED"),
            ("RecordingFile", "in-1.wav"),
            ts=T0 + 7.8 + delay,
        )
        return [*_inbound(stamps), late]

    for delay, recording in ((1.0, "in-1.wav"), (5.0, None)):
        replayed = _ended(_run(config, with_cdr(delay)))
        live = _ended(_run(config, with_cdr(delay), at=[T0 + 99 + i for i in range(7)]))
        assert replayed == live
        assert replayed[0]["recording"] == recording


# ---- the AttendedTransfer race -----------------------------------------------------------


def _attended(with_target: bool) -> list[Message]:
    link = "1800000000.1"
    trunk = Ch("PJSIP/trunk-00000001", link, link, "from-trunk", "74951230101", "79035550011")
    p101 = Ch("PJSIP/101-00000002", "1800000000.2", link, "from-internal", "74951230101", "101")
    one = Ch("Local/102@from-internal-00000003;1", "1800000003.3", link, "from-internal", "102")
    two = Ch(
        "Local/102@from-internal-00000003;2", "1800000003.4", link, "from-internal", "102", "101"
    )
    p102 = Ch("PJSIP/102-00000004", "1800000003.5", link, "from-internal", "102", "102")
    transfer: list[list[tuple[str, str]] | tuple[str, str]] = [
        ("Result", "Success"),
        p101.block("OrigTransferer"),
        ("OrigBridgeUniqueid", "b-1"),
        p101.block("SecondTransferer"),
        ("SecondBridgeUniqueid", "b-2"),
        ("SecondBridgeNumChannels", "1" if with_target else "0"),
        trunk.block("Transferee"),
    ]
    if with_target:
        transfer.append(one.block("TransferTarget"))
    transfer += [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", "b-1")]
    return [
        newchannel(trunk),
        newchannel(p101),
        dial_begin(trunk, p101),
        dial_end(trunk, p101, "ANSWER"),
        bridge_enter(p101, "b-1"),
        bridge_enter(trunk, "b-1"),
        # Atxfer from 101: a consultation call through a Local channel, no DialBegin for it
        newchannel(one),
        newchannel(two),
        newchannel(p102),
        dial_begin(two, p102),
        dial_end(two, p102, "ANSWER"),
        dial_end(None, one, "ANSWER"),
        bridge_enter(one, "b-2"),
        bridge_enter(p101, "b-2"),
        # 101 hangs up: the consultation's ;1 half moves into the customer's bridge
        bridge_enter(one, "b-1"),
        event("AttendedTransfer", *transfer),
        hangup(p101),
        hangup(trunk),
        hangup(one),
        hangup(two),
        hangup(p102),
    ]


@pytest.mark.parametrize("with_target", [True, False], ids=["target", "race"])
def test_attended_transfer_with_or_without_its_target_fields(
    config: Config, with_target: bool
) -> None:
    (call,) = _ended(_run(config, _attended(with_target)))
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [
        ("attended", "101", "102")
    ]
    assert call["answered_by"] == "102"
    assert [(x["ext"], x["result"]) for x in call["legs"]] == [
        ("101", "answered"),
        ("102", "answered"),
    ]


# ---- pickup --------------------------------------------------------------------------------


def test_a_phone_that_picks_up_answers_the_call_and_is_no_leg(config: Config) -> None:
    """Asterisk's DialEnd ANSWER names the picker's own channel, which began a call of its
    own (it dialled ``*8``); that call folds into the ringing one, and the picker owns it."""
    link = "1800000000.1"
    trunk = Ch("PJSIP/trunk-00000001", link, link, "from-trunk", "74951230101", "79035550011")
    p101 = Ch("PJSIP/101-00000002", "1800000000.2", link, "from-internal", "s", "101")
    p103 = Ch("PJSIP/103-00000003", "1800000004.3", "1800000004.3", "from-internal", "*8", "103")
    joined = p103.moved(linkedid=link)
    events = [
        newchannel(trunk),
        newchannel(p101),
        dial_begin(trunk, p101),
        newchannel(p103),
        event("Pickup", p103.block()),
        dial_end(trunk, p103, "ANSWER"),
        hangup(p101, cause=26),
        bridge_enter(p103, "b-1"),
        bridge_enter(trunk, "b-1"),
        hangup(joined),
        hangup(trunk),
    ]
    (call,) = _ended(_run(config, events))
    assert (call["status"], call["answered_by"]) == ("completed", "103")
    assert [(x["ext"], x["result"]) for x in call["legs"]] == [("101", "cancelled")]
    assert call["linkedid"] == link


# ---- recordings and voicemail --------------------------------------------------------------


def test_freepbx_dated_recording_is_kept_when_the_cdr_names_only_its_file() -> None:
    from pinc.config import load_config

    config = load_config(None, env={}, overrides={"pbx": {"recordings_dir": "/var/spool/mon"}})
    link = "1800000000.1"
    trunk = Ch("PJSIP/trunk-00000001", link, link, "from-trunk", "74951230101", "79035550011")
    phone = Ch("PJSIP/101-00000002", "1800000000.2", link, "from-internal", "s", "101")
    name = "external-74951230101-79035550011-20270115-110000-1800000000.1.wav"
    events = [
        newchannel(trunk),
        event(
            "Newexten",
            trunk.block(),
            ("Application", "MixMonitor"),
            ("AppData", f"/var/spool/mon/2027/01/15/{name},b"),
        ),
        newchannel(phone),
        dial_begin(trunk, phone),
        dial_end(trunk, phone, "ANSWER"),
        hangup(phone),
        hangup(trunk),
        event(
            "Cdr",
            ("UniqueID", link),
            ("StartTime", "2027-01-15 11:00:00"),
            ("AnswerTime", "2027-01-15 11:00:00"),
            ("EndTime", "2027-01-15 11:00:05"),
            ("Disposition", "ANSWERED"),
            ("RecordingFile", name),
        ),
    ]
    (call,) = _ended(_run(config, events))
    assert call["recording"] == f"2027/01/15/{name}"


def test_voicemail_after_no_answer_is_a_missed_call_that_says_so(config: Config) -> None:
    link = "1800000000.1"
    trunk = Ch("PJSIP/trunk-00000001", link, link, "from-trunk", "74951230101", "79035550011")
    phone = Ch("PJSIP/101-00000002", "1800000000.2", link, "from-internal", "s", "101")
    events = [
        newchannel(trunk),
        newchannel(phone),
        dial_begin(trunk, phone),
        dial_end(trunk, phone, "NOANSWER"),
        hangup(phone, cause=19),
        event(
            "Newexten", trunk.block(), ("Application", "VoiceMail"), ("AppData", "101@default,u")
        ),
        hangup(trunk),
    ]
    (call,) = _ended(_run(config, events))
    assert (call["status"], call["answered_by"], call["voicemail"]) == ("missed", None, True)
    assert [(x["ext"], x["result"]) for x in call["legs"]] == [("101", "no-answer")]


# ---- parking and conferences ----------------------------------------------------------------


def test_a_parked_call_belongs_to_whoever_takes_it_from_the_lot(config: Config) -> None:
    link = "1800000000.1"
    trunk = Ch("PJSIP/trunk-00000001", link, link, "from-trunk", "74951230101", "79035550022")
    p101 = Ch("PJSIP/101-00000002", "1800000000.2", link, "from-internal", "s", "101")
    p102 = Ch("PJSIP/102-00000003", "1800000009.3", "1800000009.3", "from-internal", "701", "102")
    events = [
        newchannel(trunk),
        newchannel(p101),
        dial_begin(trunk, p101),
        dial_end(trunk, p101, "ANSWER"),
        bridge_enter(p101, "b-1"),
        bridge_enter(trunk, "b-1"),
        event(
            "BlindTransfer",
            ("Result", "Success"),
            p101.block("Transferer"),
            trunk.block("Transferee"),
            ("Context", "from-internal"),
            ("Extension", "700"),
        ),
        event("ParkedCall", trunk.block("Parkee"), ("ParkingSpace", "701")),
        hangup(p101),
        newchannel(p102),
        event("UnParkedCall", trunk.block("Parkee"), p102.block("Retriever")),
        bridge_enter(p102.moved(linkedid=link), "b-2"),
        hangup(trunk),
        hangup(p102.moved(linkedid=link)),
    ]
    (call,) = _ended(_run(config, events))
    assert (call["status"], call["answered_by"]) == ("completed", "102")
    assert [(x["ext"], x["result"]) for x in call["legs"]] == [("101", "answered")]
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [("blind", "101", "102")]


def test_a_conference_room_answers_its_callers(config: Config) -> None:
    """A phone that dials the room talks on its own internal call; an outside caller who
    joins is answered by the employee who opened the room. Nothing merges, nothing rings."""
    p101 = Ch("PJSIP/101-00000001", "1800000000.1", "1800000000.1", "from-internal", "8000", "101")
    trunk = Ch(
        "PJSIP/trunk-00000002",
        "1800000003.2",
        "1800000003.2",
        "from-trunk",
        "74951230009",
        "79031239876",
    )
    room = [("Conference", "8000"), ("BridgeUniqueid", "b-room")]
    events = [
        newchannel(p101),
        event("ConfbridgeJoin", *room, p101.block()),
        newchannel(trunk),
        event("ConfbridgeJoin", *room, trunk.block()),
        event("ConfbridgeLeave", *room, trunk.block()),
        hangup(trunk),
        event("ConfbridgeLeave", *room, p101.block()),
        hangup(p101),
    ]
    calls = sorted(_ended(_run(config, events)), key=lambda c: str(c["linkedid"]))
    got = [(c["direction"], c["from"], c["to"], c["status"], c["answered_by"]) for c in calls]
    assert got == [
        ("internal", "101", "8000", "completed", "101"),
        ("inbound", "79031239876", "74951230009", "completed", "101"),
    ]
    assert all(c["legs"] == [] for c in calls)
