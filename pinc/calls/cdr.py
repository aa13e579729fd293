"""Cdr events: merged when they come (they sharpen start, answer and end times, and may
name the recording), never required."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pinc.calls.names import clean, epoch_of
from pinc.calls.state import Out, State

Fields = Mapping[str, str]


def cdr_time(value: str) -> float | None:
    """A Cdr ``%Y-%m-%d %H:%M:%S`` time (the PBX's local time, taken as UTC) as epoch seconds."""
    value = clean(value)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _near(t: float | None, now: float, window: float = 300.0) -> float | None:
    if t is None or abs(t - now) > window:
        return None
    return t


def on_cdr(st: State, f: Fields, out: Out) -> None:
    chan = st.chans.get(clean(f.get("UniqueID", "")))
    if chan is None or chan.call is None:
        return
    live = chan.call
    start = cdr_time(f.get("StartTime", ""))
    answer = cdr_time(f.get("AnswerTime", ""))
    end = cdr_time(f.get("EndTime", ""))
    if st.live_clock:  # Cdr times are PBX local time: trust them only near our clock
        start, answer, end = (_near(t, st.now) for t in (start, answer, end))
    elif end is not None and end > st.now:
        st.now = end
    if start is not None and (live.cdr_start is None or start < live.cdr_start):
        live.cdr_start = start
    if end is not None and (live.cdr_end is None or end > live.cdr_end):
        live.cdr_end = end
    if answer is not None and clean(f.get("Disposition", "")) == "ANSWERED":
        # Party A's first record holds when A itself answered; a record's AnswerTime is
        # never later than when its Party B answered (A may have been up before), so
        # it only ever raises B's estimate.
        targets = [st.by_name.get(clean(f.get("DestinationChannel", "")))]
        created = epoch_of(chan.uid)
        if start is not None and created is not None and abs(start - created) < 1.0:
            targets += [chan, chan.peer]
        for c in targets:
            if c is not None and (c.answered_est is None or answer > c.answered_est):
                c.answered_est = answer
    for key in (st.pbx.recording_cdr_field, "UserField"):
        if key:
            value = clean(f.get(key, "")).split(";", 1)[0]
            if value:
                st.set_recording(live, value, out)
                break
