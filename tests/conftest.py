"""Fixtures that start the real system: a real Redis (an embedded redis-server unless REDIS_URL
is set), real databases (SQLite files, and PostgreSQL where it can be reached) and, for
`--bus rabbitmq`, a real RabbitMQ where it can be reached.

A bare laptop has no PostgreSQL or RabbitMQ: their tests skip there, saying why.
`REQUIRE_SERVICES=1` (set by CI, whose machine has both) turns that skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sagashop.config import Settings
from sagashop.embedded_redis import embedded_redis
from tests.support import SYSTEMS, Shop, database, make_settings, on_bus, started_shop


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def system_settings() -> dict[str, Any]:
    """Settings a test module wants for its system; a module overrides this fixture."""
    return {}


@pytest.fixture(scope="module", params=SYSTEMS)
async def shop(
    request: pytest.FixtureRequest,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    system_settings: dict[str, Any],
) -> AsyncIterator[Shop]:
    """The whole system in this process, once per test module, database and bus transport."""
    backend, bus = request.param
    data_dir: Path = tmp_path_factory.mktemp("data")
    async with (
        database(backend) as url,
        on_bus(make_settings(redis_url, data_dir, url, bus=bus, **system_settings)) as settings,
        started_shop(settings) as started,
    ):
        yield started


@pytest.fixture(params=SYSTEMS)
async def cluster_settings(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[Settings]:
    """What the `run.py` processes of one test share: a Redis namespace, a data directory, a
    fresh database and a bus transport."""
    backend, bus = request.param
    async with (
        database(backend) as url,
        on_bus(make_settings(redis_url, tmp_path / "data", url, bus=bus)) as settings,
    ):
        yield settings
