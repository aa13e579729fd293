"""Build tests/fixtures/expected/concurrent_load.calls.json from what the driver did.

The 50 calls of concurrent_load are not written by hand: this script derives them,
without the tracker, from the two independent records of the scenario:

* ``concurrent_load.ami.client`` (the Originate actions the driver sent): which DID or
  which outside number, the caller number (SIM_CALLER) or the employee (CallerID <10X>);
  ``Local/74951230000@from-trunk`` is queue sales (101 and 102 ring), ``7495123010X``
  is the direct number of 10X, ``Local/<number>@from-internal`` an outbound call;
* ``concurrent_load.cdr.csv`` (Asterisk's own Master.csv): per call (its Linkedid
  column) the start and end, the answer time of the A->B record that bridged the
  customer, who answered (the ANSWERED record's destination phone) and the recording
  (userfield).

Run: python tests/calls/make_concurrent_expected.py  (rewrites the JSON file).
"""

from __future__ import annotations

import csv
import json
import re
from calendar import timegm
from pathlib import Path
from time import strptime

FIX = Path(__file__).resolve().parents[1] / "fixtures"
LOCAL = FIX / "asterisk-local"
OUT = FIX / "expected" / "concurrent_load.calls.json"


def _t(value: str) -> int:
    return timegm(strptime(value, "%Y-%m-%d %H:%M:%S"))


def _iso(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def originates() -> list[dict[str, str]]:
    text = (LOCAL / "concurrent_load.ami.client").read_text()
    actions = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [ln.split(": ", 1) for ln in block.strip().split("\n") if ": " in ln]
        if ["Action", "Originate"] not in [list(x) for x in lines]:
            continue
        d: dict[str, str] = {}
        for key, value in lines:
            if key == "Variable":
                k, _, v = value.partition("=")
                d["var:" + k] = v
            else:
                d[key] = value
        actions.append(d)
    return actions


def cdr_rows() -> dict[str, list[list[str]]]:
    by_link: dict[str, list[list[str]]] = {}
    with (LOCAL / "concurrent_load.cdr.csv").open() as fh:
        for row in csv.reader(fh):
            by_link.setdefault(row[19], []).append(row)
    return by_link


def build() -> list[dict[str, object]]:
    rows = cdr_rows()
    calls = []
    for action in originates():
        m = re.match(r"Local/(\d+)@(from-trunk|from-internal)$", action["Channel"])
        assert m, action
        number, ctx = m.groups()
        if ctx == "from-trunk":
            caller = action["var:SIM_CALLER"]
            link = next(k for k, rs in rows.items() if any(r[1] == caller for r in rs))
            rs = rows[link]
            # the customer's A->B record that was answered names the phone that won
            win = next(
                r
                for r in rs
                if r[5].startswith(f"Local/{number}@from-trunk")
                and r[6].startswith("Local/1")
                and r[14] == "ANSWERED"
            )
            ext = re.match(r"Local/(\d+)@phones", win[6]).group(1)  # type: ignore[union-attr]
            if number == "74951230000":
                legs = [
                    {"ext": e, "result": "answered" if e == ext else "cancelled"}
                    for e in ("101", "102")
                ]
            else:
                assert ext == number[-3:]
                legs = [{"ext": ext, "result": "answered"}]
            call = {
                "direction": "inbound",
                "from": caller,
                "to": number,
                "answered_by": ext,
                "legs": legs,
            }
            answered = _t(win[10])
            rec = win[17]
        else:
            emp = re.search(r"<(\d+)>", action["CallerID"]).group(1)  # type: ignore[union-attr]
            link = next(
                k for k, rs in rows.items() if any(r[1] == emp and r[2] == number for r in rs)
            )
            rs = rows[link]
            # the PSTN side's own record holds when the number answered
            pstn = next(
                r for r in rs if r[5].startswith(f"Local/{number}@pstn") and r[5].endswith(";2")
            )
            answered = _t(pstn[10])
            rec = next(r[17] for r in rs if r[17])
            call = {
                "direction": "outbound",
                "from": emp,
                "to": number,
                "answered_by": emp,
                "legs": [],
            }
        start = min(_t(r[9]) for r in rs)
        end = max(_t(r[11]) for r in rs)
        call.update(
            linkedid=link,
            status="completed",
            started_at=_iso(start),
            answered_at=_iso(answered),
            ended_at=_iso(end),
            duration=end - start,
            talk=end - answered,
            transfers=[],
            recording=rec,
        )
        calls.append(call)
    return calls


if __name__ == "__main__":
    data = {
        "scenario": "concurrent_load",
        "how": "generated by tests/calls/"
        "make_concurrent_expected.py from the .ami.client and the .cdr.csv",
        "calls": build(),
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(data['calls'])} calls -> {OUT}")
