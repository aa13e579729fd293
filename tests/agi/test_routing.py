"""Routing: number normalisation, cache, CRM with a deadline, journal fallback."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio

from pinc import metrics
from pinc.config import RoutingConfig, replace
from pinc.routing import Customer, Router, normalize_number
from pinc.services import Responsible

from .conftest import FakeCrm, RoutingJournal, make_config

IVAN = Customer("Ivan Petrov", "Contacts", "12x34", "Anna Smirnova", "102")
RU = RoutingConfig()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("79161234567", "79161234567"),
        ("89161234567", "79161234567"),
        ("+79161234567", "79161234567"),
        ("+7 (916) 123-45-67", "79161234567"),
        ("8 916 123 45 67", "79161234567"),
        ("9161234567", "79161234567"),
        (" 8-495-123-00-00 ", "74951230000"),
        ("102", "102"),  # an extension stays itself
        ("+442071234567", "442071234567"),  # foreign, given with +
        ("442071234567", "442071234567"),  # foreign, 12 digits: no rule applies
        ("unknown", ""),
        ("anonymous", ""),
        ("", ""),
        ("1" * 21, ""),  # longer than any phone number
        ("७९१६", ""),  # non-ASCII digits are not digits here
    ],
)
def test_normalize_russia(raw: str, expected: str) -> None:
    assert normalize_number(raw, RU) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("030 12345678", "493012345678"),  # trunk prefix 0 + 10 national digits
        ("+49 30 1234567", "49301234567"),  # with + the digits are taken as they are
        ("3012345678", "493012345678"),
        ("0049301234567", "0049301234567"),  # international prefix: left as digits
    ],
)
def test_normalize_other_country(raw: str, expected: str) -> None:
    cfg = RoutingConfig(country_code="49", trunk_prefix="0", national_length=10)
    assert normalize_number(raw, cfg) == expected


def test_normalize_without_rules() -> None:
    cfg = RoutingConfig(country_code="", trunk_prefix="", national_length=0)
    assert normalize_number("+7 916 123-45-67", cfg) == "79161234567"
    assert normalize_number("8 916 123-45-67", cfg) == "89161234567"


def router(
    crm: FakeCrm | None, journal: RoutingJournal | None = None, **routing: object
) -> Router:
    return Router(make_config(routing=routing), crm=crm, journal=journal)


async def test_crm_then_cache_across_number_forms(nursery: trio.Nursery) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    r = router(crm)
    await nursery.start(r.run)
    first = await r.responsible("89161234567")
    assert first == Responsible("102", "Anna Smirnova", "Ivan Petrov", "crm")
    again = await r.responsible("+7 916 123-45-67")
    assert again == Responsible("102", "Anna Smirnova", "Ivan Petrov", "cache")
    assert crm.calls == ["79161234567"]
    assert r.statistics()["cache_hits"] == 1


async def test_cache_ttl_and_negative_ttl(nursery: trio.Nursery, autojump_clock: object) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    r = router(crm, cache_ttl=300.0, negative_ttl=60.0)
    await nursery.start(r.run)
    assert (await r.responsible("79161234567")).source == "crm"
    assert (await r.responsible("79990000000")).source == "none"
    await trio.sleep(61)
    assert (await r.responsible("79161234567")).source == "cache"
    assert (await r.responsible("79990000000")).source == "none"  # asked the CRM again
    assert crm.calls == ["79161234567", "79990000000", "79990000000"]
    await trio.sleep(300)
    assert (await r.responsible("79161234567")).source == "crm"
    assert crm.calls.count("79161234567") == 2


async def test_crm_never_answers_journal_answers_within_deadline(
    nursery: trio.Nursery, journal: RoutingJournal
) -> None:
    crm = FakeCrm()
    crm.never = True
    await journal.add("79161234567", "105", time.time() - 3600)
    r = router(crm, journal, deadline=1.0)
    await nursery.start(r.run)
    start = trio.current_time()
    answer = await r.responsible("89161234567")
    assert trio.current_time() - start <= 1.0 + 0.05  # the deadline held
    assert answer == Responsible(ext="105", source="journal")
    assert journal.reads == 1


async def test_crm_never_answers_no_journal(nursery: trio.Nursery, autojump_clock: object) -> None:
    crm = FakeCrm()
    crm.never = True
    r = router(crm, deadline=0.5)
    await nursery.start(r.run)
    start = trio.current_time()
    assert await r.responsible("79161234567") == Responsible()
    assert trio.current_time() - start <= 0.5
    # the background lookup is bounded by crm.timeout and then forgotten
    await trio.sleep(11)
    assert r.statistics()["inflight"] == 0
    assert r.statistics()["crm_failures"] == 1


async def test_late_crm_answer_fills_cache(nursery: trio.Nursery, autojump_clock: object) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    crm.delay = 3.0
    r = router(crm, deadline=1.0)
    await nursery.start(r.run)
    assert (await r.responsible("79161234567")).source == "none"
    await trio.sleep(3)
    answer = await r.responsible("79161234567")
    assert answer.source == "cache" and answer.ext == "102"
    assert crm.calls == ["79161234567"]
    assert r.statistics()["late_fills"] == 1


async def test_concurrent_lookups_share_one_crm_call(nursery: trio.Nursery) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    crm.delay = 0.05
    r = router(crm)
    await nursery.start(r.run)
    answers: list[Responsible] = []

    async def ask() -> None:
        answers.append(await r.responsible("79161234567"))

    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            for _ in range(20):
                n.start_soon(ask)
    assert len(crm.calls) == 1
    assert {a.ext for a in answers} == {"102"}


async def test_without_run_slow_crm_is_cut_at_deadline(autojump_clock: object) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    crm.delay = 5.0
    r = router(crm, deadline=1.0)
    assert (await r.responsible("79161234567")).source == "none"
    assert r.statistics()["inflight"] == 0
    assert r.statistics()["cache_entries"] == 0


async def test_crm_error_falls_back_to_journal_and_is_not_cached(
    nursery: trio.Nursery, journal: RoutingJournal
) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    crm.error = RuntimeError("CRM said 500")
    await journal.add("79161234567", "103", time.time() - 60)
    r = router(crm, journal)
    await nursery.start(r.run)
    assert await r.responsible("79161234567") == Responsible(ext="103", source="journal")
    crm.error = None
    assert (await r.responsible("79161234567")).source == "crm"


async def test_journal_window_and_switch(
    nursery: trio.Nursery, journal: RoutingJournal
) -> None:
    await journal.add("79161234567", "104", time.time() - 40 * 86400)  # older than 30 days
    r = router(FakeCrm(), journal, journal_fallback_days=30)
    await nursery.start(r.run)
    assert await r.responsible("79161234567") == Responsible()
    await journal.add("79161234567", "101", time.time() - 86400)
    r.forget()
    assert await r.responsible("79161234567") == Responsible(ext="101", source="journal")
    off = router(None, journal, journal_fallback_days=0)
    assert await off.responsible("79161234567") == Responsible()


async def test_customer_without_manager_takes_ext_from_journal(
    nursery: trio.Nursery, journal: RoutingJournal
) -> None:
    crm = FakeCrm({"79161234567": Customer("Romashka LLC", "Accounts", "11x7")})
    await journal.add("79161234567", "103", time.time() - 60)
    r = router(crm, journal)
    await nursery.start(r.run)
    answer = await r.responsible("79161234567")
    assert answer == Responsible(ext="103", customer_name="Romashka LLC", source="journal")
    await journal.write(lambda c: c.execute("DELETE FROM calls"))
    answer = await r.responsible("79161234567")
    assert answer == Responsible(customer_name="Romashka LLC", source="cache")


async def test_journal_error_is_logged_not_raised(
    nursery: trio.Nursery, journal: RoutingJournal
) -> None:
    await journal.write(lambda c: c.execute("DROP TABLE calls"))  # every read now fails
    r = router(None, journal)
    assert await r.responsible("79161234567") == Responsible()


async def test_no_number_no_lookup() -> None:
    crm = FakeCrm()
    r = router(crm)
    for raw in ("", "unknown", "anonymous"):
        assert await r.responsible(raw) == Responsible()
    assert crm.calls == []


async def test_metrics_counted() -> None:
    def count(source: str) -> float:
        value = metrics.REGISTRY.get_sample_value("pinc_routing_lookups_total", {"source": source})
        return value or 0.0

    before = count("none")
    await router(None).responsible("79161234567")
    assert count("none") == before + 1


async def test_crm_extension_must_match_pattern(
    nursery: trio.Nursery, journal: RoutingJournal
) -> None:
    crm = FakeCrm({"79161234567": Customer("Ivan", user_name="Anna", user_extension="PJSIP/9")})
    await journal.add("79161234567", "103", time.time() - 60)
    r = router(crm, journal)
    await nursery.start(r.run)
    answer = await r.responsible("79161234567")
    assert answer == Responsible(ext="103", customer_name="Ivan", source="journal")
    assert r.cached("79161234567") is None  # not a complete answer: no fast path


async def test_journal_matches_the_number_as_the_pbx_stored_it(
    nursery: trio.Nursery, journal: RoutingJournal
) -> None:
    await journal.add("89161234567", "104", time.time() - 60)  # the trunk sent 8...
    r = router(None, journal)
    assert await r.responsible("+79161234567") == Responsible(ext="104", source="journal")
    await journal.add("79990000000", "PJSIP/x", time.time() - 30)  # not an extension: ignored
    assert await r.responsible("+79990000000") == Responsible()


async def test_cached_fast_path(nursery: trio.Nursery) -> None:
    crm = FakeCrm({"79161234567": IVAN})
    r = router(crm)
    await nursery.start(r.run)
    assert r.cached("79161234567") is None
    await r.responsible("79161234567")
    assert r.cached("8 916 123 45 67") == Responsible(
        "102", "Anna Smirnova", "Ivan Petrov", "cache"
    )
    assert r.cached("anonymous") == Responsible()


def test_default_journal_query_is_the_journal_engineers() -> None:
    from pinc.journal import queries
    from pinc.routing import _default_last_talker

    assert _default_last_talker() is queries.last_talker


async def test_a_slow_journal_read_does_not_hold_the_dialplan(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # move_on_at around a worker thread that does not abandon on cancel waited for the
    # thread anyway: a 3 s read held the caller 3 s past a 0.3 s deadline (issue #16).
    from pinc.feed import FeedHub
    from pinc.journal.store import Journal

    config = replace(
        make_config(routing={"deadline": 0.3}), journal={"path": str(tmp_path / "pinc.db")}
    )
    journal = Journal(config, FeedHub())
    await nursery.start(journal.run)
    release = threading.Event()

    def slow_last_talker(conn: sqlite3.Connection, number: str, since: str) -> str | None:
        release.wait(10)  # a disk that takes its time
        return "101"

    r = Router(config, crm=None, journal=journal, last_talker=slow_last_talker)
    await nursery.start(r.run)
    started = trio.current_time()
    with trio.fail_after(5):
        answer = await r.responsible("79161234567")
    waited = trio.current_time() - started
    release.set()
    assert answer == Responsible()
    assert 0.25 <= waited < 1.0, waited
