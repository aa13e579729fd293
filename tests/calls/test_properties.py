"""Same calls whatever the chunking, and whatever the interleaving of unrelated calls."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinc.ami.protocol import AMIConnection, Message
from pinc.calls.cdr import cdr_time
from pinc.calls.names import epoch_of
from pinc.calls.replay import replay_calls
from pinc.config import Config, load_config
from pinc.sim.transcripts import load_transcript, rewrite_ids
from tests.lab.compare import replay_config
from tests.lab.truth import load as load_truth

from .conftest import LOCAL, project

CONFIG: Config = load_config(None, env={})
ATTENDED = (LOCAL / "attended_transfer.ami").read_bytes()
LOAD = (LOCAL / "concurrent_load.ami").read_bytes()


def _by_link(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["linkedid"]: project(c) for c in calls}


BASE_ATTENDED = replay_calls(CONFIG, [ATTENDED])
BASE_LOAD = _by_link(replay_calls(CONFIG, [LOAD]))


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[pos : pos + size])
        pos += size
        i += 1
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=8))
def test_chunking_does_not_matter(sizes: list[int]) -> None:
    assert replay_calls(CONFIG, _chunks(ATTENDED, sizes)) == BASE_ATTENDED


def test_chunking_concurrent_load_odd_sizes() -> None:
    for sizes in ([1, 7, 4093], [65537], [13, 1000, 99]):
        assert _by_link(replay_calls(CONFIG, _chunks(LOAD, sizes))) == BASE_LOAD


def _events_of_load() -> list[Message]:
    conn = AMIConnection()
    conn.feed(LOAD)
    return [m for m in conn.messages() if isinstance(m, Message) and m.is_event]


EVENTS = _events_of_load()


def _buckets() -> list[dict[str, list[Message]]]:
    """Events grouped by the second they happened in (as far as the events tell: Uniqueid
    epochs and Cdr end times), then by call: inside one second, events of different calls
    may come in any order."""
    link_of: dict[str, str] = {}
    clock = 0.0
    buckets: dict[float, dict[str, list[Message]]] = defaultdict(lambda: defaultdict(list))
    for m in EVENTS:
        uid = m.get("Uniqueid").strip()
        link = m.get("Linkedid").strip()
        if uid and link:
            link_of[uid] = link
        times = [epoch_of(m.get(key).strip()) for key in ("Uniqueid", "DestUniqueid")]
        if m.name == "Cdr":
            times.append(cdr_time(m.get("EndTime")))
        for ep in times:
            if ep is not None and ep > clock:
                clock = ep
        key = (
            link
            or link_of.get(m.get("UniqueID").strip(), "")
            or link_of.get(m.get("DestUniqueid").strip(), "")
        )
        buckets[clock][key].append(m)
    return [buckets[t] for t in sorted(buckets)]


BUCKETS = _buckets()


def _interleave(rng: random.Random) -> bytes:
    out: list[bytes] = [b"Asterisk Call Manager/11.0.0\r\n"]
    for bucket in BUCKETS:
        queues = [list(reversed(seq)) for seq in bucket.values()]
        while queues:
            q = rng.choice(queues)
            out.append(q.pop().to_bytes() + b"\r\n")
            if not q:
                queues.remove(q)
    return b"".join(out)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_interleaving_of_unrelated_calls_does_not_matter(seed: int) -> None:
    shuffled = _interleave(random.Random(seed))
    assert shuffled != LOAD
    assert _by_link(replay_calls(CONFIG, [shuffled])) == BASE_LOAD


# ---- the lab's transcripts ---------------------------------------------------------------

LAB = LOCAL.parent / "lab"
LAB_TRUTHS = {p.name.removesuffix(".truth.json"): load_truth(p) for p in LAB.glob("*.truth.json")}
LAB_NAMES = sorted(LAB_TRUTHS)


def _lab_bytes(name: str) -> bytes:
    return (LAB / f"{name}.ami").read_bytes()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(LAB_NAMES or ["-"]),
    st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=6),
)
def test_chunking_never_changes_a_lab_replay(name: str, sizes: list[int]) -> None:
    if name == "-":
        return  # no lab fixtures (a checkout without them)
    config = replay_config(LAB_TRUTHS[name])
    data = _lab_bytes(name)
    assert replay_calls(config, _chunks(data, sizes)) == replay_calls(config, [data])


_STAMP = re.compile(rb"^Timestamp: (\d+\.\d+)\r$", re.M)
_UID = re.compile(rb"(?<![\d.])(1\d{9})\.(\d+)(?![\d])")


def _stamped_events(name: str) -> list[tuple[float, bytes]]:
    """Each event of a lab transcript with its Timestamp (or the previous one's)."""
    out: list[tuple[float, bytes]] = []
    last = 0.0
    for raw in load_transcript(LAB / f"{name}.ami"):
        m = _STAMP.search(raw)
        last = float(m.group(1)) if m else last
        out.append((last, raw))
    return out


def _moved(events: list[tuple[float, bytes]], seconds: int, seq: int) -> list[tuple[float, bytes]]:
    """The same calls, ``seconds`` later and with fresh ids: Uniqueids, channel names and
    Cdr times by rewrite_ids, the Timestamp headers by the same seconds."""
    masked = [_STAMP.sub(b"Timestamp: @\r", raw) for _, raw in events]  # not an id
    epochs = [int(m.group(1)) for raw in masked for m in _UID.finditer(raw)]
    raws = rewrite_ids(masked, epoch=min(epochs) + seconds, seq_offset=seq)
    out = []
    for (t, _), raw in zip(events, raws, strict=True):
        out.append(
            (t + seconds, raw.replace(b"Timestamp: @\r", b"Timestamp: %.6f\r" % (t + seconds)))
        )
    return out


PAIRS = [
    (a, b)
    for a in LAB_NAMES
    for b in LAB_NAMES
    if a < b
    and LAB_TRUTHS[a].get("timestamps")
    and LAB_TRUTHS[b].get("timestamps")
    and LAB_TRUTHS[a]["timezone"] == LAB_TRUTHS[b]["timezone"]
    and LAB_TRUTHS[a]["recordings_dir"] == LAB_TRUTHS[b]["recordings_dir"]
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(PAIRS or [("-", "-")]),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=0, max_value=2**32),
)
def test_two_offices_calls_at_once_come_out_as_each_alone(
    pair: tuple[str, str], overlap: int, seed: int
) -> None:
    """Scenario B's calls played again while scenario A's are going on (its ids fresh, its
    times moved to start ``overlap`` seconds into A): every call of the one stream, its
    events interleaved by the PBX's clock (ties in any order), comes out exactly as when
    its scenario is replayed alone."""
    a, b = pair
    if a == "-":
        return
    config = replay_config(LAB_TRUTHS[a])
    first = _stamped_events(a)
    second = _stamped_events(b)
    shift = int(first[0][0] - second[0][0]) + overlap
    second = _moved(second, shift, 100_000)
    rng = random.Random(seed)
    merged = sorted(
        [(t, rng.random(), raw) for t, raw in first + second], key=lambda x: (x[0], x[1])
    )
    banner = b"Asterisk Call Manager/11.0.0\r\n"

    def alone(events: list[tuple[float, bytes]]) -> list[dict[str, Any]]:
        return replay_calls(config, [banner + b"".join(raw for _, raw in events)])

    want = {c["linkedid"]: c for c in alone(first) + alone(second)}
    got = {
        c["linkedid"]: c for c in replay_calls(config, [banner + b"".join(r for *_, r in merged)])
    }
    assert got == want
