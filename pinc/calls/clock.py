"""The tracker's one time policy, the same live and in replay.

The tracker reads time only from what it is fed. For each event, in order:

1. its ``Timestamp:`` header (Asterisk adds it with ``timestampevents = yes`` in
   manager.conf): the PBX's own clock, UTC, to the microsecond;
2. live only, when the event has none: its arrival time, moved by the difference
   between the PBX's clock and the arrival clock last seen on a stamped event;
3. in replay, when it has none: the creation second in each Uniqueid it names, and the
   end of each Cdr (the only times such a transcript gives after a call began).

The clock never goes back. ``Cdr`` times are the PBX's local time; ``cdr.py`` maps them to
UTC by the offset they show against the Uniqueid epochs (UTC), never trusts them as UTC.
A live ``expire(at)`` or ``resync(at)`` reads the wall clock through the same difference,
so a stamped transcript played to a live pinc ends its calls as ``pinc replay`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

from pinc.calls.names import epoch_of
from pinc.calls.state import State


def stamp(value: str | None) -> float | None:
    """A ``Timestamp:`` header (``<sec>.<usec>``) as epoch seconds, if it is one."""
    if not value:
        return None
    try:
        t = float(value)
    except ValueError:
        return None
    return t if 1e8 < t < 1e11 else None  # a plausible epoch, not a counter


def advance(st: State, f: Mapping[str, str], at: float | None) -> None:
    """Move the clock for an event about to be handled (see the module docstring)."""
    own = stamp(f.get("Timestamp"))
    if own is not None:
        if at is not None:
            st.skew = own - at
    elif at is not None:
        own = at + st.skew
    if own is not None:
        st.sharp = True
        if own > st.now:
            st.now = own
        # recorded at its own time: one call's times never depend on another's events
        st.t = own
        return
    from_uniqueids(st, f)


def from_uniqueids(st: State, f: Mapping[str, str]) -> None:
    """Replay without a Timestamp: the clock is the latest channel creation seen."""
    for key in ("Uniqueid", "DestUniqueid"):
        uid = f.get(key)
        if uid:
            ep = epoch_of(uid.rstrip("\r "))
            if ep is not None and ep > st.now:
                st.now = ep
    st.t = st.now


def wall(st: State, at: float) -> None:
    """The wall clock says ``at`` (live ``expire``/``resync``): move the event clock."""
    t = at + st.skew
    if t > st.now:
        st.now = t
    st.t = st.now
