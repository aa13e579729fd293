"""How calls end: hangups, the wait for trailing Cdr events, the final fields, and the
calls ended from outside the event stream (a resync after a reconnect, staleness).

After its last channel hangs up a call is *closing*: the Cdr events that trail the
hangups are merged for a short grace, then ``call.ended`` is emitted and the call
leaves the tracker's state.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinc.calls.channels import leave_bridge, touch
from pinc.calls.names import clean, digits
from pinc.calls.state import LegState, Live, Out, State
from pinc.calls.transfers import confirm

Fields = Mapping[str, str]

DISCONNECTED_REASON = "ended while pinc was disconnected"
STALE_REASON = "stale: no event for too long"
GONE_REASON = "stale: its channels are gone (their Hangup events were lost)"
CDR_GRACE_SECONDS = 3.0  # how long (event clock) an ended call waits for its trailing Cdrs

_FAILED_CAUSES = frozenset({1, 3, 20, 27, 34, 38, 41, 42, 44, 47, 58, 88, 127})
_NOANSWER_CAUSES = frozenset({18, 19, 21})


def on_hangup(st: State, f: Fields, out: Out) -> None:
    uid = clean(f.get("Uniqueid", ""))
    if not uid:
        st.odd("missing_field", "Hangup without Uniqueid")
        return
    if uid not in st.chans:  # a channel that ends here never began for us: no call of it
        if uid not in st.gone:
            st.odd("unseen_channel", f"Hangup {clean(f.get('Channel', ''))}")
        return
    chan = touch(st, f, "", out)
    if chan is None or chan.hung:
        return
    chan.hung = True
    st.pairs.pop(chan.parsed.pair, None)
    leave_bridge(st, chan)
    live = chan.call
    if live is None:
        return
    live.open -= 1
    live.last_hangup = st.t
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
            leg.ended_at = st.t
        if chan is ls.chan or leg.cause is None or (cause and not leg.cause):
            leg.cause, leg.cause_txt = cause, cause_txt
        if ls.followme_owner is not None and leg.result is None:
            leg.result = "cancelled" if live.customer_hung else "no-answer"
    if live.open <= 0:
        close(st, live)


def close(st: State, live: Live) -> None:
    """Every channel of the call hung up: wait for its trailing Cdr events."""
    if live.closed:
        return
    live.closed = True
    live.closing_at = st.t
    st.closing[live.call.id] = live


def end_now(st: State, live: Live, reason: str, out: Out) -> None:
    """End a call from outside the event stream (a resync, staleness)."""
    live.call.end_reason = reason
    close(st, live)
    finish(st, live, out)


def finish_due(st: State, out: Out) -> None:
    """End the calls whose Cdr grace is over by the event clock."""
    # closing is in closing order (a call that moves its closing time later moves to
    # the end), so the first call not yet due ends the scan: this runs on every event
    # and must not be O(closing).
    due: list[Live] = []
    for live in st.closing.values():
        if live.closing_at is not None and st.now - live.closing_at < CDR_GRACE_SECONDS:
            break
        due.append(live)
    for live in due:
        finish(st, live, out)


def finish(st: State, live: Live, out: Out) -> None:
    st.closing.pop(live.call.id, None)
    st.crm_asks.pop(live.call.id, None)
    for link in live.call.linkedids:
        if st.calls.get(link) is live:
            del st.calls[link]
    for chan in live.chans.values():
        if st.chans.get(chan.uid) is chan:
            del st.chans[chan.uid]
            st.forget(chan.uid)
        if st.by_name.get(chan.name) is chan:
            del st.by_name[chan.name]
        st.pairs.pop(chan.parsed.pair, None)
        leave_bridge(st, chan)
        chan.call = None
        chan.peer = None
    if live.kind is None:
        _fallback_classify(st, live)
        if live.kind is None:
            return  # no employee and no trunk: not a call anyone needs to see
    # A caller who hung up in the greeting or an IVR, before anything rang, made a call
    # all the same: a missed one, to call back.
    st.announce(live, out)
    if not live.announced:
        return
    for x in live.xfers:
        if not x.confirmed and not x.needs_event:
            confirm(st, live, x, out)
    _finalize_fields(st, live)
    st.stats["calls_ended"] += 1
    st.emit(live, "call.ended", out)


def _fallback_classify(st: State, live: Live) -> None:
    origin = live.origin
    if origin is None:
        return
    ext = st.employee_ext(origin)
    if not ext:
        return
    number = digits(origin.exten0) if origin.exten0.isdigit() else ""
    if not number:
        number = digits(origin.exten) if origin.exten.isdigit() else ""
    if number == ext:
        number = ""
    kind = "internal" if (not number or st.office.is_ext(number)) else "outbound"
    live.kind = kind
    live.call.direction = kind
    live.call.from_number = ext
    live.call.to_number = number


def _finalize_fields(st: State, live: Live) -> None:
    call = live.call
    ended = live.last_hangup if live.last_hangup is not None else st.t
    if live.cdr_end is not None and live.cdr_end > ended:
        ended = live.cdr_end
    if live.cdr_start is not None and (call.started_at is None or live.cdr_start < call.started_at):
        call.started_at = live.cdr_start
    call.ended_at = ended
    call.held = False  # an ended call is not on hold
    st.refresh(live)
    for ls in live.legs:
        leg = ls.leg
        if leg.result is None:
            leg.result = _result_from_cause(live, ls)
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
        call.status = _unanswered_status(live)


def _result_from_cause(live: Live, ls: LegState) -> str:
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


def _unanswered_status(live: Live) -> str:
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
