"""The journal's readers: a small pool of connections of their own, beside the writer.

WAL lets them read while the writer commits. Each read runs in a worker thread on one
connection and one snapshot (``BEGIN`` ... ``ROLLBACK``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import trio

from pinc.journal.opening import connect

T = TypeVar("T")
READERS: Final = 4


class Readers:
    """A small pool of read-only connections, one in use per worker thread."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._free: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._mutex = threading.Lock()
        self._closed = False
        # trio gives a token back only when its thread ends, also one it abandoned: at
        # most READERS reads run at once, even when their callers gave up waiting.
        self.limiter = trio.CapacityLimiter(READERS)

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._mutex:
            conn = self._free.pop() if self._free else None
        if conn is None:
            conn = connect(self.path, synchronous=self.synchronous)
            conn.execute("PRAGMA query_only = 1")
            with self._mutex:
                self._all.append(conn)
        try:
            conn.execute("BEGIN")  # one snapshot for everything fn reads
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")
        finally:
            with self._mutex:
                if self._closed:  # an abandoned read that outlived the journal
                    conn.close()
                else:
                    self._free.append(conn)

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            busy = [c for c in self._all if c not in self._free]
            for conn in self._free:
                conn.close()
            self._all = busy
            self._free.clear()
