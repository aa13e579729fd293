"""Recorded AMI transcripts: the broadcast events of a ``.ami`` file, and their ids shifted
so that one recording can be played again and again as fresh calls."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pinc.ami.protocol import NEED_DATA, AMIConnection, Kind, Message

__all__ = ["load_transcript", "rewrite_ids"]


def load_transcript(path: str | Path) -> list[bytes]:
    """The raw bytes of each ``Event:`` message of a recorded ``.ami`` file, in order.

    Each item ends with its blank line. Responses and the events of list replies
    (``EventList: start`` ... ``Complete``) are left out: they answer one client's
    action, they are not broadcast.
    """
    data = Path(path).read_bytes()
    conn = AMIConnection(expect_banner=data.startswith(b"Asterisk Call Manager/"))
    conn.feed(data)
    out: list[bytes] = []
    open_lists: set[str] = set()
    while True:
        msg = conn.next_message()
        if msg is NEED_DATA:
            break
        if not isinstance(msg, Message):
            continue
        action_id = msg.action_id
        if msg.kind is Kind.RESPONSE:
            if msg.get("EventList").lower() == "start" and action_id:
                open_lists.add(action_id)
            continue
        if msg.kind is not Kind.EVENT:
            continue
        if action_id in open_lists:
            if msg.get("EventList").lower() == "complete":
                open_lists.discard(action_id)
            continue
        out.append(data[msg.offset : conn.offset])
    return out


_UNIQUEID = re.compile(rb"(?<![\d.])(1\d{9})\.(\d+)(?![\d])")
_CHANNEL_SEQ = re.compile(rb"(/[^\s/;,]+-)([0-9a-f]{8})(?![0-9a-f])")
_CDR_TIME = re.compile(rb"^((?:Start|Answer|End)Time: )(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.M)


def rewrite_ids(events: Sequence[bytes], *, epoch: int, seq_offset: int) -> list[bytes]:
    """Shift every ``<epoch>.<seq>`` id so ``events`` can be replayed as fresh calls.

    The earliest epoch found becomes ``epoch`` (the others keep their distance from it),
    every sequence number grows by ``seq_offset``, channel name suffixes
    (``PJSIP/101-0000000a``) grow by ``seq_offset`` too, and the Cdr times move by the
    same number of seconds as the epochs.
    """
    epochs = [int(m.group(1)) for ev in events for m in _UNIQUEID.finditer(ev)]
    delta = epoch - min(epochs) if epochs else 0

    def uid(m: re.Match[bytes]) -> bytes:
        return b"%d.%d" % (int(m.group(1)) + delta, int(m.group(2)) + seq_offset)

    def chan(m: re.Match[bytes]) -> bytes:
        return m.group(1) + b"%08x" % (int(m.group(2), 16) + seq_offset)

    def cdr_time(m: re.Match[bytes]) -> bytes:
        when = datetime.strptime(m.group(2).decode(), "%Y-%m-%d %H:%M:%S")
        return m.group(1) + (when + timedelta(seconds=delta)).strftime("%Y-%m-%d %H:%M:%S").encode()

    out = []
    for ev in events:
        ev = _UNIQUEID.sub(uid, ev)
        ev = _CHANNEL_SEQ.sub(chan, ev)
        if b"Event: Cdr" in ev:
            ev = _CDR_TIME.sub(cdr_time, ev)
        out.append(ev)
    return out
