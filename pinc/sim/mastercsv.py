"""The fake Asterisk's own CDR: a Master.csv row for every ``Cdr`` event it plays.

Written at the moment the event is played, with the times moved to that moment (as a real
PBX writes a CDR when the call ends), in the layout of ``cdr_csv`` with ``loguniqueid``,
``loguserfield`` and ``newcdrcolumns`` on, times in UTC (``usegmtime``). The linkedid,
which the Cdr event lacks, comes from the channels the fake has seen.
"""

from __future__ import annotations

import csv
import io
import time
from collections import OrderedDict

from pinc.ami.protocol import Message

MAX_CHANNELS = 200_000


class MasterCsv:
    def __init__(self) -> None:
        self._linkedid: OrderedDict[str, str] = OrderedDict()  # Uniqueid -> Linkedid

    def track(self, msg: Message) -> None:
        uniqueid, linkedid = msg.get("Uniqueid"), msg.get("Linkedid")
        if uniqueid and linkedid and uniqueid not in self._linkedid:
            self._linkedid[uniqueid] = linkedid
            if len(self._linkedid) > MAX_CHANNELS:
                self._linkedid.popitem(last=False)

    def row(self, msg: Message, now: float | None = None) -> str:
        """The Master.csv line of one Cdr event (no newline)."""
        end = time.time() if now is None else now
        duration = int(msg.get("Duration") or 0)
        billsec = int(msg.get("BillableSeconds") or 0)

        def at(ts: float) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))

        uniqueid = msg.get("UniqueID")
        values = [
            msg.get("AccountCode"), msg.get("Source"), msg.get("Destination"),
            msg.get("DestinationContext"), msg.get("CallerID"), msg.get("Channel"),
            msg.get("DestinationChannel"), msg.get("LastApplication"), msg.get("LastData"),
            at(end - duration), at(end - billsec) if msg.get("AnswerTime") else "", at(end),
            str(duration), str(billsec), msg.get("Disposition"), msg.get("AMAFlags"),
            uniqueid, msg.get("RecordingFile") or msg.get("UserField"), "",
            self._linkedid.get(uniqueid, uniqueid), "0",
        ]
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="").writerow(values)
        return out.getvalue()
