"""Hold and resume (#13 item 8, the module's card): ``call.held`` follows the phone.

The lab drove both calls (tests/fixtures/lab/hold_resume*.truth.json, "how"): the call is
answered, put on hold 3 s later (re-INVITE a=sendonly), resumed 4 s after that. In
``hold_resume`` 101 holds, in ``hold_resume_caller`` the caller does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pinc.calls.replay import replay_changes
from pinc.config import Config

LAB = Path(__file__).parent.parent / "fixtures" / "lab"


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("scenario", ["hold_resume", "hold_resume_caller"])
def test_hold_and_resume_are_changes_of_the_live_call(config: Config, scenario: str) -> None:
    changes = list(replay_changes(config, [(LAB / f"{scenario}.ami").read_bytes()]))
    answered = next(c for c in changes if c.kind == "call.answered")
    held = [c for c in changes if c.kind == "call.held"]
    assert [c.data for c in held] == [{"held": True}, {"held": False}]
    assert [c.call["held"] for c in held] == [True, False]
    on, off = (_seconds(c.at) for c in held)
    assert 2 <= on - _seconds(answered.at) <= 4.5  # driven 3 s after the answer
    assert 3 <= off - on <= 5  # resumed 4 s later
    assert {c.call_id for c in held} == {answered.call_id}
    ended = next(c for c in changes if c.kind == "call.ended")
    assert ended.call["held"] is False and ended.call["status"] == "completed"


def test_a_call_that_ends_on_hold_is_not_held_in_the_journal(config: Config) -> None:
    """The call ends while on hold (here: its Unhold taken out): the ended call does not
    say held."""
    raw = (LAB / "hold_resume.ami").read_bytes()
    start = raw.index(b"Event: Unhold")
    end = raw.index(b"\r\n\r\n", start) + 4
    changes = list(replay_changes(config, [raw[:start] + raw[end:]]))
    assert [c.data for c in changes if c.kind == "call.held"] == [{"held": True}]
    ended = [c for c in changes if c.kind == "call.ended"]
    assert ended and all(c.call["held"] is False for c in ended)


def test_an_attended_transfer_ends_the_hold_of_the_consulting_phone(config: Config) -> None:
    """The kit's attended transfer: 101's phone holds the caller while it consults 103, and
    Asterisk sends no Unhold once the transfer moves the caller to 103."""
    raw = (LAB.parent / "asterisk-pjsip" / "pjsip_attended_transfer.ami").read_bytes()
    changes = list(replay_changes(config, [raw]))
    kinds = [(c.kind, c.call["held"]) for c in changes]
    assert ("call.held", True) in kinds
    assert ("call.transferred", False) in kinds
    assert all(not held for kind, held in kinds[kinds.index(("call.transferred", False)):])
