"""The store tier: every service's steps against a real database, SQLite and PostgreSQL, with no
Redis, no actors and no HTTP in the way.

One store per test module and database (only one may be open in a process); tests share it,
each with users, items and orders of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sagashop.actors import SERVICES
from sagashop.config import SQLITE_PRAGMAS
from sagashop.store import Store
from tests.store.harness import Steps
from tests.support import BACKENDS, database


@pytest.fixture(scope="module", params=BACKENDS)
async def steps(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Steps]:
    backend: str = request.param
    async with database(backend) as url:
        data_dir = tmp_path_factory.mktemp("store")
        store = Store(
            {
                service.name: url or f"sqlite://{data_dir / service.name}.sqlite3?{SQLITE_PRAGMAS}"
                for service in SERVICES
            },
            {service.name: service.models for service in SERVICES},
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.create_task(store.open(), context=store.context())
            yield Steps(store, backend)
        finally:
            await loop.create_task(store.close(), context=store.context())
