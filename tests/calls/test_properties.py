"""Same calls whatever the chunking, and whatever the interleaving of unrelated calls."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinc.ami.protocol import AMIConnection, Message
from pinc.calls.cdr import cdr_time
from pinc.calls.names import epoch_of
from pinc.calls.replay import replay_calls
from pinc.config import Config, load_config

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
