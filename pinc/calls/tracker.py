"""The call tracker: AMI events in, ``CallChange``s out. Pure: no I/O, no clock.

Time comes from the caller (``at``, the arrival time, when live) or, in replay, only
from the events: the epoch in each channel's Uniqueid and the Cdr times. Cdr events
sharpen the times (answer, end) when they come, but are never required.

A call is keyed by Asterisk's Linkedid. Its *origin* is the channel whose Uniqueid is
the Linkedid: a channel entering from a trunk context makes the call inbound; otherwise
the call is classified on the first Dial an employee's side makes (internal when it
dials an extension, outbound when it dials a number). Until it is classified (e.g. the
ring of a click-to-call's employee phone), a call is kept quiet; ``call.started`` is
announced once direction, from and to are known.

This module holds the dispatch and the public API; the parts are ``state`` (the data),
``channels`` (who a channel is), ``legs``, ``transfers``, ``cdr`` and ``closing``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pinc.ami.protocol import Message
from pinc.calls import cdr, channels, clock, closing, conference, legs, parking, transfers
from pinc.calls.closing import DISCONNECTED_REASON, GONE_REASON, STALE_REASON
from pinc.calls.model import Call, CallChange, CallIdFactory, call_from_dict
from pinc.calls.names import clean, digits
from pinc.calls.state import Chan, Live, Out, State
from pinc.config import PbxConfig

__all__ = [
    "DISCONNECTED_REASON",
    "GONE_REASON",
    "MAX_PENDING_ORIGINATES",
    "RESYNC_QUIET",
    "STALE_REASON",
    "Tracker",
]

MAX_PENDING_ORIGINATES = 1000
RESYNC_QUIET = 60.0  # a periodic resync judges only calls with no event for this long

Handler = Callable[[State, Mapping[str, str], Out], None]

HANDLERS: dict[str, Handler] = {
    "DialBegin": legs.on_dial_begin,
    "DialEnd": legs.on_dial_end,
    "AgentCalled": legs.on_agent_called,
    "AgentConnect": legs.on_agent_connect,
    "AgentRingNoAnswer": legs.on_agent_ring_no_answer,
    "QueueCallerJoin": channels.on_significant,
    "QueueCallerAbandon": channels.on_significant,
    "Hangup": closing.on_hangup,
    "Newexten": channels.on_newexten,
    "VarSet": channels.on_varset,
    "BlindTransfer": transfers.on_blind_transfer,
    "AttendedTransfer": transfers.on_attended_transfer,
    "LocalBridge": channels.on_local_bridge,
    "BridgeEnter": channels.on_bridge_enter,
    "BridgeLeave": channels.on_bridge_leave,
    "BridgeDestroy": channels.on_bridge_destroy,
    "Cdr": cdr.on_cdr,
    "ConfbridgeJoin": conference.on_join,
    "ConfbridgeLeave": conference.on_leave,
    "ParkedCall": parking.on_parked_call,
    "UnParkedCall": parking.on_unparked_call,
    "OriginateResponse": channels.on_originate_response,
    "CoreShowChannel": channels.on_touch_only,
    "Hold": channels.on_hold,
    "Unhold": channels.on_hold,
}


# The fields without which an event says nothing to the tracker.
REQUIRED: dict[str, tuple[str, ...]] = {
    "Newchannel": ("Channel", "Uniqueid"),
    "DialBegin": ("DestUniqueid",),
    "DialEnd": ("DestUniqueid", "DialStatus"),
    "AgentCalled": ("DestUniqueid",),
    "AgentConnect": ("DestUniqueid",),
    "AgentRingNoAnswer": ("DestUniqueid",),
    "BlindTransfer": ("Result",),
    "AttendedTransfer": ("Result",),
    "BridgeEnter": ("BridgeUniqueid", "Uniqueid"),
    "BridgeLeave": ("BridgeUniqueid", "Uniqueid"),
    "LocalBridge": ("LocalOneUniqueid", "LocalTwoUniqueid"),
    "VarSet": ("Variable",),
    "Cdr": ("UniqueID",),
}

# Events of Asterisk 13 to 22 that pinc knows and has no use for (or reads elsewhere);
# any other event name is counted as an oddity (a PBX flavour pinc does not know).
KNOWN_EVENTS = frozenset(
    """Newchannel Newstate NewCallerid NewConnectedLine NewAccountCode HangupRequest
    SoftHangupRequest DialState BridgeCreate BridgeMerge BridgeInfoChannel BridgeInfoComplete
    BridgeVideoSourceUpdate MixMonitorStart MixMonitorStop MixMonitorMute
    MusicOnHoldStart MusicOnHoldStop QueueCallerLeave QueueMemberStatus QueueMemberAdded
    QueueMemberRemoved QueueMemberPause QueueMemberPenalty QueueMemberRinginuse QueueParams
    QueueEntry QueueStatusComplete AgentComplete AgentDump AgentLogin AgentLogoff
    LocalOptimizationBegin LocalOptimizationEnd Rename DTMFBegin DTMFEnd RTCPSent
    RTCPReceived FullyBooted Reload Shutdown SuccessfulAuth ChallengeSent
    ChallengeResponseFailed InvalidPassword InvalidAccountID FailedACL RequestBadFormat
    RequestNotAllowed AuthMethodNotAllowed UnexpectedAddress SessionLimit MemoryLimit
    LoadAverageLimit Registry PeerStatus ContactStatus DeviceStateChange ExtensionStatus
    PresenceStateChange PresenceStatus ChannelTalkingStart ChannelTalkingStop ConfbridgeStart
    ConfbridgeEnd ConfbridgeTalking ConfbridgeMute
    ConfbridgeUnmute ConfbridgeRecord ConfbridgeStopRecord ParkedCallGiveUp
    ParkedCallTimeOut ParkedCallSwap Pickup MessageWaiting MWIGet MWIGetComplete
    VoicemailPasswordChange AGIExecStart AGIExecEnd AsyncAGIStart AsyncAGIExec AsyncAGIEnd
    UserEvent Cel CoreShowChannelsComplete CoreShowChannelMapComplete Status StatusComplete
    FAXStatus ReceiveFAX SendFAX ChanSpyStart ChanSpyStop HangupHandlerPush HangupHandlerPop
    HangupHandlerRun DAHDIChannel Alarm AlarmClear SpanAlarm SpanAlarmClear DNDState
    MeetmeJoin MeetmeLeave MeetmeEnd MeetmeTalking MeetmeMute AOC-D AOC-E AOC-S
    DeadlockStart""".split()
)


class Tracker:
    """Correlates AMI events into calls. See the module docstring and DESIGN.md."""

    def __init__(self, pbx: PbxConfig, *, new_id: CallIdFactory | None = None) -> None:
        self.pbx = pbx
        self._st = State(pbx, new_id)
        self.office = self._st.office

    # ------------------------------------------------------------------ events

    def feed(self, msg: Message, at: float | None = None) -> list[CallChange]:
        """Process one AMI message; returns the changes it caused (often none)."""
        st = self._st
        out = st.pending_out
        if out:
            st.pending_out = []
        else:
            out = []
        st.seq += 1
        if not msg.is_event:
            return out
        st.stats["events"] += 1
        f = msg.fields
        if at is None and "Timestamp" not in f:  # replay of an unstamped transcript
            clock.from_uniqueids(st, f)
        else:
            clock.advance(st, f, at)
        if st.closing:  # before the event: a call due by this event's time is over
            closing.finish_due(st, out)
        name = st.event = msg.name
        for key in REQUIRED.get(name, ()):
            if key not in f:
                st.odd("missing_field", f"{name} without {key}")
        handler = HANDLERS.get(name)
        if handler is not None:
            handler(st, f, out)
        else:
            if name not in KNOWN_EVENTS:
                st.odd("unknown_event", name)
            if "Uniqueid" in f:
                channels.touch(st, f, "", out)
        return out

    # ------------------------------------------------------------------ what pinc does

    def note_originate(
        self,
        channel_id: str,
        *,
        ext: str,
        number: str,
        record_id: str | None = None,
        origin: str | None = None,
    ) -> None:
        """pinc is about to Originate with ``ChannelId=channel_id``: a click-to-call from
        ``ext`` to ``number``. The call it creates is announced as such at once."""
        pending = self._st.originates
        pending[channel_id] = {
            "ext": ext,
            "number": digits(number) or number,
            "record_id": record_id,
            "origin": origin,
        }
        while len(pending) > MAX_PENDING_ORIGINATES:
            pending.popitem(last=False)

    def note_transfer(self, call_id: str, to: str = "") -> None:
        """pinc is about to ask Asterisk to transfer live call ``call_id`` to ``to`` (its
        /transfer endpoint). Once ``transfer_result`` says Asterisk accepted, the blind,
        attended or redirect transfer to ``to`` is recorded with kind ``crm``."""
        transfers.ask(self._st, call_id, to)

    def transfer_result(self, call_id: str, to: str, accepted: bool) -> None:
        """Asterisk's answer to that request. A transfer its events already showed is
        relabelled ``crm`` with a ``call.transferred`` that the next ``feed`` or ``expire``
        returns; a refusal forgets the request."""
        transfers.answered(self._st, call_id, to, accepted)

    def _take_pending(self) -> list[CallChange]:
        out = self._st.pending_out
        if out:
            self._st.pending_out = []
            return out
        return []

    # ------------------------------------------------------------------ time passing

    def resync(
        self, snapshot: Sequence[Message], at: float, *, periodic: bool = False
    ) -> list[CallChange]:
        """``CoreShowChannels`` listed the channels up now: end the calls none of whose
        channels is still up. After a reconnect they ended while pinc was away; on a
        ``periodic`` check their Hangups were lost (stale), and only calls quiet for
        ``RESYNC_QUIET`` seconds are judged, so a call that is ending right now is not."""
        st = self._st
        out = self._take_pending()
        clock.wall(st, at)
        alive_uids: set[str] = set()
        alive_links: set[str] = set()
        for msg in snapshot:
            uid = clean(msg.get("Uniqueid"))
            if uid:
                alive_uids.add(uid)
                alive_links.add(clean(msg.get("Linkedid")) or uid)
        for live in st.unique_live():
            if live.closed or (periodic and st.now - live.last_at < RESYNC_QUIET):
                continue
            still = [c for c in live.chans.values() if c.uid in alive_uids]
            known_link = any(link in alive_links for link in live.call.linkedids)
            if not still and not known_link:
                if periodic:
                    st.odd("stale_call", live.call.linkedid)
                reason = GONE_REASON if periodic else DISCONNECTED_REASON
                closing.end_now(st, live, reason, out)
                continue
            for chan in live.chans.values():
                if not chan.hung and chan.uid not in alive_uids:
                    chan.hung = True
                    live.open -= 1
        st.event = "CoreShowChannel"
        for msg in snapshot:  # channels we had never seen: start tracking them
            if clean(msg.get("Uniqueid")) not in st.chans:
                channels.touch(st, msg.fields, "", out)
        return out

    def oddities(self) -> dict[str, int]:
        """How often the input did not look like the AMI pinc knows, by kind."""
        return dict(self._st.oddities)

    def oddity_example(self, kind: str) -> str:
        """The first example of an oddity of ``kind`` (for a log line)."""
        return self._st.odd_examples.get(kind, "")

    def expire(self, at: float) -> list[CallChange]:
        """Close stale calls and finish ended calls whose Cdr grace has passed."""
        st = self._st
        out = self._take_pending()
        clock.wall(st, at)
        limit = st.now - self.pbx.stale_call_seconds
        for live in st.unique_live():
            if not live.closed and live.last_at < limit:
                st.odd("stale_call", live.call.linkedid)
                closing.end_now(st, live, STALE_REASON, out)
        closing.finish_due(st, out)
        return out

    def flush(self) -> list[CallChange]:
        """End of input (replay): finish every ended call now; live calls stay."""
        out: list[CallChange] = []
        for live in list(self._st.closing.values()):
            closing.finish(self._st, live, out)
        return out

    def restore(self, calls: Sequence[dict[str, Any]]) -> None:
        """Take back live calls from the journal after a restart (their channels return
        with the next events, or a resync ends them)."""
        st = self._st
        for data in calls:
            linkedid = str(data.get("linkedid") or "")
            if not linkedid or linkedid in st.calls:
                continue
            call = call_from_dict(data)
            live = Live(call=call, kind=call.direction, announced=True, restored=True)
            live.last_at = st.now or (call.started_at or 0.0)
            for link in call.linkedids or [linkedid]:
                st.calls[link] = live
            if not call.linkedids:
                call.linkedids.append(linkedid)

    # ------------------------------------------------------------------ questions

    def _open_lives(self) -> Iterator[Live]:
        """Calls announced and not yet hung up: what ``live_calls`` lists."""
        return (live for live in self._st.unique_live() if live.announced and not live.closed)

    def live_calls(self) -> list[Call]:
        return [live.call for live in self._open_lives()]

    def live_count(self) -> int:
        """How many calls ``live_calls`` would list, without building the list."""
        return sum(1 for _ in self._open_lives())

    def channels_of(self, call_id: str) -> list[dict[str, str]]:
        """The live channels of a call, for pinc's transfers: ``channel``, ``uniqueid``,
        ``ext`` (the employee behind it), ``role`` (customer, employee, other),
        ``bridge`` (its BridgeUniqueid or "") and ``partner`` (the role of who shares
        that bridge with it, "" when nobody does: a transfer must act on a channel that
        is bridged with the other party)."""
        st = self._st
        live = st.live_by_id(call_id)
        if live is None:
            return []
        out = []
        for c in live.chans.values():
            if c.hung:
                continue
            members = st.bridges.get(c.bridge, []) if c.bridge else []
            roles = {o.role for o in members if o is not c and o is not c.peer}
            partner = next((r for r in ("customer", "employee", "other") if r in roles), "")
            out.append(
                {
                    "channel": c.name,
                    "uniqueid": c.uid,
                    "ext": _ext(st, live, c),
                    "role": c.role,
                    "bridge": c.bridge,
                    "partner": partner,
                }
            )
        return out

    def call_of_extension(self, ext: str) -> str | None:
        """The live call in which the employee on ``ext`` has a channel up, if any."""
        for live in self._open_lives():
            for c in live.chans.values():
                if not c.hung and c.role == "employee" and _ext(self._st, live, c) == ext:
                    return live.call.id
        return None

    def statistics(self) -> dict[str, Any]:
        st = self._st
        lives = st.unique_live()
        return {
            **st.stats,
            "live_calls": sum(1 for x in lives if not x.closed),
            "closing_calls": len(st.closing),
            "channels": len(st.chans),
            "pending_originates": len(st.originates),
            "oddities": dict(st.oddities),
            "oddity_examples": dict(st.odd_examples),
        }


def _ext(st: State, live: Live, c: Chan) -> str:
    """The employee behind an employee's channel (else ""), the caller when unsure."""
    if c.role != "employee":
        return ""
    return st.who(live, c) or live.call.from_number
