"""Conferences (ConfBridge): every participant's call is a call of its own (each keeps its
Linkedid; a conference merges nothing).

A phone that dials the room makes an internal call to the room's number, answered by the
room: the employee who made it talked (as on an outbound call). An outside caller who
reaches the room talks with the employees in it: the call is answered when it joins a
room with an employee in it, and belongs to the one who opened the room (the first one
in it then). Nobody rang, so none of these calls has legs.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinc.calls.channels import touch
from pinc.calls.names import clean, digits
from pinc.calls.state import Chan, Live, Out, State

Fields = Mapping[str, str]


def on_join(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    room = clean(f.get("Conference", "")) or clean(f.get("BridgeUniqueid", ""))
    if chan is None or chan.call is None or not room:
        return
    live = chan.call
    inside = st.rooms.setdefault(room, [])
    ext = st.employee_ext(chan) if chan.role != "customer" else ""
    if ext:
        inside.append(ext)
        if live.kind is None and chan is live.origin:  # the phone dialled the room
            chan.role = "employee"
            number = digits(chan.exten0) or digits(room)
            st.classify(live, "internal", ext, number, out)
            _answered_by(st, live, chan, ext, out)
    elif chan.role == "customer" and inside and live.answer_chan is None:
        st.announce(live, out)
        _answered_by(st, live, chan, inside[0], out)


def _answered_by(st: State, live: Live, chan: Chan, ext: str, out: Out) -> None:
    if live.answer_chan is not None:
        return
    live.host = ext
    if chan.answered_est is None or chan.answered_est < st.t:
        chan.answered_est = st.t
    live.answer_chan = chan
    st.answered(live, out)


def on_leave(st: State, f: Fields, out: Out) -> None:
    chan = touch(st, f, "", out)
    room = clean(f.get("Conference", "")) or clean(f.get("BridgeUniqueid", ""))
    inside = st.rooms.get(room)
    if chan is None or inside is None:
        return
    ext = st.employee_ext(chan) if chan.role != "customer" else ""
    if ext in inside:
        inside.remove(ext)
    if not inside:
        del st.rooms[room]
