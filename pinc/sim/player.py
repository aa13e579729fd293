"""Plays recorded scenarios into the simulated PBX as fresh calls, a few at a time."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from pinc.sim.scenarios import Scenario, freshen, recording_names, write_tone

log = logging.getLogger(__name__)

PAUSE_SECONDS = (1.0, 4.0)  # between two calls of one line, before --speed
MAX_RECORDINGS = 100  # fake recording files kept in the demo's recordings directory


class Player:
    """Plays scenarios into the simulated PBX, ``concurrency`` calls at a time."""

    def __init__(
        self,
        sim: Any,
        scenarios: list[Scenario],
        *,
        speed: float,
        max_calls: int,
        concurrency: int,
        recordings: Path,
        rng: random.Random,
    ) -> None:
        self.sim = sim
        self.scenarios = scenarios
        self.speed = max(speed, 0.01)
        self.max_calls = max_calls
        self.concurrency = max(1, concurrency)
        self.recordings = recordings
        self.rng = rng
        self.started = 0
        self.finished = 0
        self._order = self._cycle()
        self._recording_files: list[Path] = []

    def _cycle(self) -> Iterator[Scenario]:
        """Every scenario once in a shuffled round, round after round."""
        for _ in itertools.count():
            batch = list(self.scenarios)
            self.rng.shuffle(batch)
            yield from batch

    def _claim(self) -> tuple[int, Scenario] | None:
        if self.max_calls and self.started >= self.max_calls:
            return None
        index = self.started
        self.started += 1
        return index, next(self._order)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Play until ``max_calls`` scenarios were fed (forever when 0)."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            for line in range(self.concurrency):
                nursery.start_soon(self._line, line)

    async def _line(self, line: int) -> None:
        await trio.sleep(line * self.rng.uniform(*PAUSE_SECONDS) / self.speed)
        while (claimed := self._claim()) is not None:
            index, scenario = claimed
            await self._play(index, scenario)
            self.finished += 1
            await trio.sleep(self.rng.uniform(*PAUSE_SECONDS) / self.speed)

    async def _play(self, index: int, scenario: Scenario) -> None:
        events = freshen(scenario, index)
        self._make_recordings(events)
        log.debug("demo: playing %s as call #%d", scenario.name, index)
        gap = scenario.seconds / self.speed / max(len(events), 1)
        for ev in events:
            self.sim.feed([ev])
            _trim_replayed(self.sim)
            await trio.sleep(gap)

    def _make_recordings(self, events: list[bytes]) -> None:
        for name in sorted(recording_names(events)):
            path = self.recordings / name
            if path.exists():
                continue
            try:
                write_tone(path)
            except OSError as exc:
                log.warning("demo: cannot write %s: %s", path, exc)
                continue
            self._recording_files.append(path)
        while len(self._recording_files) > MAX_RECORDINGS:
            self._recording_files.pop(0).unlink(missing_ok=True)


def _trim_replayed(sim: Any) -> None:
    """Forget events every client has been sent, so an endless demo keeps flat memory.

    The simulator keeps its whole replay log (tests inspect it); the demo plays forever.
    """
    log_ = getattr(sim, "_log", None)
    done = getattr(sim, "replayed", 0)
    if isinstance(log_, list) and done > 1000:
        del log_[:done]
        sim.replayed = 0
