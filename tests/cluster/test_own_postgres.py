"""The chaos run's own PostgreSQL (`OwnPostgres`): restarted with an immediate stop, as after a
crash, it keeps what was committed (its write-ahead log replayed), a session held across the
restart is lost as the store sees a database away for a while, and a new one works."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from sagashop.chaos.postgres import START_TIMEOUT, OwnPostgres
from sagashop.store.errors import StoreUnavailable, translated
from tests.support import own_postgres_or_skip

pytestmark = pytest.mark.postgres


async def test_an_immediate_restart_keeps_what_was_committed_and_ends_the_sessions(
    tmp_path: Path,
) -> None:
    own_postgres_or_skip()
    log_path = tmp_path / "postgres.log"
    server = OwnPostgres(log_path)
    await asyncio.to_thread(server.start)
    try:
        held = await asyncpg.connect(server.url)
        await held.execute("CREATE TABLE kept (n integer); INSERT INTO kept VALUES (42)")
        down = await asyncio.to_thread(server.restart)

        with pytest.raises(StoreUnavailable):
            await translated(held.fetchval("SELECT n FROM kept"))
        held.terminate()
        fresh = await asyncpg.connect(server.url)
        try:
            assert await fresh.fetchval("SELECT n FROM kept") == 42
        finally:
            await fresh.close()
    finally:
        await asyncio.to_thread(server.stop)

    assert 0 < down < START_TIMEOUT
    assert "automatic recovery in progress" in log_path.read_text()
