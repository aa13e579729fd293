from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.web.harness import Env, start_env


@pytest.fixture
async def env(nursery: trio.Nursery, tmp_path: Path) -> Env:
    with trio.fail_after(15):
        return await start_env(nursery, tmp_path)


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=env.base, timeout=10) as c:
        yield c
