"""``pinc replay``: raw AMI transcripts through the tracker, calls out as JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from pinc.ami.protocol import AMIConnection, Message, ProtocolError
from pinc.calls.model import CallChange
from pinc.calls.tracker import Tracker
from pinc.config import Config

CHUNK = 65536


def messages_of(chunks: Iterable[bytes]) -> Iterator[Message]:
    """The AMI messages in a byte stream (banner included or not), however it is split."""
    conn: AMIConnection | None = None
    for chunk in chunks:
        if conn is None:
            conn = AMIConnection(expect_banner=chunk.startswith(b"Asterisk Call Manager/"))
        # Feed at most CHUNK bytes at a time: the parser searches its whole buffer for a
        # terminator, so one huge feed would cost time quadratic in its size.
        for start in range(0, len(chunk), CHUNK):
            conn.feed(chunk[start : start + CHUNK])
            for msg in conn.messages():
                if isinstance(msg, Message):
                    yield msg


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def replay_changes(config: Config, chunks: Iterable[bytes]) -> Iterator[CallChange]:
    """Every CallChange the tracker makes from one transcript, in order, then the flush."""
    tracker = Tracker(config.pbx)
    for msg in messages_of(chunks):
        yield from tracker.feed(msg)
    yield from tracker.flush()


def replay_calls(config: Config, chunks: Iterable[bytes]) -> list[dict[str, object]]:
    """The ended calls of one transcript in the order they started (merged calls left out)."""
    ended: dict[str, dict[str, object]] = {}
    order: list[str] = []
    for change in replay_changes(config, chunks):
        if change.kind == "call.started" and change.call_id not in ended:
            order.append(change.call_id)
        if change.kind == "call.ended":
            if change.data.get("merged_into"):
                ended.pop(change.call_id, None)
                continue
            ended[change.call_id] = change.call
    calls = [ended[cid] for cid in order if cid in ended]
    calls.sort(key=lambda c: (str(c.get("started_at") or ""), str(c.get("id"))))
    return calls


def replay_files(config: Config, paths: list[Path], *, changes: bool = False) -> Iterator[str]:
    """JSON lines for ``pinc replay``: one call per line (or one CallChange with --changes)."""
    for path in paths:
        try:
            if changes:
                for change in replay_changes(config, _read_chunks(path)):
                    yield json.dumps(change.to_dict(), ensure_ascii=False)
            else:
                for call in replay_calls(config, _read_chunks(path)):
                    yield json.dumps(call, ensure_ascii=False)
        except ProtocolError as exc:
            raise ReplayError(f"{path}: not a valid AMI transcript: {exc}") from exc


class ReplayError(Exception):
    """A transcript could not be read."""
