"""Legs: the employee phones the PBX made ring, and what became of each.

``DialBegin`` and ``AgentCalled`` ring a phone (one leg per employee, however many
Local halves stand in front of it); ``DialEnd``, ``AgentConnect`` and
``AgentRingNoAnswer`` give its result. The first result wins, so a queue's double
``CANCEL`` is harmless; a leg that ends with no result takes one from its hangup cause
(``closing``).
"""

from __future__ import annotations

from collections.abc import Mapping

from pinc.calls.channels import classify_by_dial, touch
from pinc.calls.model import Leg
from pinc.calls.names import clean, digits
from pinc.calls.state import Chan, LegState, Live, Out, State
from pinc.calls.transfers import confirm, followme_step, xfer_for

Fields = Mapping[str, str]

DIAL_RESULT = {
    "ANSWER": "answered",
    "BUSY": "busy",
    "NOANSWER": "no-answer",
    "CANCEL": "cancelled",
    "ABORT": "cancelled",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
}


def ring(st: State, live: Live, dest: Chan, caller: Chan | None, out: Out) -> LegState | None:
    """``dest`` rings: the leg of the employee behind it (new, or the one it belongs to),
    or None when it is no employee's phone."""
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
    leg = Leg(ext=ext, rang_at=st.t, channel=dest.name)
    ls = LegState(leg=leg, chan=dest, followme_owner=owner, caller=caller)
    live.legs.append(ls)
    live.call.legs.append(leg)
    live.leg_by_pair[pair] = ls
    if caller is None:
        dest.originated = True
    if owner is not None:
        followme_step(st, live, ls, out)
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
            st.tentative_transfer(live, ls, needs_event=not customer)
    if live.announced:
        st.emit(live, "call.ringing", out, {"ext": ext})
    return ls


def picked_up(st: State, live: Live, picker: Chan, out: Out) -> None:
    """A phone picked up a call ringing elsewhere (Pickup, PickupChan): the Dial's
    DialEnd ANSWER names the picker's own channel, which came with a call of its own (it
    dialled the pickup code). That call is folded into this one; the picker answered it
    and owns it, but it never rang, so it is no leg (DESIGN.md)."""
    own = picker.call
    if own is not None and own is not live:
        st.merge(live, own, out)
    ext = st.employee_ext(picker)
    if not ext:
        return
    picker.role = "employee"
    if picker.answered_est is None or picker.answered_est < st.t:
        picker.answered_est = st.t
    leg = Leg(ext=ext, answered_at=picker.answered_est, result="answered", channel=picker.name)
    ls = LegState(leg=leg, chan=picker, rang=False)
    live.legs.append(ls)
    live.leg_by_pair[picker.parsed.pair] = ls
    if live.answer_chan is None:
        live.answer_chan = picker
        st.answered(live, out)
    elif live.announced:  # it was answered before (parked): the picker owns it now
        before = live.call.answered_by
        st.refresh(live)
        if live.call.answered_by != before:
            st.emit(live, "call.answered", out, {"ext": live.call.answered_by})


def leg_result(st: State, live: Live, ls: LegState, status: str, out: Out) -> None:
    leg = ls.leg
    result = DIAL_RESULT.get(status)
    if result is None or leg.result == "answered":
        return
    if result == "answered":
        leg.result = "answered"
        est = ls.chan.answered_est
        if est is None or est < st.t:
            ls.chan.answered_est = st.t
        leg.answered_at = ls.chan.answered_est
        x = xfer_for(live, ls)
        if x is not None and not x.needs_event:
            confirm(st, live, x, out)
        if live.answer_chan is None and not (live.kind == "outbound"):
            # an Originate that rings the caller first (click-to-call): their answer is
            # not the call's; the call is answered when whom they call answers
            caller_ring = ls.chan.originated and (
                live.kind is None or ls.leg.ext == live.call.from_number
            )
            if not caller_ring:
                live.answer_chan = ls.chan
                st.answered(live, out)
        elif live.answer_chan is not None and ls.counts and live.announced:
            before = live.call.answered_by
            st.refresh(live)
            if live.call.answered_by != before:  # a transfer's target took the call
                st.emit(live, "call.answered", out, {"ext": live.call.answered_by})
        return
    if leg.result is None:
        leg.result = result


# ---- events ---------------------------------------------------------------------------


def on_dial_begin(st: State, f: Fields, out: Out) -> None:
    caller = touch(st, f, "", out) if "Uniqueid" in f else None
    dest = touch(st, f, "Dest", out)
    if dest is None or dest.call is None:
        return
    live = dest.call
    if caller is not None:
        classify_by_dial(st, live, caller, f, out)
    ls = ring(st, live, dest, caller, out)
    if ls is None and caller is not None and dest.role == "other":
        dest.role = "customer"
        if dest.peer is not None:
            dest.peer.role = "customer"
    if live.kind is not None:
        st.announce(live, out)


def on_dial_end(st: State, f: Fields, out: Out) -> None:
    caller = touch(st, f, "", out) if "Uniqueid" in f else None
    dest = touch(st, f, "Dest", out)
    if dest is None or dest.call is None:
        return
    live = dest.call
    status = clean(f.get("DialStatus", "")).split(":", 1)[0]
    ls = live.leg_by_pair.get(dest.parsed.pair)
    if (
        status == "ANSWER"
        and ls is None
        and caller is not None
        and caller.call is not None
        and caller.call is not live
        and caller.call.leg_by_pair
    ):
        picked_up(st, caller.call, dest, out)  # the Dest is no phone this Dial rang
        return
    if ls is not None:
        if status == "CANCEL" and ls.chan.parsed.pair != dest.parsed.pair:
            return  # the Local leg in front cancelled its inner dial; it decides
        leg_result(st, live, ls, status, out)
        if live.kind == "internal":
            live.out_status = status
        return
    if caller is None or dest.ext is not None or dest.role != "customer":
        return
    live.out_status = status
    if status == "ANSWER" and live.kind == "outbound":
        if dest.answered_est is None or dest.answered_est < st.t:
            dest.answered_est = st.t
        if live.answer_chan is None:
            live.answer_chan = dest
            st.answered(live, out)


def on_agent_called(st: State, f: Fields, out: Out) -> None:
    caller = touch(st, f, "", out)
    dest = touch(st, f, "Dest", out)
    if dest is not None and dest.call is not None:
        ring(st, dest.call, dest, caller, out)
        st.announce(dest.call, out)


def on_agent_connect(st: State, f: Fields, out: Out) -> None:
    caller = touch(st, f, "", out)
    dest = touch(st, f, "Dest", out)
    if caller is not None and caller.call is not None and dest is not None:
        if dest.call is not caller.call and dest.parsed.pair not in caller.call.leg_by_pair:
            picked_up(st, caller.call, dest, out)  # a phone took the queue's call (*8)
            return
    if dest is not None and dest.call is not None:
        live = dest.call
        ls = live.leg_by_pair.get(dest.parsed.pair) or ring(st, live, dest, None, out)
        if ls is not None:
            leg_result(st, live, ls, "ANSWER", out)


def on_agent_ring_no_answer(st: State, f: Fields, out: Out) -> None:
    touch(st, f, "", out)
    dest = touch(st, f, "Dest", out)
    if dest is not None and dest.call is not None:
        ls = dest.call.leg_by_pair.get(dest.parsed.pair)
        if ls is not None:
            leg_result(st, dest.call, ls, "NOANSWER", out)
