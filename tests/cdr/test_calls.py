"""CDR rows into calls: every recorded scenario's own Master.csv rows give the calls the
live tracker derives from the same scenario's AMI bytes (replay), field by field where the
CDR can tell (docs/recovery.md lists where it cannot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinc.calls.model import call_id_for
from pinc.calls.names import Office
from pinc.calls.replay import replay_files
from pinc.cdr.calls import calls_from_rows
from pinc.cdr.rows import LAYOUTS, parse_csv, parse_csv_line, zone
from pinc.config import Config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CSVS = sorted(FIXTURES.glob("asterisk-*/*.cdr.csv"))
UTC = zone("UTC")


def replayed(ami: Path) -> list[dict[str, object]]:
    import json

    return [json.loads(line) for line in replay_files(Config(), [ami])]


@pytest.mark.parametrize("path", CSVS, ids=[p.name for p in CSVS])
def test_cdr_calls_match_the_live_tracker(path: Path) -> None:
    rows = parse_csv(path.read_text(encoding="utf-8"), UTC)
    assert rows and all(r.linkedid for r in rows)
    got = {c.linkedid: c.to_dict() for c in calls_from_rows(
        rows, Office(Config().pbx), lambda key, started: call_id_for(key))}
    expected = replayed(path.with_name(path.name.replace(".cdr.csv", ".ami")))
    assert set(got) == {c["linkedid"] for c in expected}
    for want in expected:
        have = got[str(want["linkedid"])]
        for key in ("direction", "status", "from", "answered_by"):
            assert have[key] == want[key], (want["linkedid"], key)
        if want["status"] == "completed":
            assert have["recording"] == want["recording"]
            assert abs(int(have["talk"]) - int(str(want["talk"]))) <= 1 or have["transfers"] == []
        if "blind" not in path.name:  # a blind transfer rewrites the CDR's destination
            assert have["to"] == want["to"]
        # every employee phone that rang is a leg (click-to-call's own ring excepted)
        legs = [(leg["ext"], leg["result"]) for leg in want["legs"]]  # type: ignore[attr-defined]
        if want["direction"] != "outbound":
            assert [(leg["ext"], leg["result"]) for leg in have["legs"]] == legs


def test_layouts_by_column_count() -> None:
    line = ('"","79035550011","74951230000","from-trunk","""x"" <79035550011>",'
            '"PJSIP/trunk-1","PJSIP/101-2","Queue","sales","2026-11-24 01:07:59",'
            '"2026-11-24 01:08:01","2026-11-24 01:08:05",5,3,"ANSWERED","DOCUMENTATION"')
    base = parse_csv_line(line, UTC)
    assert base is not None and base.linkedid == "" and base.billsec == 3
    assert base.key == "PJSIP/trunk-1@1795482479"  # no linkedid: the row stands alone
    full = parse_csv_line(line + ',"1795482479.62","rec.wav","","1795482479.60",47', UTC)
    assert full is not None and full.linkedid == "1795482479.60" and full.recording == "rec.wav"
    assert parse_csv_line('"a","b"', UTC) is None  # a layout pinc does not know
    assert sorted(LAYOUTS) == list(range(16, 22))


def test_times_in_the_pbx_zone() -> None:
    line = ('"","101","102","from-internal","","PJSIP/101-1","PJSIP/102-2","Dial","",'
            '"2026-11-24 03:00:00","2026-11-24 03:00:02","2026-11-24 03:00:07",7,5,'
            '"ANSWERED","DOCUMENTATION","1.1","","","1.1",1')
    moscow = parse_csv_line(line, zone("Europe/Moscow"))
    utc = parse_csv_line(line, UTC)
    assert moscow is not None and utc is not None
    assert utc.start - moscow.start == 3 * 3600 and moscow.end - moscow.start == 7


async def test_a_recovery_bug_never_stops_the_ingest(tmp_path: Path) -> None:
    """on_login runs inline in the ingest: whatever goes wrong is logged, not raised."""
    from pinc.cdr.recovery import Recovery

    class Broken:
        def describe(self) -> str:
            return "broken"

        def rows_since(self, since: float) -> list[object]:
            raise KeyError("a column nobody expected")

    class NoJournal:
        async def read(self, fn: object, **_: object) -> None:
            return None

    recovery = Recovery(Config(), NoJournal(), source=Broken())  # type: ignore[arg-type]
    await recovery.on_login()
    assert recovery.last_error is not None and "KeyError" in recovery.last_error
