"""Call parking: a call moved to a parking lot and taken from it by another phone.

The lot is a waypoint, like a queue (tests/fixtures/lab/README.md): the call is one call,
the phone that took it from the lot owns it (it never rang: no leg), and the transfer that
brought the call to the lot (``BlindTransfer`` to ``700``) goes, in the end, to that phone.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinc.calls.channels import touch
from pinc.calls.legs import picked_up
from pinc.calls.state import Out, State

Fields = Mapping[str, str]


def on_parked_call(st: State, f: Fields, out: Out) -> None:
    parkee = touch(st, f, "Parkee", out)
    if parkee is None or parkee.call is None:
        return
    live = parkee.call
    # the transfer that brought it here (to the lot's extension) is the last one recorded
    live.parked = live.call.transfers[-1] if live.call.transfers else None


def on_unparked_call(st: State, f: Fields, out: Out) -> None:
    parkee = touch(st, f, "Parkee", out)
    retriever = touch(st, f, "Retriever", out)
    if parkee is None or parkee.call is None or retriever is None:
        return
    live = parkee.call
    picked_up(st, live, retriever, out)
    ext = st.employee_ext(retriever)
    moved = live.parked
    live.parked = None
    if moved is not None and ext:
        moved.to = ext
        if live.announced:
            st.emit(live, "call.transferred", out, moved.to_dict())
