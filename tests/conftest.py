"""Fixtures that start the real system: a real Redis (an embedded redis-server unless REDIS_URL
is set) and real databases (SQLite files, and PostgreSQL where it can be reached).

A bare laptop has no PostgreSQL: its tests skip there, saying why. `REQUIRE_SERVICES=1` (set by
CI, whose machine has PostgreSQL) turns that skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sagashop.embedded_redis import embedded_redis
from tests.support import BACKENDS, Shop, database, make_settings, started_shop


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
async def shop(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shop]:
    """The whole system in this process, once per test module and backend."""
    data_dir: Path = tmp_path_factory.mktemp("data")
    async with (
        database(request.param) as database_url,
        started_shop(make_settings(redis_url, data_dir, database_url)) as started,
    ):
        yield started
