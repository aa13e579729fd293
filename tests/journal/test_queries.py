"""Queries over a real journal file, and the ``pinc calls`` command."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from pinc.calls.model import Transfer
from pinc.cli import main
from pinc.config import Config
from pinc.feed import FeedHub
from pinc.journal import queries
from pinc.journal.cli import parse_since
from pinc.journal.store import Journal

from .conftest import T0, call, change, lifecycle


async def fill(config: Config) -> None:
    outbound = call(
        7, status="busy", direction="outbound", from_number="102", to_number="79035550000"
    )
    outbound.legs = []
    moved = call(8, status="completed", answered_by="103", talk=4)
    moved.transfers = [Transfer("blind", "101", "103", T0 + 10)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            for n in range(1, 6):
                await journal.submit(lifecycle(n))
            await journal.submit(
                [
                    change("call.started", call(6)),
                    change("call.ended", outbound),
                    change("call.ended", moved),
                ]
            )
            while journal.pending():  # noqa: ASYNC110 (polls the journal)
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


async def test_list_filters_and_pages(config: Config, db_path: Path) -> None:
    await fill(config)
    db = sqlite3.connect(db_path)
    all_calls, cursor = queries.list_calls(db, limit=100)
    assert [c["id"] for c in all_calls] == [f"c{n:05d}" for n in range(8, 0, -1)]
    assert cursor is None
    page1, cur = queries.list_calls(db, limit=3)
    page2, cur2 = queries.list_calls(db, limit=3, cursor=cur)
    page3, cur3 = queries.list_calls(db, limit=3, cursor=cur2)
    assert [c["id"] for c in page1 + page2 + page3] == [c["id"] for c in all_calls]
    assert cur3 is None
    with pytest.raises(ValueError):
        queries.list_calls(db, cursor="garbage!")
    assert [c["id"] for c in queries.list_calls(db, status="live")[0]] == ["c00006"]
    assert [c["id"] for c in queries.list_calls(db, status="busy")[0]] == ["c00007"]
    assert [c["id"] for c in queries.list_calls(db, ext="102")[0]] == ["c00007"]
    assert [c["id"] for c in queries.list_calls(db, ext="103")[0]] == ["c00008"]
    assert [c["id"] for c in queries.list_calls(db, number="+7 903 555 0003")[0]] == ["c00003"]
    assert [c["id"] for c in queries.list_calls(db, direction="outbound")[0]] == ["c00007"]
    since = queries.list_calls(db, since="2026-11-24T00:42:12Z")[0]
    assert [c["id"] for c in since] == ["c00008", "c00007", "c00006"]
    assert queries.get_call(db, "c00008")["transfers"][0]["to"] == "103"  # type: ignore[index]
    assert [c["type"] for c in queries.call_changes(db, "c00002")] == [
        "call.started",
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    assert queries.last_talker(db, "79035550004", "2026-01-01T00:00:00Z") == "101"
    assert queries.last_talker(db, "79035550004", "2027-01-01T00:00:00Z") is None
    assert [c["id"] for c in queries.live_calls(db)] == ["c00006"]
    assert db.execute("SELECT COUNT(*) FROM legs WHERE ext = '101'").fetchone()[0] == 7
    assert db.execute("SELECT to_target FROM transfers").fetchall() == [("103",)]


async def test_calls_command(config: Config, db_path: Path) -> None:
    await fill(config)
    runner = CliRunner()
    result = runner.invoke(main, ["calls", "--db", str(db_path), "--json", "--limit", "3"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [c["id"] for c in lines] == ["c00006", "c00007", "c00008"]  # oldest first
    assert set(lines[0]) >= {"id", "linkedid", "direction", "status", "from", "to", "legs"}
    table = runner.invoke(main, ["calls", "--db", str(db_path), "--status", "completed"])
    assert table.exit_code == 0
    assert "c00001" in table.output and "c00007" not in table.output
    assert table.output.strip().endswith("6 calls")
    missing = runner.invoke(main, ["calls", "--db", str(db_path.parent / "nope.db")])
    assert missing.exit_code != 0 and "no journal at" in missing.output
    bad = runner.invoke(main, ["calls", "--db", str(db_path), "--since", "yesterdayish"])
    assert bad.exit_code != 0 and "--since" in bad.output


def test_parse_since() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_since("2h", now=now) == "2026-11-24T10:00:00Z"
    assert parse_since("3d", now=now) == "2026-11-21T12:00:00Z"
    assert parse_since("2026-11-24") == "2026-11-24T00:00:00Z"
    assert parse_since("2026-11-24T10:00:00+03:00") == "2026-11-24T07:00:00Z"


async def test_calls_follow_prints_new_changes(config: Config, db_path: Path) -> None:
    import subprocess
    import sys

    await fill(config)
    cmd = [
        sys.executable,
        "-m",
        "pinc",
        "calls",
        "--db",
        str(db_path),
        "--json",
        "--follow",
        "--limit",
        "1",
    ]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            journal = Journal(config, FeedHub())
            await nursery.start(journal.run)
            proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE)
            assert proc.stdout is not None
            buf = b""
            while buf.count(b"\n") < 1:  # the listing: one call
                buf += await proc.stdout.receive_some(65536)
            await journal.submit(lifecycle(42))
            while buf.count(b"\n") < 5:  # then its four changes, as they commit
                buf += await proc.stdout.receive_some(65536)
            proc.kill()
            await proc.wait()
            nursery.cancel_scope.cancel()
    lines = [json.loads(line) for line in buf.splitlines()]
    assert lines[0]["id"] == "c00008"
    assert [(x["type"], x["call_id"]) for x in lines[1:]] == [
        ("call.started", "c00042"),
        ("call.ringing", "c00042"),
        ("call.answered", "c00042"),
        ("call.ended", "c00042"),
    ]
