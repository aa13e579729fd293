"""Shared pytest fixtures: where the recorded fixtures live, and a fake Asterisk factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import trio

from pinc.sim.amiserver import AmiSimServer, EventItem

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
async def ami_server(
    nursery: trio.Nursery,
) -> AsyncIterator[Callable[..., Awaitable[AmiSimServer]]]:
    """``server = await ami_server(events, **kwargs)``: a started AmiSimServer
    (``server.port`` is bound), stopped with the test."""

    async def start(events: Iterable[EventItem] = (), **kwargs: Any) -> AmiSimServer:
        server = AmiSimServer(events, **kwargs)
        await nursery.start(server.run)
        return server

    yield start


def pytest_addoption(parser: pytest.Parser) -> None:
    # Long soaks (tests/reliability) run only when asked; the marker is in pyproject.toml.
    parser.addoption("--run-slow", action="store_true", default=False, help="run slow soaks")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow soak: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
