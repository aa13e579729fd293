"""The tracker's state: channels, live calls, their legs and transfers, and the clock.

Everything here is plain data plus the few operations every part of the tracker shares:
the derived fields of a call (``refresh``), announcing it, recording it, and emitting a
``CallChange`` with the call's snapshot. The event handlers live in ``channels``,
``legs``, ``transfers``, ``cdr`` and ``closing``; ``tracker`` dispatches to them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pinc.calls.model import Call, CallChange, CallIdFactory, Leg, Transfer, call_id_for, iso
from pinc.calls.names import ChannelName, Office, epoch_of
from pinc.config import PbxConfig

Out = list[CallChange]

MAX_GONE = 20000  # ended channels remembered, so a late event makes no phantom call
ODDITIES = ("unknown_event", "missing_field", "odd_channel", "unseen_channel", "stale_call")


@dataclass(slots=True, eq=False)
class Chan:
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
    cid_raw: str = ""  # the CallerIDNum header cid was read from
    app: str = ""
    app_data: str = ""
    hung: bool = False
    answered_est: float | None = None  # best (latest) estimate of when it answered
    peer: Chan | None = None  # the other half of a Local pair
    call: Live | None = None
    role: str = "other"  # customer | employee | other
    originated: bool = False  # rung by an Originate (no caller channel)
    bridge: str = ""  # the BridgeUniqueid it is in, if any


@dataclass(slots=True, eq=False)
class LegState:
    leg: Leg
    chan: Chan
    followme_owner: str | None = None
    caller: Chan | None = None  # the channel that dialled it
    counts: bool = True  # False while it is an unconfirmed consultation target
    rang: bool = True  # False for a phone that picked the call up: it answers, is no leg


@dataclass(slots=True, eq=False)
class Xfer:
    transfer: Transfer
    target: LegState | None
    needs_event: bool  # a consultation: only an AttendedTransfer event confirms it
    confirmed: bool = False


@dataclass(slots=True, eq=False)
class CrmAsk:
    """pinc's /transfer asked Asterisk to move a call to ``to`` (``transfers.py``)."""

    to: str  # the target as the transfer will name it ("" when unknown)
    accepted: bool = False  # Asterisk answered Success
    seen: Xfer | None = None  # the transfer it made, recorded before Asterisk answered


@dataclass(slots=True, eq=False)
class Live:
    call: Call
    chans: dict[str, Chan] = field(default_factory=dict)
    open: int = 0
    origin: Chan | None = None
    kind: str | None = None  # the direction once classified
    announced: bool = False
    legs: list[LegState] = field(default_factory=list)
    leg_by_pair: dict[str, LegState] = field(default_factory=dict)
    xfers: list[Xfer] = field(default_factory=list)
    expect_target: str | None = None  # a transfer event named this target before it rang
    answer_chan: Chan | None = None
    out_status: str = ""  # the last DialStatus towards the outside (outbound) or the target
    recording: str | None = None
    cdr_start: float | None = None
    cdr_end: float | None = None
    last_hangup: float | None = None
    customer_hung: bool = False
    closed: bool = False  # every channel hung up: waiting for trailing Cdrs
    closing_at: float | None = None
    last_at: float = 0.0
    cause_set: bool = False
    restored: bool = False  # taken back from the journal: its answer is already known
    host: str | None = None  # who talked with it though no leg of it rang (conference.py)


class State:
    """All the tracker knows, shared by its parts."""

    def __init__(self, pbx: PbxConfig, new_id: CallIdFactory | None) -> None:
        self.pbx = pbx
        # Live pinc gives calls random ids (model.random_call_id); replay, by default,
        # the deterministic ones, so the same transcript always prints the same calls.
        self.new_id: CallIdFactory = new_id or (lambda linkedid, _started: call_id_for(linkedid))
        self.office = Office(pbx)
        self.chans: dict[str, Chan] = {}
        self.by_name: dict[str, Chan] = {}
        self.pairs: dict[str, Chan] = {}  # Local pair key -> the half seen first
        self.bridges: dict[str, list[Chan]] = {}  # BridgeUniqueid -> members, in entry order
        self.rooms: dict[str, list[str]] = {}  # conference room -> employees in it, in order
        self.calls: dict[str, Live] = {}  # linkedid -> call (merged linkedids too)
        self.closing: dict[str, Live] = {}  # call id -> call waiting for its Cdrs
        self.originates: OrderedDict[str, dict[str, str | None]] = OrderedDict()
        self.crm_asks: dict[str, CrmAsk] = {}  # call id -> the transfer pinc asked for
        self.pending_out: list[CallChange] = []  # changes made between events (transfers.py)
        self.now = 0.0  # the event clock (clock.py): epoch seconds, UTC, never goes back
        self.t = 0.0  # the time of the event being handled (clock.py): what calls record
        self.skew = 0.0  # live: the PBX's clock minus the arrival clock (clock.py)
        self.sharp = False  # the clock reads Timestamp headers or arrival times (clock.py)
        self.cdr_offset: float | None = None  # the PBX's local time minus UTC (cdr.py)
        self.seq = 0
        self.stats = {"events": 0, "calls_started": 0, "calls_ended": 0, "merged": 0}
        self.event = ""  # the name of the event being handled
        self.gone: OrderedDict[str, None] = OrderedDict()  # Uniqueids of ended calls (late events)
        # what did not look like the AMI pinc knows; counted, never fatal (statistics())
        self.oddities: dict[str, int] = dict.fromkeys(ODDITIES, 0)
        self.odd_examples: dict[str, str] = {}

    def odd(self, kind: str, example: str) -> None:
        """Count an oddity of the input (one of ODDITIES), keeping its first example."""
        self.oddities[kind] += 1
        self.odd_examples.setdefault(kind, example[:200])

    def forget(self, uid: str) -> None:
        """A channel's call ended: its late events (a straggling VarSet) are ignored."""
        self.gone[uid] = None
        while len(self.gone) > MAX_GONE:
            self.gone.popitem(last=False)

    # ---- lookups ------------------------------------------------------------------------

    def unique_live(self) -> list[Live]:
        seen: dict[int, Live] = {}
        for live in self.calls.values():
            seen.setdefault(id(live), live)
        for live in self.closing.values():
            seen.setdefault(id(live), live)
        return list(seen.values())

    def live_by_id(self, call_id: str) -> Live | None:
        for live in self.unique_live():
            if live.call.id == call_id:
                return live
        return None

    def who(self, live: Live, chan: Chan | None) -> str:
        """The employee behind a channel of ``live``: the leg's extension when the PBX rang
        it, else the caller behind it (``employee_ext``)."""
        if chan is None:
            return ""
        ls = live.leg_by_pair.get(chan.parsed.pair)
        if ls is not None and ls.followme_owner is None:
            return ls.leg.ext
        return self.employee_ext(chan)

    def dialled_ext(self, live: Live, chan: Chan | None) -> str:
        """Whom a channel rings, as a transfer target: its leg, else its name (a Local
        channel's name says whom it dials), else an extension-shaped caller id."""
        if chan is None:
            return ""
        ls = live.leg_by_pair.get(chan.parsed.pair)
        if ls is not None:
            return ls.leg.ext
        if chan.ext is not None:
            return chan.ext
        if chan.peer is not None and chan.peer.ext is not None:
            return chan.peer.ext
        return chan.cid if self.office.is_ext(chan.cid) else ""

    def employee_ext(self, chan: Chan | None) -> str:
        """The extension of the employee behind a channel as a caller, or ``""``.

        A phone's own channel (``PJSIP/101-…``) names it. A Local channel's name names
        whom it *dials* (``Local/102@from-internal-…;1`` is a call to 102), so the caller
        behind it is its caller id when that is an extension; its name only otherwise."""
        if chan is None:
            return ""
        if chan.parsed.tech == "Local" and self.office.is_ext(chan.cid):
            return chan.cid
        if chan.ext is not None:
            return chan.ext
        if chan.peer is not None and chan.peer.ext is not None:
            return chan.peer.ext
        if self.office.is_ext(chan.cid):
            return chan.cid
        return ""

    # ---- calls --------------------------------------------------------------------------

    def new_call(self, linkedid: str) -> Live:
        # The call began when its oldest channel was made (the Linkedid's epoch second);
        # the clock is sharper when it is within that second, i.e. we saw it begin.
        started = epoch_of(linkedid)
        if started is None or 0.0 <= self.t - started < 1.0:
            started = self.t or started
        call = Call(id=self.new_id(linkedid, started), linkedid=linkedid, started_at=started)
        call.linkedids.append(linkedid)
        live = Live(call=call, last_at=self.t)
        self.calls[linkedid] = live
        return live

    def attach(self, live: Live, chan: Chan) -> None:
        chan.call = live
        live.chans[chan.uid] = chan
        if not chan.hung:
            live.open += 1
        live.last_at = self.t

    def classify(self, live: Live, kind: str, ext: str, number: str, out: Out) -> None:
        live.kind = kind
        call = live.call
        call.direction = kind
        call.from_number = ext
        call.to_number = number
        ans = live.answer_chan
        if ans is not None and (
            (kind == "outbound" and ans.ext is not None) or (ans.originated and ans.ext == ext)
        ):
            live.answer_chan = None  # the Originate's ring of the employee is not the answer
        self.announce(live, out)

    def announce(self, live: Live, out: Out) -> None:
        if live.announced or live.kind is None:
            return
        live.announced = True
        self.stats["calls_started"] += 1
        self.refresh(live)
        self.emit(live, "call.started", out)

    def answered(self, live: Live, out: Out) -> None:
        self.refresh(live)
        if live.announced:
            self.emit(live, "call.answered", out, {"ext": live.call.answered_by})
            if live.recording:
                self.emit(live, "call.recording", out, {"recording": live.call.recording})

    def set_recording(self, live: Live, raw: str, out: Out) -> None:
        path = self.office.recording_path(raw)
        if path is None or path == live.recording:
            return
        known = live.recording
        if known and not known.startswith("/") and "/" not in path and known.endswith("/" + path):
            return  # FreePBX's CDR names only the file of monitor/YYYY/MM/DD/<file>
        had = live.call.recording
        live.recording = path
        if live.answer_chan is not None and live.announced:
            self.refresh(live)
            if live.call.recording != had:
                self.emit(live, "call.recording", out, {"recording": live.call.recording})

    def tentative_transfer(self, live: Live, ls: LegState, *, needs_event: bool) -> None:
        """A phone rang while the call was answered: a transfer, unless nothing confirms
        it (a consultation call needs its AttendedTransfer event)."""
        self.refresh(live)
        from_ext = live.call.answered_by or ""
        transfer = Transfer(kind="redirect", from_ext=from_ext, to=ls.leg.ext, at=self.t)
        live.xfers.append(Xfer(transfer, ls, needs_event=needs_event))
        if needs_event:
            ls.counts = False

    def merge(self, keep: Live, gone: Live, out: Out) -> None:
        """Two calls became one (attended transfer): ``gone`` ends, merged into ``keep``."""
        self.stats["merged"] += 1
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
                self.tentative_transfer(keep, ls, needs_event=True)
        keep.xfers.extend(gone.xfers)
        for link in gone.call.linkedids:
            self.calls[link] = keep
            if link not in keep.call.linkedids:
                keep.call.linkedids.append(link)
        if gone.recording and not keep.recording:
            keep.recording = gone.recording
        self.closing.pop(gone.call.id, None)
        if gone.announced:
            gone.call.status = "completed" if gone.answer_chan is not None else "missed"
            gone.call.end_reason = f"merged into {keep.call.id}"
            gone.call.ended_at = self.t
            self.emit(gone, "call.ended", out, {"merged_into": keep.call.id})

    def merge_older(self, a: Live, b: Live, out: Out) -> Live:
        """Merge two calls into the one with the older Linkedid; returns that one."""
        keep, gone = (a, b) if older(a.call.linkedid, b.call.linkedid) else (b, a)
        self.merge(keep, gone, out)
        return keep

    # ---- snapshots ----------------------------------------------------------------------

    def refresh(self, live: Live) -> None:
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
        by: str | None = live.host  # an employee who took it without a leg (a conference)
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

    def emit(self, live: Live, kind: str, out: Out, data: dict[str, Any] | None = None) -> None:
        if kind == "call.transferred":
            # the holder handed the call on (an attended transfer holds the caller while
            # consulting, and Asterisk sends no Unhold): whoever has it now is not holding
            live.call.held = False
        out.append(
            CallChange(
                kind=kind,
                call_id=live.call.id,
                at=iso(self.t) or "",
                call=live.call.to_dict(),
                data=data or {},
            )
        )


def older(a: str, b: str) -> bool:
    """Is Linkedid ``a`` older than ``b`` (epoch, then sequence)?"""

    def key(x: str) -> tuple[float, int]:
        seq = x.rpartition(".")[2]
        ep = epoch_of(x) or 0.0
        try:
            return ep, int(seq)
        except ValueError:
            return ep, 0

    return key(a) <= key(b)
