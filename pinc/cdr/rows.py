"""One CDR row, from ``cdr_csv``'s Master.csv or from a MySQL ``cdr`` table. No I/O here.

Master.csv has no header; its columns depend on ``cdr_csv.conf``: the 16 base columns,
then ``uniqueid`` (``loguniqueid = yes``), ``userfield`` (``loguserfield = yes``), then
``peeraccount, linkedid, sequence`` (``newcdrcolumns = yes``). pinc needs the linkedid to
group the rows of one call: without it each row stands alone (docs/recovery.md).
CDR times are the PBX's local time unless ``usegmtime = yes``: ``cdr.timezone`` says which.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

BASE = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
)  # fmt: skip
LAYOUTS: dict[int, tuple[str, ...]] = {
    16: BASE,
    17: (*BASE, "uniqueid"),
    18: (*BASE, "uniqueid", "userfield"),
    19: (*BASE, "peeraccount", "linkedid", "sequence"),
    20: (*BASE, "uniqueid", "peeraccount", "linkedid", "sequence"),
    21: (*BASE, "uniqueid", "userfield", "peeraccount", "linkedid", "sequence"),
}


@dataclass(frozen=True, slots=True)
class CdrRow:
    src: str
    dst: str
    dcontext: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: float
    answer: float | None
    end: float
    billsec: int
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION
    uniqueid: str = ""
    linkedid: str = ""
    sequence: int = 0
    recording: str = ""  # userfield or recordingfile

    @property
    def key(self) -> str:
        """The call this row belongs to: its linkedid (or its own uniqueid, or itself)."""
        return self.linkedid or self.uniqueid or f"{self.channel}@{self.start:.0f}"


def zone(name: str) -> tzinfo | None:
    """``cdr.timezone``: an IANA name, or "" for this host's own zone (pinc runs on the PBX)."""
    return ZoneInfo(name) if name else None


def epoch(value: Any, tz: tzinfo | None) -> float | None:
    """A CDR time (``2026-11-24 01:07:59`` text or a datetime) as epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.strptime(str(value).strip(), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    return moment.timestamp()


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def row_from_fields(fields: Mapping[str, Any], tz: tzinfo | None) -> CdrRow | None:
    """A row from named fields (a Master.csv line or a MySQL row); None if it has no time."""
    start = epoch(fields.get("start") or fields.get("calldate"), tz)
    if start is None:
        return None
    duration = _int(fields.get("duration"))
    billsec = _int(fields.get("billsec"))
    end = epoch(fields.get("end"), tz)
    if end is None:  # FreePBX's table keeps only calldate (the start) and the durations
        end = start + duration
    answer = epoch(fields.get("answer"), tz)
    if answer is None and "answer" not in fields and billsec:
        answer = end - billsec
    return CdrRow(
        src=str(fields.get("src") or ""),
        dst=str(fields.get("dst") or ""),
        dcontext=str(fields.get("dcontext") or ""),
        channel=str(fields.get("channel") or ""),
        dstchannel=str(fields.get("dstchannel") or ""),
        lastapp=str(fields.get("lastapp") or ""),
        lastdata=str(fields.get("lastdata") or ""),
        start=start,
        answer=answer,
        end=end,
        billsec=billsec,
        disposition=str(fields.get("disposition") or "").upper(),
        uniqueid=str(fields.get("uniqueid") or ""),
        linkedid=str(fields.get("linkedid") or ""),
        sequence=_int(fields.get("sequence")),
        recording=str(fields.get("recordingfile") or fields.get("userfield") or ""),
    )


def parse_csv_line(line: str, tz: tzinfo | None) -> CdrRow | None:
    """One Master.csv line; None for a line pinc cannot read (its layout is unknown)."""
    try:
        values = next(csv.reader(io.StringIO(line)))
    except (StopIteration, csv.Error):
        return None
    names = LAYOUTS.get(len(values))
    if names is None:
        return None
    return row_from_fields(dict(zip(names, values, strict=True)), tz)


def parse_csv(text: str, tz: tzinfo | None) -> list[CdrRow]:
    out = []
    for line in text.splitlines():
        if line.strip():
            row = parse_csv_line(line, tz)
            if row is not None:
                out.append(row)
    return out


def rows_from_dicts(items: Iterable[Mapping[str, Any]], tz: tzinfo | None) -> list[CdrRow]:
    """Rows of a MySQL ``cdr`` table (column names as Asterisk's cdr_adaptive_odbc or
    FreePBX write them)."""
    out = []
    for item in items:
        row = row_from_fields({str(k).lower(): v for k, v in item.items()}, tz)
        if row is not None:
            out.append(row)
    return out


SLACK = timedelta(hours=1)  # rows are appended when dispatched, not in strict end order
