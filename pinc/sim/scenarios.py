"""The recorded scenarios the simulated PBX plays: loading them, and turning one into a
fresh call (new ids, channel names, bridges) each time it is played."""

from __future__ import annotations

import json
import math
import re
import struct
import time
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path

from pinc.sim.transcripts import load_transcript, rewrite_ids

DATA_DIR = Path(__file__).resolve().parent / "data"
# Noise that a real AMI session shows once per login, not once per call.
_SKIP_PRIVILEGES = (b"Privilege: security,", b"Privilege: system,")
_BRIDGE_ID = re.compile(
    rb"(?<=BridgeUniqueid: )([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
_RECORDING = re.compile(
    rb"^(?:Value|RecordingFile|UserField): (?:.*/)?([\w.+-]+\.(?:wav|WAV|gsm|mp3|ogg))\r?$", re.M
)


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: float
    events: tuple[bytes, ...]
    doc: str = ""


def load_scenarios(data_dir: Path = DATA_DIR) -> list[Scenario]:
    """The recorded scenarios the demo plays, with their real durations."""
    meta = json.loads((data_dir / "scenarios.json").read_text(encoding="utf-8"))
    out = []
    for name, info in sorted(meta.items()):
        events = tuple(
            ev
            for ev in load_transcript(data_dir / info["transcript"])
            if not any(p in ev[:200] for p in _SKIP_PRIVILEGES)
        )
        out.append(Scenario(name, float(info["seconds"]), events, info.get("doc", "")))
    return out


def freshen(scenario: Scenario, index: int, *, now: float | None = None) -> list[bytes]:
    """The scenario's events as a new call: ids, channel names and bridges all fresh."""
    epoch = int(time.time() if now is None else now)
    # Room for 10,000 channels per call: sequence numbers never meet another call's.
    events = rewrite_ids(list(scenario.events), epoch=epoch, seq_offset=(index + 1) * 10_000)
    bridges: dict[bytes, bytes] = {}

    def bridge(m: re.Match[bytes]) -> bytes:
        old = m.group(1)
        if old not in bridges:
            bridges[old] = str(uuid.uuid4()).encode()
        return bridges[old]

    return [_BRIDGE_ID.sub(bridge, ev) for ev in events]


def recording_names(events: list[bytes]) -> set[str]:
    """Recording file names the events mention (MIXMONITOR_FILENAME, CDR fields)."""
    names = set()
    for ev in events:
        for m in _RECORDING.finditer(ev):
            names.add(m.group(1).decode("ascii", "replace"))
    return names


def write_tone(path: Path, seconds: float = 2.0, freq: float = 440.0) -> None:
    """A short 8 kHz tone, so the dashboard's recording links play something."""
    rate = 8000
    frames = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
