"""Signed tickets: the format other implementers (pinc's vtiger module) follow, and refusals."""

from __future__ import annotations

import pytest

from pinc.web import tickets
from pinc.web.tickets import TicketError

MASTER = "pinc-lab-secret-42"
NOW = 1_800_000_000


def test_known_vector() -> None:
    # Fixed values, checked with openssl too: pinc's vtiger module (PHP) tests the same
    # vector, so both sides agree on the format in docs/security.md.
    key = "a5acc81124d30791d3ad415889991945205ef260b754c1093a282e0ef189f40e"
    assert tickets.derive_key(MASTER, "ws").hex() == key
    t = tickets.mint(MASTER, "ws", "101", now=NOW, ttl=60)
    assert t == "v1.ws.101.1800000060.o64b1Y3z9LYMFzPei-u3iA"
    assert tickets.signature(MASTER, "recording", "0abc123") == "Bxx9yHzMu1_8vcb8_09_Xg"
    assert tickets.parse(MASTER, "ws", t, now=NOW + 1).subject == "101"


def test_permanent_recording_link_checks_and_is_per_call() -> None:
    sig = tickets.signature(MASTER, "recording", "0abc123")
    assert tickets.check(MASTER, "recording", "0abc123", 0, sig, now=NOW).expires == 0
    with pytest.raises(TicketError, match="bad signature"):
        tickets.check(MASTER, "recording", "0abc124", 0, sig, now=NOW)
    with pytest.raises(TicketError, match="bad signature"):
        tickets.check("another-secret", "recording", "0abc123", 0, sig, now=NOW)


def test_purpose_is_part_of_the_key() -> None:
    ws = tickets.mint(MASTER, "ws", "101", now=NOW, ttl=60)
    _, _, subject, exp, sig = ws.split(".")
    with pytest.raises(TicketError):
        tickets.check(MASTER, "recording", subject, exp, sig, now=NOW)
    with pytest.raises(TicketError, match="not a recording ticket"):
        tickets.parse(MASTER, "recording", ws, now=NOW)


def test_expired_and_far_future_are_refused() -> None:
    t = tickets.mint(MASTER, "ws", "101", now=NOW, ttl=60)
    with pytest.raises(TicketError, match="expired"):
        tickets.parse(MASTER, "ws", t, now=NOW + 60)
    far = tickets.signature(MASTER, "ws", "101", NOW + 10 * 3600)
    with pytest.raises(TicketError, match="too far"):
        tickets.check(MASTER, "ws", "101", NOW + 10 * 3600, far, now=NOW)
    never = tickets.signature(MASTER, "ws", "101", 0)
    with pytest.raises(TicketError, match="must expire"):
        tickets.check(MASTER, "ws", "101", 0, never, now=NOW)


@pytest.mark.parametrize(
    "ticket",
    ["", "v1.ws.101", "v2.ws.101.1800000060.AAAAAAAAAAAAAAAAAAAAAA", "v1.ws.1 01.1.x" * 3,
     "v1.ws.101.-5.AAAAAAAAAAAAAAAAAAAAAA", "v1.ws.101.01.AAAAAAAAAAAAAAAAAAAAAA",
     "v1.ws.101.1800000060.AAAAAAAAAAAAAAAAAAAAA=", "v1.ws.\u0661\u0660\u0661.1800000060.x"],
)
def test_malformed_tickets_are_refused(ticket: str) -> None:
    with pytest.raises(TicketError):
        tickets.parse(MASTER, "ws", ticket, now=NOW)


def test_no_master_no_ticket() -> None:
    with pytest.raises(TicketError):
        tickets.check("", "recording", "x", 0, "A" * 22, now=NOW)
    with pytest.raises(ValueError):
        tickets.mint("", "ws", "101", now=NOW, ttl=60)
