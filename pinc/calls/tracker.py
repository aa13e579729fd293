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

After its last channel hangs up a call is *closing*: the Cdr events that trail the
hangups are merged for a short grace (a few seconds live, a window of events in replay),
then ``call.ended`` is emitted and the call leaves the tracker's state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pinc.ami.protocol import Message
from pinc.calls.channels import ChannelName, Office, cdr_time, clean, digits, epoch_of, parse_name
from pinc.calls.model import (
    Call,
    CallChange,
    CallIdFactory,
    Leg,
    Transfer,
    call_id_for,
    iso,
)
from pinc.config import PbxConfig

DISCONNECTED_REASON = "ended while pinc was disconnected"
STALE_REASON = "stale: no event for too long"
CDR_GRACE_SECONDS = 3.0  # live: how long an ended call waits for its trailing Cdr events
CDR_GRACE_EVENTS = 3000  # replay: the same wait, counted in events
MAX_PENDING_ORIGINATES = 1000

_FAILED_CAUSES = frozenset({1, 3, 20, 27, 34, 38, 41, 42, 44, 47, 58, 88, 127})
_NOANSWER_CAUSES = frozenset({18, 19, 21})
_DIAL_RESULT = {
    "ANSWER": "answered",
    "BUSY": "busy",
    "NOANSWER": "no-answer",
    "CANCEL": "cancelled",
    "ABORT": "cancelled",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
}


@dataclass(slots=True, eq=False)
class _Chan:
    uid: str
    name: str
    parsed: ChannelName
    linkedid: str
    ext: str | None  # the employee extension the channel name points at
    context0: str
    exten0: str
    context: str = ""
    exten: str = ""
    cid: str = ""
    app: str = ""
    app_data: str = ""
    hung: bool = False
    answered_est: float | None = None  # best (latest) estimate of when it answered
    peer: _Chan | None = None  # the other half of a Local pair
    call: _Live | None = None
    role: str = "other"  # customer | employee | other
    originated: bool = False  # rung by an Originate (no caller channel)


@dataclass(slots=True, eq=False)
class _LegState:
    leg: Leg
    chan: _Chan
    followme_owner: str | None = None
    caller: _Chan | None = None  # the channel that dialled it
    counts: bool = True  # False while it is an unconfirmed consultation target


@dataclass(slots=True, eq=False)
class _Xfer:
    transfer: Transfer
    target: _LegState | None
    needs_event: bool  # a consultation: only an AttendedTransfer event confirms it
    confirmed: bool = False


@dataclass(slots=True, eq=False)
class _Live:
    call: Call
    chans: dict[str, _Chan] = field(default_factory=dict)
    open: int = 0
    origin: _Chan | None = None
    kind: str | None = None  # the direction once classified
    announced: bool = False
    legs: list[_LegState] = field(default_factory=list)
    leg_by_pair: dict[str, _LegState] = field(default_factory=dict)
    xfers: list[_Xfer] = field(default_factory=list)
    expect_target: str | None = None  # a transfer event named this target before it rang
    answer_chan: _Chan | None = None
    out_status: str = ""  # the last DialStatus towards the outside (outbound) or the target
    recording: str | None = None
    cdr_start: float | None = None
    cdr_end: float | None = None
    last_hangup: float | None = None
    customer_hung: bool = False
    closing_seq: int | None = None
    closing_at: float | None = None
    last_at: float = 0.0
    cause_set: bool = False
    restored: bool = False  # taken back from the journal: its answer is already known


class Tracker:
    """Correlates AMI events into calls. See the module docstring and DESIGN.md."""

    def __init__(self, pbx: PbxConfig, *, new_id: CallIdFactory | None = None) -> None:
        self.pbx = pbx
        # Live pinc gives calls random ids (model.random_call_id); replay, by default,
        # the deterministic ones, so the same transcript always prints the same calls.
        self._new_id: CallIdFactory = new_id or (lambda linkedid, _started: call_id_for(linkedid))
        self.office = Office(pbx)
        self._chans: dict[str, _Chan] = {}
        self._by_name: dict[str, _Chan] = {}
        self._pairs: dict[str, _Chan] = {}  # Local pair key -> the half seen first
        self._calls: dict[str, _Live] = {}  # linkedid -> call (merged linkedids too)
        self._closing: dict[str, _Live] = {}  # call id -> call waiting for its Cdrs
        self._originates: OrderedDict[str, dict[str, str | None]] = OrderedDict()
        self._crm_transfers: set[str] = set()  # calls pinc was asked to transfer
        self._now = 0.0
        self._live_clock = False
        self._seq = 0
        self._stats = {"events": 0, "calls_started": 0, "calls_ended": 0, "merged": 0}
        self._handlers: dict[str, Callable[[Mapping[str, str], list[CallChange]], None]] = {
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "AgentCalled": self._on_agent_called,
            "AgentConnect": self._on_agent_connect,
            "AgentRingNoAnswer": self._on_agent_ring_no_answer,
            "QueueCallerJoin": self._on_significant,
            "QueueCallerAbandon": self._on_significant,
            "Hangup": self._on_hangup,
            "Newexten": self._on_newexten,
            "VarSet": self._on_varset,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "LocalBridge": self._on_local_bridge,
            "Cdr": self._on_cdr,
            "OriginateResponse": self._on_originate_response,
            "CoreShowChannel": self._on_touch_only,
        }

    # ------------------------------------------------------------------ public API

    def feed(self, msg: Message, at: float | None = None) -> list[CallChange]:
        """Process one AMI message; returns the changes it caused (often none)."""
        out: list[CallChange] = []
        self._seq += 1
        if not msg.is_event:
            return out
        self._stats["events"] += 1
        f = msg.fields
        if at is not None:
            self._live_clock = True
            if at > self._now:
                self._now = at
        elif not self._live_clock:
            self._advance_clock(f)
        handler = self._handlers.get(msg.name)
        if handler is not None:
            handler(f, out)
        elif "Uniqueid" in f:
            self._touch(f, "", out)
        if self._closing:
            self._finish_due(out)
        return out

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
        self._originates[channel_id] = {
            "ext": ext,
            "number": digits(number) or number,
            "record_id": record_id,
            "origin": origin,
        }
        while len(self._originates) > MAX_PENDING_ORIGINATES:
            self._originates.popitem(last=False)

    def note_transfer(self, call_id: str) -> None:
        """pinc is about to transfer live call ``call_id`` (its /transfer endpoint): the
        blind, attended or redirect transfer that follows is recorded with kind ``crm``."""
        if self._live_by_id(call_id) is not None:
            self._crm_transfers.add(call_id)

    def resync(self, channels: Sequence[Message], at: float) -> list[CallChange]:
        """After a reconnect: end the calls none of whose channels is still up."""
        out: list[CallChange] = []
        if at > self._now:
            self._now = at
        alive_uids: set[str] = set()
        alive_links: set[str] = set()
        for msg in channels:
            uid = clean(msg.get("Uniqueid"))
            if uid:
                alive_uids.add(uid)
                alive_links.add(clean(msg.get("Linkedid")) or uid)
        for live in self._unique_live():
            if live.closing_seq is not None:
                continue
            still = [c for c in live.chans.values() if c.uid in alive_uids]
            known_link = any(link in alive_links for link in live.call.linkedids)
            if not still and not known_link:
                live.call.end_reason = DISCONNECTED_REASON
                self._close(live, out)
                self._finish(live, out)
                continue
            for chan in live.chans.values():
                if not chan.hung and chan.uid not in alive_uids:
                    chan.hung = True
                    live.open -= 1
        for msg in channels:  # channels we had never seen: start tracking them
            if clean(msg.get("Uniqueid")) not in self._chans:
                self._touch(msg.fields, "", out)
        return out

    def expire(self, at: float) -> list[CallChange]:
        """Close stale calls and finish ended calls whose Cdr grace has passed."""
        out: list[CallChange] = []
        if at > self._now:
            self._now = at
        limit = at - self.pbx.stale_call_seconds
        for live in self._unique_live():
            if live.closing_seq is None and live.last_at < limit:
                live.call.end_reason = STALE_REASON
                self._close(live, out)
                self._finish(live, out)
        for live in list(self._closing.values()):
            if live.closing_at is not None and at - live.closing_at >= CDR_GRACE_SECONDS:
                self._finish(live, out)
        return out

    def flush(self) -> list[CallChange]:
        """End of input (replay): finish every ended call now; live calls stay."""
        out: list[CallChange] = []
        for live in list(self._closing.values()):
            self._finish(live, out)
        return out

    def restore(self, calls: Sequence[dict[str, Any]]) -> None:
        """Take back live calls from the journal after a restart (their channels return
        with the next events, or a resync ends them)."""
        for data in calls:
            linkedid = str(data.get("linkedid") or "")
            if not linkedid or linkedid in self._calls:
                continue
            call = _call_from_dict(data)
            live = _Live(call=call, kind=call.direction, announced=True, restored=True)
            live.last_at = self._now or (call.started_at or 0.0)
            for link in call.linkedids or [linkedid]:
                self._calls[link] = live
            if not call.linkedids:
                call.linkedids.append(linkedid)

    def _open_lives(self) -> Iterator[_Live]:
        """Calls announced and not yet hung up: what ``live_calls`` lists."""
        return (live for live in self._unique_live() if live.announced and live.closing_seq is None)

    def live_calls(self) -> list[Call]:
        return [live.call for live in self._open_lives()]

    def live_count(self) -> int:
        """How many calls ``live_calls`` would list, without building the list."""
        return sum(1 for _ in self._open_lives())

    def _live_by_id(self, call_id: str) -> _Live | None:
        for live in self._unique_live():
            if live.call.id == call_id:
                return live
        return None

    def channels_of(self, call_id: str) -> list[dict[str, str]]:
        live = self._live_by_id(call_id)
        if live is None:
            return []
        return [
            {
                "channel": c.name,
                "uniqueid": c.uid,
                "ext": _chan_ext(live, c),
                "role": c.role,
            }
            for c in live.chans.values()
            if not c.hung
        ]

    def call_of_extension(self, ext: str) -> str | None:
        """The live call in which the employee on ``ext`` has a channel up, if any."""
        for live in self._open_lives():
            for c in live.chans.values():
                if not c.hung and c.role == "employee" and _chan_ext(live, c) == ext:
                    return live.call.id
        return None

    def statistics(self) -> dict[str, Any]:
        lives = self._unique_live()
        return {
            **self._stats,
            "live_calls": sum(1 for x in lives if x.closing_seq is None),
            "closing_calls": len(self._closing),
            "channels": len(self._chans),
            "pending_originates": len(self._originates),
        }

    # ------------------------------------------------------------------ clock

    def _advance_clock(self, f: Mapping[str, str]) -> None:
        for key in ("Uniqueid", "DestUniqueid"):
            uid = f.get(key)
            if uid:
                ep = epoch_of(clean(uid))
                if ep is not None and ep > self._now:
                    self._now = ep

    # ------------------------------------------------------------------ channels

    def _touch(self, f: Mapping[str, str], prefix: str, out: list[CallChange]) -> _Chan | None:
        uid = f.get(prefix + "Uniqueid")
        if not uid:
            return None
        uid = clean(uid)
        if uid in ("none", "<unknown>"):  # global VarSet; a failed OriginateResponse
            return None
        linkedid = clean(f.get(prefix + "Linkedid", "")) or uid
        chan = self._chans.get(uid)
        if chan is None:
            chan = self._new_chan(f, prefix, uid, linkedid, out)
        elif chan.linkedid != linkedid:
            self._relink(chan, linkedid, out)
        ctx = f.get(prefix + "Context")
        if ctx is not None:
            chan.context = clean(ctx)
        exten = f.get(prefix + "Exten")
        if exten is not None:
            chan.exten = clean(exten)
        cid = f.get(prefix + "CallerIDNum")
        if cid:
            num = digits(cid)
            if num:
                chan.cid = num
        live = chan.call
        if live is not None:
            live.last_at = self._now
            if (
                live.kind == "inbound"
                and not live.announced
                and chan.role == "customer"
                and chan.cid
            ):
                live.call.from_number = chan.cid
        return chan

    def _new_chan(
        self, f: Mapping[str, str], prefix: str, uid: str, linkedid: str, out: list[CallChange]
    ) -> _Chan:
        name = clean(f.get(prefix + "Channel", ""))
        parsed = parse_name(name)
        context0 = clean(f.get(prefix + "Context", ""))
        exten0 = clean(f.get(prefix + "Exten", ""))
        chan = _Chan(
            uid=uid,
            name=name,
            parsed=parsed,
            linkedid=linkedid,
            ext=self.office.phone_ext(parsed),
            context0=context0,
            exten0=exten0,
            context=context0,
            exten=exten0,
        )
        self._chans[uid] = chan
        self._by_name[name] = chan
        if parsed.half:
            other = self._pairs.pop(parsed.pair, None)
            if other is not None and other.peer is None:
                chan.peer, other.peer = other, chan
            else:
                self._pairs[parsed.pair] = chan
        live = self._calls.get(linkedid)
        if live is None:
            live = self._new_call(linkedid)
        self._attach(live, chan)
        if live.origin is None and (uid == linkedid or not live.chans or len(live.chans) == 1):
            self._set_origin(live, chan, out)
        elif chan.peer is not None and chan.peer is live.origin and live.kind == "inbound":
            chan.role = "customer"
        return chan

    def _attach(self, live: _Live, chan: _Chan) -> None:
        chan.call = live
        live.chans[chan.uid] = chan
        if not chan.hung:
            live.open += 1
        live.last_at = self._now

    def _new_call(self, linkedid: str) -> _Live:
        started = epoch_of(linkedid)
        if started is None or self._live_clock:
            started = self._now or started
        call = Call(id=self._new_id(linkedid, started), linkedid=linkedid, started_at=started)
        call.linkedids.append(linkedid)
        live = _Live(call=call, last_at=self._now)
        self._calls[linkedid] = live
        return live

    def _set_origin(self, live: _Live, chan: _Chan, out: list[CallChange]) -> None:
        live.origin = chan
        note = self._originates.pop(chan.uid, None)
        if note is not None:
            chan.role = "employee"
            call = live.call
            call.record_id = note.get("record_id")
            call.origin = note.get("origin")
            ext = note.get("ext") or ""
            number = note.get("number") or ""
            self._classify(
                live, "internal" if self.office.is_ext(number) else "outbound", ext, number, out
            )
            return
        trunk = self.office.trunk_contexts
        if chan.context0 in trunk or chan.parsed.context in trunk:
            chan.role = "customer"
            if chan.peer is not None:
                chan.peer.role = "customer"
            live.kind = "inbound"
            call = live.call
            call.direction = "inbound"
            did = digits(chan.exten0) or digits(chan.parsed.exten)
            call.to_number = did
            call.from_number = chan.cid
        elif chan.ext is not None or self.office.is_ext(chan.cid):
            chan.role = "employee"

    def _relink(self, chan: _Chan, linkedid: str, out: list[CallChange]) -> None:
        """A channel took another Linkedid (attended transfer): merge the two calls."""
        chan.linkedid = linkedid
        old = chan.call
        new = self._calls.get(linkedid)
        if new is None:
            if old is not None:
                self._calls[linkedid] = old
                old.call.linkedids.append(linkedid)
            return
        if old is None or old is new:
            return
        # The older Linkedid wins; absorb the younger call into it.
        keep, gone = (new, old) if _older(new.call.linkedid, old.call.linkedid) else (old, new)
        self._merge(keep, gone, out)

    def _merge(self, keep: _Live, gone: _Live, out: list[CallChange]) -> None:
        self._stats["merged"] += 1
        for c in gone.chans.values():
            c.call = keep
            keep.chans[c.uid] = c
            if not c.hung:
                keep.open += 1
            if c.role == "other" and c.ext is not None:
                c.role = "employee"
        for ls in gone.legs:
            pair = ls.chan.parsed.pair
            if pair in keep.leg_by_pair:
                continue
            keep.legs.append(ls)
            keep.leg_by_pair[pair] = ls
            if keep.answer_chan is not None and ls.followme_owner is None:
                self._tentative_transfer(keep, ls, needs_event=True)
        keep.xfers.extend(gone.xfers)
        for link in gone.call.linkedids:
            self._calls[link] = keep
            if link not in keep.call.linkedids:
                keep.call.linkedids.append(link)
        if gone.recording and not keep.recording:
            keep.recording = gone.recording
        self._closing.pop(gone.call.id, None)
        if gone.announced:
            gone.call.status = "completed" if gone.answer_chan is not None else "missed"
            gone.call.end_reason = f"merged into {keep.call.id}"
            gone.call.ended_at = self._now
            self._emit(gone, "call.ended", out, {"merged_into": keep.call.id})

    # ------------------------------------------------------------------ classification

    def _classify(
        self, live: _Live, kind: str, ext: str, number: str, out: list[CallChange]
    ) -> None:
        live.kind = kind
        call = live.call
        call.direction = kind
        call.from_number = ext
        call.to_number = number
        if live.answer_chan is not None and live.answer_chan.ext is not None and kind == "outbound":
            live.answer_chan = None  # the Originate's ring of the employee is not the answer
        self._announce(live, out)

    def _announce(self, live: _Live, out: list[CallChange]) -> None:
        if live.announced or live.kind is None:
            return
        live.announced = True
        self._stats["calls_started"] += 1
        self._refresh(live)
        self._emit(live, "call.started", out)

    def _employee_ext(self, chan: _Chan | None) -> str:
        if chan is None:
            return ""
        if chan.ext is not None:
            return chan.ext
        if chan.peer is not None and chan.peer.ext is not None:
            return chan.peer.ext
        if self.office.is_ext(chan.cid):
            return chan.cid
        return ""

    def _maybe_classify_by_dial(
        self, live: _Live, caller: _Chan, f: Mapping[str, str], out: list[CallChange]
    ) -> None:
        if live.kind is not None:
            return
        if caller.context in self.office.trunk_contexts:
            return
        number = digits(caller.exten) if caller.exten.isdigit() else ""
        if not number:
            target = clean(f.get("DialString", "")).split("@", 1)[0].rsplit("/", 1)[-1]
            number = digits(target) if target.isdigit() else ""
        if not number:
            return
        ext = self._employee_ext(caller) or self._employee_ext(live.origin)
        if not ext:
            return
        caller.role = "employee"
        if caller.peer is not None:
            caller.peer.role = "employee"
        kind = "internal" if self.office.is_ext(number) else "outbound"
        self._classify(live, kind, ext, number, out)

    # ------------------------------------------------------------------ legs

    def _ring(
        self, live: _Live, dest: _Chan, caller: _Chan | None, out: list[CallChange]
    ) -> _LegState | None:
        pair = dest.parsed.pair
        ls = live.leg_by_pair.get(pair)
        if ls is not None:
            return ls
        owner: str | None = None
        ext = dest.ext
        if caller is not None and caller.app == "FollowMe":
            owner = digits(caller.app_data.split(",", 1)[0]) or None
            if ext is None:
                ext = digits(dest.parsed.exten or dest.exten) or None
        parent = live.leg_by_pair.get(caller.parsed.pair) if caller is not None else None
        if parent is not None and caller is not parent.chan and ext == parent.leg.ext:
            # A Local leg dialling the phone behind it: still the same employee, one leg.
            live.leg_by_pair[pair] = parent
            dest.role = parent.chan.role
            return parent
        if ext is None:
            return None
        dest.role = "employee"
        if dest.peer is not None:
            dest.peer.role = "employee"
        leg = Leg(ext=ext, rang_at=self._now, channel=dest.name)
        ls = _LegState(leg=leg, chan=dest, followme_owner=owner, caller=caller)
        live.legs.append(ls)
        live.call.legs.append(leg)
        live.leg_by_pair[pair] = ls
        if caller is None:
            dest.originated = True
        if owner is not None:
            self._followme_step(live, ls, out)
        elif live.answer_chan is not None:
            if live.expect_target == ext:
                live.expect_target = None
                for x in live.xfers:
                    if x.target is None and x.transfer.to == ext:
                        x.target = ls
            else:
                customer = caller is not None and (
                    caller.role == "customer"
                    or (caller.peer is not None and caller.peer.role == "customer")
                )
                self._tentative_transfer(live, ls, needs_event=not customer)
        if live.announced:
            self._emit(live, "call.ringing", out, {"ext": ext})
        return ls

    def _followme_step(self, live: _Live, ls: _LegState, out: list[CallChange]) -> None:
        prev = None
        for other in live.legs[:-1]:
            if other.followme_owner is not None:
                prev = other
        if prev is None:
            return
        if prev.leg.result is None:
            prev.leg.result = "no-answer"
        transfer = Transfer(kind="followme", from_ext=prev.leg.ext, to=ls.leg.ext, at=self._now)
        live.xfers.append(_Xfer(transfer, ls, needs_event=False, confirmed=True))
        live.call.transfers.append(transfer)
        if live.announced:
            self._emit(live, "call.transferred", out, transfer.to_dict())

    def _tentative_transfer(self, live: _Live, ls: _LegState, *, needs_event: bool) -> None:
        self._refresh(live)
        from_ext = live.call.answered_by or ""
        transfer = Transfer(kind="redirect", from_ext=from_ext, to=ls.leg.ext, at=self._now)
        live.xfers.append(_Xfer(transfer, ls, needs_event=needs_event))
        if needs_event:
            ls.counts = False

    def _confirm(self, live: _Live, x: _Xfer, out: list[CallChange]) -> None:
        if x.confirmed:
            return
        x.confirmed = True
        if x.target is not None:
            x.target.counts = True
        if live.call.id in self._crm_transfers:  # pinc's own /transfer asked for this one
            self._crm_transfers.discard(live.call.id)
            x.transfer.kind = "crm"
        live.call.transfers.append(x.transfer)
        if live.announced:
            self._refresh(live)
            self._emit(live, "call.transferred", out, x.transfer.to_dict())

    def _xfer_for(self, live: _Live, ls: _LegState) -> _Xfer | None:
        for x in live.xfers:
            if x.target is ls:
                return x
        return None

    def _leg_result(self, live: _Live, ls: _LegState, status: str, out: list[CallChange]) -> None:
        leg = ls.leg
        result = _DIAL_RESULT.get(status)
        if result is None or leg.result == "answered":
            return
        if result == "answered":
            leg.result = "answered"
            est = ls.chan.answered_est
            if est is None or est < self._now:
                ls.chan.answered_est = self._now
            leg.answered_at = ls.chan.answered_est
            x = self._xfer_for(live, ls)
            if x is not None and not x.needs_event:
                self._confirm(live, x, out)
            if live.answer_chan is None and not (live.kind == "outbound"):
                if not (ls.chan.originated and live.kind is None):
                    live.answer_chan = ls.chan
                    self._answered(live, out)
            elif live.answer_chan is not None and ls.counts and live.announced:
                self._refresh(live)
            return
        if leg.result is None:
            leg.result = result

    def _answered(self, live: _Live, out: list[CallChange]) -> None:
        self._refresh(live)
        if live.announced:
            self._emit(live, "call.answered", out, {"ext": live.call.answered_by})
            if live.recording:
                self._emit(live, "call.recording", out, {"recording": live.call.recording})

    # ------------------------------------------------------------------ event handlers

    def _on_touch_only(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        self._touch(f, "", out)

    def _on_significant(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        chan = self._touch(f, "", out)
        if chan is not None and chan.call is not None:
            self._announce(chan.call, out)

    def _on_newexten(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        chan = self._touch(f, "", out)
        if chan is None:
            return
        chan.app = clean(f.get("Application", ""))
        chan.app_data = clean(f.get("AppData", ""))
        if chan.app == "MixMonitor" and chan.call is not None:
            self._set_recording(chan.call, chan.app_data, out)

    def _on_varset(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        chan = self._touch(f, "", out)
        if chan is not None and chan.call is not None:
            if f.get("Variable") == "MIXMONITOR_FILENAME":
                self._set_recording(chan.call, f.get("Value", ""), out)

    def _set_recording(self, live: _Live, raw: str, out: list[CallChange]) -> None:
        path = self.office.recording_path(raw)
        if path is None or path == live.recording:
            return
        had = live.call.recording
        live.recording = path
        if live.answer_chan is not None and live.announced:
            self._refresh(live)
            if live.call.recording != had:
                self._emit(live, "call.recording", out, {"recording": live.call.recording})

    def _on_local_bridge(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        one = self._touch(f, "LocalOne", out)
        two = self._touch(f, "LocalTwo", out)
        if one is not None and two is not None and one.peer is None:
            one.peer, two.peer = two, one
            self._pairs.pop(one.parsed.pair, None)

    def _on_dial_begin(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        caller = self._touch(f, "", out) if "Uniqueid" in f else None
        dest = self._touch(f, "Dest", out)
        if dest is None or dest.call is None:
            return
        live = dest.call
        if caller is not None:
            self._maybe_classify_by_dial(live, caller, f, out)
        ls = self._ring(live, dest, caller, out)
        if ls is None and caller is not None and dest.role == "other":
            dest.role = "customer"
            if dest.peer is not None:
                dest.peer.role = "customer"
        if live.kind is not None:
            self._announce(live, out)

    def _on_dial_end(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        caller = self._touch(f, "", out) if "Uniqueid" in f else None
        dest = self._touch(f, "Dest", out)
        if dest is None or dest.call is None:
            return
        live = dest.call
        status = clean(f.get("DialStatus", "")).split(":", 1)[0]
        ls = live.leg_by_pair.get(dest.parsed.pair)
        if ls is not None:
            if status == "CANCEL" and ls.chan.parsed.pair != dest.parsed.pair:
                return  # the Local leg in front cancelled its inner dial; it decides
            self._leg_result(live, ls, status, out)
            if live.kind == "internal":
                live.out_status = status
            return
        if caller is None or dest.ext is not None or dest.role != "customer":
            return
        live.out_status = status
        if status == "ANSWER" and live.kind == "outbound":
            if dest.answered_est is None or dest.answered_est < self._now:
                dest.answered_est = self._now
            if live.answer_chan is None:
                live.answer_chan = dest
                self._answered(live, out)

    def _on_agent_called(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        caller = self._touch(f, "", out)
        dest = self._touch(f, "Dest", out)
        if dest is not None and dest.call is not None:
            self._ring(dest.call, dest, caller, out)
            self._announce(dest.call, out)

    def _on_agent_connect(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        self._touch(f, "", out)
        dest = self._touch(f, "Dest", out)
        if dest is not None and dest.call is not None:
            live = dest.call
            ls = live.leg_by_pair.get(dest.parsed.pair) or self._ring(live, dest, None, out)
            if ls is not None:
                self._leg_result(live, ls, "ANSWER", out)

    def _on_agent_ring_no_answer(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        self._touch(f, "", out)
        dest = self._touch(f, "Dest", out)
        if dest is not None and dest.call is not None:
            ls = dest.call.leg_by_pair.get(dest.parsed.pair)
            if ls is not None:
                self._leg_result(dest.call, ls, "NOANSWER", out)

    def _on_hangup(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        chan = self._touch(f, "", out)
        if chan is None or chan.hung:
            return
        chan.hung = True
        self._pairs.pop(chan.parsed.pair, None)
        live = chan.call
        if live is None:
            return
        live.open -= 1
        live.last_hangup = self._now
        try:
            cause: int | None = int(clean(f.get("Cause", "")))
        except ValueError:
            cause = None
        cause_txt = clean(f.get("Cause-txt", "")) or None
        call = live.call
        if chan.role == "customer":
            if cause or not live.cause_set:
                call.cause, call.cause_txt = cause, cause_txt
                live.cause_set = bool(cause)
            live.customer_hung = True
        elif call.cause is None or (not live.cause_set and cause):
            call.cause, call.cause_txt = cause, cause_txt
        ls = live.leg_by_pair.get(chan.parsed.pair)
        if ls is not None:
            leg = ls.leg
            if leg.ended_at is None or chan is ls.chan:
                leg.ended_at = self._now
            if chan is ls.chan or leg.cause is None or (cause and not leg.cause):
                leg.cause, leg.cause_txt = cause, cause_txt
            if ls.followme_owner is not None and leg.result is None:
                leg.result = "cancelled" if live.customer_hung else "no-answer"
        if live.open <= 0:
            self._close(live, out)

    def _on_blind_transfer(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        transferer = self._touch(f, "Transferer", out)
        transferee = self._touch(f, "Transferee", out)
        if clean(f.get("Result", "")) != "Success":
            return
        chan = transferee or transferer
        if chan is None or chan.call is None:
            return
        live = chan.call
        target = digits(clean(f.get("Extension", "")))
        from_ext = self._employee_ext(transferer) or (live.call.answered_by or "")
        self._explicit_transfer(live, "blind", from_ext, target, out)

    def _on_attended_transfer(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        orig = self._touch(f, "OrigTransferer", out)
        second = self._touch(f, "SecondTransferer", out)
        transferee = self._touch(f, "Transferee", out)
        target_chan = self._touch(f, "TransferTarget", out)
        if clean(f.get("Result", "")) != "Success":
            return
        chans = [c for c in (transferee, orig, second, target_chan) if c is not None]
        if not chans or chans[0].call is None:
            return
        live = chans[0].call
        for c in chans[1:]:  # both halves of the transfer now belong to one call
            if c.call is not None and c.call is not live:
                keep, gone = (
                    (live, c.call)
                    if _older(live.call.linkedid, c.call.call.linkedid)
                    else (c.call, live)
                )
                self._merge(keep, gone, out)
                live = keep
        from_ext = self._employee_ext(orig) or self._employee_ext(second)
        target = self._employee_ext(target_chan)
        if not target and target_chan is not None:
            target = digits(target_chan.exten) or digits(target_chan.parsed.exten)
        pending = [x for x in live.xfers if not x.confirmed and x.target is not None]
        match = next((x for x in pending if x.transfer.to == target), None)
        if match is None and pending and not target:
            match = pending[-1]
        if match is not None:
            match.transfer.kind = "attended"
            if from_ext:
                match.transfer.from_ext = from_ext
            self._confirm(live, match, out)
            return
        self._explicit_transfer(live, "attended", from_ext, target, out)

    def _explicit_transfer(
        self, live: _Live, kind: str, from_ext: str, target: str, out: list[CallChange]
    ) -> None:
        for x in live.xfers:
            if not x.confirmed and x.target is not None and x.transfer.to == target:
                x.transfer.kind = kind
                if from_ext:
                    x.transfer.from_ext = from_ext
                self._confirm(live, x, out)
                return
        transfer = Transfer(kind=kind, from_ext=from_ext, to=target, at=self._now)
        x = _Xfer(transfer, None, needs_event=False)
        live.xfers.append(x)
        live.expect_target = target
        self._confirm(live, x, out)

    def _on_originate_response(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        chan = self._touch(f, "", out)
        if chan is None or chan.call is None:
            return
        live = chan.call
        if live.kind is not None or chan is not live.origin:
            return
        if clean(f.get("Context", "")) in self.office.trunk_contexts:
            return
        number = digits(clean(f.get("Exten", "")))
        ext = self._employee_ext(chan)
        if number and ext and number != ext:
            chan.role = "employee"
            self._classify(
                live, "internal" if self.office.is_ext(number) else "outbound", ext, number, out
            )

    def _on_cdr(self, f: Mapping[str, str], out: list[CallChange]) -> None:
        chan = self._chans.get(clean(f.get("UniqueID", "")))
        if chan is None or chan.call is None:
            return
        live = chan.call
        start = cdr_time(f.get("StartTime", ""))
        answer = cdr_time(f.get("AnswerTime", ""))
        end = cdr_time(f.get("EndTime", ""))
        if self._live_clock:  # Cdr times are PBX local time: trust them only near our clock
            start, answer, end = (_near(t, self._now) for t in (start, answer, end))
        elif end is not None and end > self._now:
            self._now = end
        if start is not None and (live.cdr_start is None or start < live.cdr_start):
            live.cdr_start = start
        if end is not None and (live.cdr_end is None or end > live.cdr_end):
            live.cdr_end = end
        if answer is not None and clean(f.get("Disposition", "")) == "ANSWERED":
            # Party A's first record holds when A itself answered; a record's AnswerTime is
            # never later than when its Party B answered (A may have been up before), so
            # it only ever raises B's estimate.
            targets = [self._by_name.get(clean(f.get("DestinationChannel", "")))]
            created = epoch_of(chan.uid)
            if start is not None and created is not None and abs(start - created) < 1.0:
                targets += [chan, chan.peer]
            for c in targets:
                if c is not None and (c.answered_est is None or answer > c.answered_est):
                    c.answered_est = answer
        for key in (self.pbx.recording_cdr_field, "UserField"):
            if key:
                value = clean(f.get(key, "")).split(";", 1)[0]
                if value:
                    self._set_recording(live, value, out)
                    break

    # ------------------------------------------------------------------ ending

    def _close(self, live: _Live, out: list[CallChange]) -> None:
        if live.closing_seq is not None:
            return
        live.closing_seq = self._seq
        live.closing_at = self._now
        self._closing[live.call.id] = live

    def _finish_due(self, out: list[CallChange]) -> None:
        # _closing is in closing order (seq and clock only grow), so the first call not
        # yet due ends the scan: this runs on every event and must not be O(closing).
        due: list[_Live] = []
        for live in self._closing.values():
            if live.closing_seq is None:
                continue
            if self._live_clock:
                if live.closing_at is None or self._now - live.closing_at < CDR_GRACE_SECONDS:
                    break
            elif self._seq - live.closing_seq < CDR_GRACE_EVENTS:
                break
            due.append(live)
        for live in due:
            self._finish(live, out)

    def _finish(self, live: _Live, out: list[CallChange]) -> None:
        self._closing.pop(live.call.id, None)
        self._crm_transfers.discard(live.call.id)
        for link in live.call.linkedids:
            if self._calls.get(link) is live:
                del self._calls[link]
        for chan in live.chans.values():
            if self._chans.get(chan.uid) is chan:
                del self._chans[chan.uid]
            if self._by_name.get(chan.name) is chan:
                del self._by_name[chan.name]
            self._pairs.pop(chan.parsed.pair, None)
            chan.call = None
            chan.peer = None
        if live.kind is None:
            self._fallback_classify(live)
            if live.kind is None:
                return  # no employee and no trunk: not a call anyone needs to see
            self._announce(live, out)
        if not live.announced:
            return
        for x in live.xfers:
            if not x.confirmed and not x.needs_event:
                self._confirm(live, x, out)
        self._finalize_fields(live)
        self._stats["calls_ended"] += 1
        self._emit(live, "call.ended", out)

    def _fallback_classify(self, live: _Live) -> None:
        origin = live.origin
        if origin is None:
            return
        ext = self._employee_ext(origin)
        if not ext:
            return
        number = digits(origin.exten0) if origin.exten0.isdigit() else ""
        if not number:
            number = digits(origin.exten) if origin.exten.isdigit() else ""
        if number == ext:
            number = ""
        kind = "internal" if (not number or self.office.is_ext(number)) else "outbound"
        live.kind = kind
        live.call.direction = kind
        live.call.from_number = ext
        live.call.to_number = number

    def _finalize_fields(self, live: _Live) -> None:
        call = live.call
        ended = live.last_hangup if live.last_hangup is not None else self._now
        if live.cdr_end is not None and live.cdr_end > ended:
            ended = live.cdr_end
        if live.cdr_start is not None and (
            call.started_at is None or live.cdr_start < call.started_at
        ):
            call.started_at = live.cdr_start
        call.ended_at = ended
        self._refresh(live)
        for ls in live.legs:
            leg = ls.leg
            if leg.result is None:
                leg.result = self._result_from_cause(live, ls)
            if leg.result == "answered" and ls.chan.answered_est is not None:
                leg.answered_at = ls.chan.answered_est
            if leg.ended_at is None:
                leg.ended_at = ended
        started = call.started_at if call.started_at is not None else ended
        call.duration = max(0, round(ended - started))
        if call.answered_at is not None:
            call.talk = max(0, round(ended - call.answered_at))
            call.status = "completed"
        else:
            call.talk = 0
            call.answered_by = None
            call.recording = None
            call.status = self._unanswered_status(live)

    def _result_from_cause(self, live: _Live, ls: _LegState) -> str:
        cause = ls.leg.cause or 0
        if cause == 17:
            return "busy"
        if cause in _FAILED_CAUSES:
            return "failed"
        if live.answer_chan is not None and live.answer_chan is not ls.chan:
            return "cancelled"
        if cause in _NOANSWER_CAUSES:
            return "no-answer"
        return "cancelled"

    def _unanswered_status(self, live: _Live) -> str:
        if live.kind == "inbound":
            return "missed"
        status = live.out_status
        if live.kind == "internal":
            for ls in reversed(live.legs):
                if ls.leg.result in ("busy", "failed", "no-answer"):
                    return ls.leg.result or "no-answer"
        if status == "BUSY":
            return "busy"
        if status in ("CONGESTION", "CHANUNAVAIL"):
            return "failed"
        return "no-answer"

    # ------------------------------------------------------------------ snapshots

    def _refresh(self, live: _Live) -> None:
        """Recompute the derived fields: answered_at, answered_by, status, recording."""
        call = live.call
        ans = live.answer_chan
        if ans is None and live.restored:
            return
        if ans is None:
            call.answered_at = None
            call.answered_by = None
            call.recording = None
            if call.status == "answered":
                call.status = "ringing"
            return
        call.answered_at = ans.answered_est
        by: str | None = None
        if live.kind == "outbound":
            by = call.from_number or None
        for ls in live.legs:
            if ls.leg.result == "answered" and ls.counts:
                if live.kind == "outbound" and ls.chan.originated:
                    continue
                by = (
                    ls.followme_owner
                    if ls.followme_owner and not self.office.is_ext(ls.leg.ext)
                    else ls.leg.ext
                )
        call.answered_by = by
        call.recording = live.recording
        if call.status == "ringing":
            call.status = "answered"

    def _emit(
        self, live: _Live, kind: str, out: list[CallChange], data: dict[str, Any] | None = None
    ) -> None:
        out.append(
            CallChange(
                kind=kind,
                call_id=live.call.id,
                at=iso(self._now) or "",
                call=live.call.to_dict(),
                data=data or {},
            )
        )

    def _unique_live(self) -> list[_Live]:
        seen: dict[int, _Live] = {}
        for live in self._calls.values():
            seen.setdefault(id(live), live)
        for live in self._closing.values():
            seen.setdefault(id(live), live)
        return list(seen.values())


def _chan_ext(live: _Live, c: _Chan) -> str:
    """A channel's extension; an employee's channel without one is the caller's phone."""
    return c.ext or (live.call.from_number if c.role == "employee" else "") or ""


def _near(t: float | None, now: float, window: float = 300.0) -> float | None:
    if t is None or abs(t - now) > window:
        return None
    return t


def _older(a: str, b: str) -> bool:
    """Is Linkedid ``a`` older than ``b`` (epoch, then sequence)?"""

    def key(x: str) -> tuple[float, int]:
        seq = x.rpartition(".")[2]
        ep = epoch_of(x) or 0.0
        try:
            return ep, int(seq)
        except ValueError:
            return ep, 0

    return key(a) <= key(b)


def _call_from_dict(d: dict[str, Any]) -> Call:
    from datetime import datetime

    def ts(value: Any) -> float | None:
        if not value:
            return None
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None

    linkedid = str(d.get("linkedid") or "")
    call = Call(
        id=str(d.get("id") or call_id_for(linkedid)),
        linkedid=linkedid,
        direction=str(d.get("direction") or "inbound"),
        status=str(d.get("status") or "ringing"),
        from_number=str(d.get("from") or ""),
        to_number=str(d.get("to") or ""),
        started_at=ts(d.get("started_at")),
        answered_at=ts(d.get("answered_at")),
        answered_by=d.get("answered_by"),
        recording=d.get("recording"),
        record_id=d.get("record_id"),
        origin=d.get("origin"),
        linkedids=[str(x) for x in d.get("linkedids") or []],
    )
    for leg in d.get("legs") or []:
        call.legs.append(
            Leg(
                ext=str(leg.get("ext") or ""),
                rang_at=ts(leg.get("rang_at")),
                answered_at=ts(leg.get("answered_at")),
                ended_at=ts(leg.get("ended_at")),
                result=leg.get("result"),
            )
        )
    for t in d.get("transfers") or []:
        call.transfers.append(
            Transfer(
                kind=str(t.get("kind")),
                from_ext=str(t.get("from") or ""),
                to=str(t.get("to") or ""),
                at=ts(t.get("at")),
            )
        )
    return call
