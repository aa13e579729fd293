"""Ground truth of the lab's recorded calls: the ``<scenario>.truth.json`` format, written
from how the driver drove each call (never from pinc's output), and its checks against the
CDR rows Asterisk wrote (``<scenario>.cdr.csv``).

Stdlib only and no lab needed: CI imports it (tests/lab_fixtures).

A truth file::

    {"scenario": "pickup_directed", "office": "labpjsip", "tech": "pjsip", "item": 3,
     "shape": "call pickup", "how": "...", "timezone": "UTC", "timestamps": true,
     "recordings_dir": "/.../recordings",
     "calls": [{"direction": "inbound", "from": "79035550011", "to": "74951230000",
                "status": "completed", "answered_by": "103",
                "legs": [{"ext": "101", "result": "cancelled"}], "transfers": [],
                "recording": true, "talk_min": 3, "talk_max": 6,
                "duration_min": 5, "duration_max": 9, "notes": {"pickup": "103"}}]}
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Master.csv columns with cdr.conf [csv] loguniqueid, loguserfield and newcdrcolumns
CDR_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield", "peeraccount", "linkedid", "sequence",
)
TRUNK_CHANNEL = re.compile(r"^PJSIP/trunk2?-")
PHONE_CHANNEL = re.compile(r"^(PJSIP/\d{3}-|Local/\d{3}@)")
NOTE_KEYS = {
    "voicemail": "the caller reached voicemail (no person talked)",
    "pickup": "the extension that picked the ringing call up (it never rang)",
    "parked": "the call was parked; parked_by / retrieved_by name who",
    "conference": "the call joined a conference room (its number)",
    "hold": "the call was put on hold and resumed (count of holds)",
    "call_waiting": "the call rang a phone that was already talking",
    "ivr": "the digits the caller pressed in the IVR ('' = none)",
    "withheld": "the caller's number was withheld (presentation restricted or anonymous)",
    "caller_name": "the caller name the carrier sent (UTF-8)",
    "consultation": "an attended transfer's consultation target that did not take the call",
    "failover": "the carrier that refused before the one that carried the call",
    "early_media": "the carrier played early media before its final answer",
    "queue": "the queue the call waited in",
    "stale": "false: the call closed normally (true would mean closed as stale)",
    "atxfer_target_missing": "AttendedTransfer came without TransferTarget* headers",
}


def span(seconds: float, lo: float = 1.5, hi: float = 2.5) -> tuple[int, int]:
    """A bracket around a planned time: the PBX, sipp and a loaded machine add delays."""
    return max(0, math.floor(seconds - lo)), math.ceil(seconds + hi)


@dataclass
class CallTruth:
    direction: str
    from_: str
    to: str
    status: str
    answered_by: str | None
    legs: list[tuple[str, str]] = field(default_factory=list)
    transfers: list[tuple[str, str, str]] = field(default_factory=list)
    recording: bool | str = False
    talk: tuple[int, int] = (0, 0)
    duration: tuple[int, int] = (0, 0)
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        for key in self.notes:
            if key not in NOTE_KEYS and not key.endswith("_by"):
                raise ValueError(f"undocumented note {key!r}: add it to NOTE_KEYS")
        return {
            "direction": self.direction, "from": self.from_, "to": self.to,
            "status": self.status, "answered_by": self.answered_by,
            "legs": [{"ext": e, "result": r} for e, r in self.legs],
            "transfers": [{"kind": k, "from": f, "to": t} for k, f, t in self.transfers],
            "recording": self.recording,
            "talk_min": self.talk[0], "talk_max": self.talk[1],
            "duration_min": self.duration[0], "duration_max": self.duration[1],
            "notes": dict(self.notes),
        }


# --- CDR rows ---------------------------------------------------------------------------


def cdr_rows(text: str) -> list[dict[str, str]]:
    """Master.csv rows as dicts (the lab's column set)."""
    rows = []
    for values in csv.reader(io.StringIO(text)):
        if values:
            rows.append(dict(zip(CDR_COLUMNS, values, strict=False)))
    return rows


def cdr_calls(rows: Iterable[dict[str, str]]) -> list[list[dict[str, str]]]:
    """CDR rows grouped by linkedid, groups in the order their first row started."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row.get("linkedid", ""), []).append(row)
    return sorted(groups.values(), key=lambda g: min(r["start"] for r in g))


def digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def cdr_direction(group: Sequence[dict[str, str]], conference: bool = False) -> str:
    """What the CDR can say about direction: who started it (Party A of the first row),
    and whether any row reached a carrier. In a conference the CDR pairs each participant
    with the others (an outside caller in the room is no carrier this call reached)."""
    first = min(group, key=lambda r: (r["start"], int(r.get("sequence") or 0)))
    if TRUNK_CHANNEL.match(first["channel"]):
        return "inbound"
    if not conference and any(TRUNK_CHANNEL.match(r["dstchannel"]) for r in group):
        return "outbound"
    return "internal"


def person_answered(group: Sequence[dict[str, str]]) -> bool:
    """An ANSWERED row between two parties (a phone or a carrier), billed: someone talked.
    Rows answered by an application alone (VoiceMail, the IVR, a queue waiting) have no
    destination channel and do not count."""
    return any(
        r["disposition"] == "ANSWERED" and r["dstchannel"] and int(r["billsec"] or 0) > 0
        for r in group
    )


def check_against_cdr(truth: dict[str, Any], cdr_text: str) -> list[str]:
    """Where the CDR can say, does the truth agree? Problems as sentences (empty: agrees).

    Checked per call, pairing truth calls with CDR linkedid groups in start order: the
    direction (by who started the call and whether a carrier was reached), answered or not
    (a person talked iff a billed ANSWERED row joins two channels; not for a conference,
    which ConfBridge answers), and the caller's digits. Scenarios whose calls merge or
    split CDR groups say so with ``"cdr_groups"`` in the truth (a list of how many groups
    each call has)."""
    groups = cdr_calls(cdr_rows(cdr_text))
    calls = truth["calls"]
    sizes = truth.get("cdr_groups") or [1] * len(calls)
    if len(sizes) != len(calls):
        return [f"cdr_groups has {len(sizes)} entries for {len(calls)} calls"]
    if sum(sizes) != len(groups):
        return [f"{len(groups)} CDR linkedids for {len(calls)} calls (cdr_groups {sizes})"]
    problems: list[str] = []
    i = 0
    for n, (call, size) in enumerate(zip(calls, sizes, strict=True)):
        group = [row for g in groups[i : i + size] for row in g]
        i += size
        where = f"call {n + 1} ({call['from']} -> {call['to']})"
        conference = "conference" in call.get("notes", {})
        direction = cdr_direction(groups[i - size], conference)
        if direction != call["direction"]:
            problems.append(f"{where}: truth says {call['direction']}, CDR says {direction}")
        talked = person_answered(group)
        # ConfBridge answers alone: the CDR cannot say whether a person talked
        if not conference and (call["status"] == "completed") != talked:
            problems.append(f"{where}: truth says {call['status']}, CDR says "
                            f"{'someone talked' if talked else 'nobody talked'}")
        first = min(group, key=lambda r: (r["start"], int(r.get("sequence") or 0)))
        if call["direction"] != "internal" and call["from"] and \
                digits(first["src"]) != digits(call["from"]):
            problems.append(f"{where}: truth from {call['from']}, CDR src {first['src']}")
    return problems


def load(path: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
