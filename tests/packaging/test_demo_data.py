"""The demo's recorded scenarios and how it turns them into fresh calls."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path

from pinc.sim.scenarios import DATA_DIR, freshen, load_scenarios, recording_names, write_tone

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
UNIQUEID = re.compile(rb"^(?:Uniqueid|Linkedid|DestUniqueid): (\S+)\r?$", re.M)
CHANNEL = re.compile(rb"^Channel: (\S+)\r?$", re.M)
BRIDGE = re.compile(rb"^BridgeUniqueid: (\S+)\r?$", re.M)


def test_demo_data_is_a_copy_of_the_small_fixtures() -> None:
    meta = json.loads((DATA_DIR / "scenarios.json").read_text(encoding="utf-8"))
    for pbx in ("asterisk-local", "asterisk-pjsip"):
        for transcript in sorted((FIXTURES / pbx).glob("*.ami")):
            if transcript.name.startswith("concurrent_load"):
                assert not (DATA_DIR / transcript.name).exists()
                continue
            copy = DATA_DIR / transcript.name
            assert copy.read_bytes() == transcript.read_bytes(), f"{copy} differs from fixture"
            name = transcript.name.removesuffix(".ami")
            summary = json.loads((FIXTURES / pbx / f"{name}.summary.json").read_text())
            assert meta[name]["seconds"] == summary["seconds"]


def test_every_scenario_loads_without_login_noise() -> None:
    scenarios = load_scenarios()
    assert len(scenarios) == 26
    for s in scenarios:
        assert s.seconds > 0 and s.events, s.name
        assert not any(b"Event: FullyBooted" in ev or b"SuccessfulAuth" in ev for ev in s.events)


def _ids(events: list[bytes], pattern: re.Pattern[bytes]) -> set[bytes]:
    return {m.group(1) for ev in events for m in pattern.finditer(ev)}


def test_two_replays_share_no_id_channel_or_bridge() -> None:
    scenario = next(s for s in load_scenarios() if s.name == "pjsip_attended_transfer")
    first = freshen(scenario, 0, now=2_000_000_000)
    second = freshen(scenario, 1, now=2_000_000_000)
    for pattern in (UNIQUEID, CHANNEL, BRIDGE):
        a, b = _ids(first, pattern), _ids(second, pattern)
        assert a and b and not a & b, pattern.pattern
    assert all(ev.endswith(b"\r\n\r\n") for ev in first)


def test_recording_files_are_made_for_the_names_in_the_events(tmp_path: Path) -> None:
    scenario = next(s for s in load_scenarios() if s.name == "inbound_answered")
    names = recording_names(freshen(scenario, 3))
    assert names and all(n.endswith(".wav") and "/" not in n for n in names)
    path = tmp_path / sorted(names)[0]
    write_tone(path, seconds=0.1)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnframes()) == (8000, 800)


async def test_an_endless_demo_forgets_what_was_replayed() -> None:
    """The simulator keeps its replay log; the demo trims what every client already got."""
    import trio

    from pinc.sim.amiserver import AmiSimServer
    from pinc.sim.player import _trim_replayed

    scenario = next(s for s in load_scenarios() if s.name == "inbound_answered")
    sim = AmiSimServer()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(sim.run)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"Action: Login\r\nUsername: pinc\r\nSecret: pincsecret\r\n\r\n")
            nursery.start_soon(_drain, stream)
            for index in range(12):
                sim.feed(freshen(scenario, index))
                await sim.wait_replayed()
                _trim_replayed(sim)
            assert len(sim._log) < 2 * len(scenario.events)
            sim.feed(freshen(scenario, 99))
            await sim.wait_replayed()  # still consistent after trimming
            nursery.cancel_scope.cancel()


async def _drain(stream: object) -> None:
    while await stream.receive_some(65536):  # type: ignore[attr-defined]
        pass
