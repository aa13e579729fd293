"""Cdr events: merged when they come (they sharpen start, answer and end times, and may
name the recording), never required.

Cdr times are the PBX's local time, to the second. Their offset from UTC is read off the
records themselves: a record's ``StartTime`` is when its Party A channel was made, or
later (a transferred call's later records), and that channel's Uniqueid carries its
creation as a UTC epoch. Time zones differ from UTC by whole quarter hours, so the
offset is that difference rounded down to a quarter hour. A record that starts within a
second or two of its channel settles the offset (a DST change included); a later one
only gives a first estimate while none has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from pinc.calls.names import clean, epoch_of
from pinc.calls.state import Live, Out, State

Fields = Mapping[str, str]

_QUARTER_HOUR = 900.0
_MAX_OFFSET = 14 * 3600.0  # UTC-12 .. UTC+14
_START_SLACK = 1.0  # a Cdr's second vs its Uniqueid's second: they may differ by one


def cdr_time(value: str) -> float | None:
    """A Cdr ``%Y-%m-%d %H:%M:%S`` time read as if it were UTC, as epoch seconds."""
    value = clean(value)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def zone_offset(start_local: float | None, uniqueid: str) -> tuple[float, bool] | None:
    """The PBX's offset from UTC shown by one record, and whether the record settles it
    (it started with its channel), or None when it shows none."""
    created = epoch_of(uniqueid)
    if start_local is None or created is None:
        return None
    diff = start_local - created  # the offset, plus how long after its channel it began
    offset = math.floor((diff + _START_SLACK) / _QUARTER_HOUR) * _QUARTER_HOUR
    if abs(offset) > _MAX_OFFSET:
        return None
    return offset, diff - offset <= 2 * _START_SLACK


def on_cdr(st: State, f: Fields, out: Out) -> None:
    uid = clean(f.get("UniqueID", ""))
    start = cdr_time(f.get("StartTime", ""))
    shown = zone_offset(start, uid)
    if shown is not None and (shown[1] or st.cdr_offset is None):
        st.cdr_offset = shown[0]
    chan = st.chans.get(uid)
    if chan is None or chan.call is None:
        return
    live = chan.call
    _recording(st, live, f, out)
    if st.cdr_offset is None:
        return  # no record yet showed the PBX's zone: its times cannot be placed
    shift = st.cdr_offset
    answer = cdr_time(f.get("AnswerTime", ""))
    end = cdr_time(f.get("EndTime", ""))
    start, answer, end = (None if t is None else t - shift for t in (start, answer, end))
    if start is not None and (live.cdr_start is None or start < live.cdr_start):
        live.cdr_start = start
    if end is not None:
        if live.cdr_end is None or end > live.cdr_end:
            live.cdr_end = end
        if not st.sharp:  # the clock knows only when channels were made (clock.py)
            if live.closed and live.closing_at is not None and end > live.closing_at:
                # it ended later than the clock knew: its grace for trailing Cdrs runs
                # from then; keep the closing order
                live.closing_at = end
                st.closing[live.call.id] = st.closing.pop(live.call.id)
            if end > st.now:
                st.now = end
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


def _recording(st: State, live: Live, f: Fields, out: Out) -> None:
    # A record between two calls (a conference) names the other one's file: its Party B
    # is a channel of another call, or of one already ended, and the userfield is B's
    # alone (``;<file>``: Asterisk joins A's and B's as ``a;b``).
    name = clean(f.get("DestinationChannel", ""))
    peer = st.by_name.get(name)
    if peer is not None and peer.call is not live:
        return
    if peer is None and name and clean(f.get("UserField", "")).startswith(";"):
        return
    for key in (st.pbx.recording_cdr_field, "UserField"):
        if key:
            value = clean(f.get(key, "")).split(";", 1)[0]
            if value:
                st.set_recording(live, value, out)
                return
