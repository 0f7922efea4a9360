"""When Redis restarts or the database drops its connections, the system reconnects by itself,
and what was in flight still ends, with nothing created or destroyed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from sagashop.embedded_redis import EmbeddedRedis
from sagashop.transport import NEEDS_REDIS
from tests.support import (
    BUSES,
    POSTGRES_URL,
    SYSTEMS,
    Ledger,
    Shop,
    database,
    eventually,
    make_settings,
    on_bus,
    started_shop,
)


@pytest.fixture(params=[system for system in SYSTEMS if system.values[0][1] in NEEDS_REDIS])
async def own_redis_shop(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Shop, EmbeddedRedis]]:
    """The system on a Redis of this test's own, so that it can be stopped and started again
    (on RabbitMQ nothing uses Redis: tests/system/test_rabbitmq.py restarts the broker)."""
    backend, bus = request.param
    redis = EmbeddedRedis(tmp_path / "redis")
    redis.start()
    try:
        async with (
            database(backend) as url,
            on_bus(make_settings(redis.url, tmp_path / "data", url, bus=bus)) as settings,
            started_shop(settings) as shop,
        ):
            yield shop, redis
    finally:
        redis.stop()


async def test_after_a_redis_restart_everything_reconnects_and_nothing_is_lost(
    own_redis_shop: tuple[Shop, EmbeddedRedis], caplog: pytest.LogCaptureFixture
) -> None:
    shop, redis = own_redis_shop
    user, item = await shop.new_user(balance=10_000), await shop.new_item(price=1_000, stock=10)
    before = await shop.settle((await shop.buy(user, item))["id"])

    async def reconnects() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if "reconnected" in r.getMessage() or "reading again" in r.getMessage()
        ]

    with caplog.at_level(logging.INFO):
        await asyncio.to_thread(redis.restart)
        during = await shop.buy(user, item, quantity=2)  # accepted while the bus reconnects
        after = await shop.buy(user, item, quantity=3)
        ended = [await shop.settle(order["id"], within=30) for order in (during, after)]
        await eventually(reconnects, within=30)  # and the bus is back, saying so

    assert [view["status"] for view in (before, *ended)] == ["COMPLETED"] * 3
    assert (await shop.balance(user), await shop.stock(item)) == (4_000, 4)
    assert await shop.bag(user) == {item: 6}


@pytest.fixture(
    params=[
        pytest.param(
            bus.values[0], marks=[pytest.mark.postgres, *bus.marks], id=f"postgres-{bus.id}"
        )
        for bus in BUSES
    ]
)
async def postgres_shop(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Shop, str]]:
    async with database("postgres") as url:
        assert url is not None
        settings = make_settings(redis_url, tmp_path, url, bus=request.param, nudge_after=1.0)
        async with on_bus(settings), started_shop(settings) as shop:
            yield shop, url.rsplit("/", 1)[1]


async def checked_out(shop: Shop) -> int:
    """Pooled PostgreSQL connections not given back (Tortoise leaked one per failed BEGIN)."""
    assert shop.node is not None
    store = shop.node.store

    async def count() -> int:
        pools = [store.tortoise.db(service)._pool for service in store.urls]
        # Every holder not waiting in the pool's queue is checked out, connected or not.
        return sum(p._maxsize - p._queue.qsize() for p in pools if p is not None)

    return await shop.node.loop.spawn(count())


DROPPING = 5.0


async def _drop_connections(database_name: str) -> int:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        dropped = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database_name,
        )
    finally:
        await admin.close()
    return len(dropped)


async def test_dropped_database_connections_are_retried_not_lost(
    postgres_shop: tuple[Shop, str],
) -> None:
    shop, database_name = postgres_shop
    ledger = Ledger()
    users = [await ledger.add_user(shop, balance=20_000) for _ in range(10)]
    item = await ledger.add_item(shop, price=1_000, stock=100)

    buying = asyncio.gather(*(shop.buy(user, item) for user in users for _ in range(3)))
    dropped = 0
    # Every connection dropped every 50 ms, for as long as the purchases are being placed, up to
    # DROPPING seconds: a database that never holds a connection for long enough to commit would
    # rightly end the sagas at their deadline instead.
    stop_dropping = asyncio.get_running_loop().time() + DROPPING
    while not buying.done() and asyncio.get_running_loop().time() < stop_dropping:
        dropped += await _drop_connections(database_name)
        await asyncio.sleep(0.05)
    orders_placed = await buying
    orders = await shop.settle_users(users)

    assert dropped > 0
    assert await eventually(lambda: checked_out(shop), lambda n: n == 0) == 0, "none leaked"
    assert len(orders) == len(orders_placed) == 30
    reasons = [order["failureReason"] for order in orders if order["status"] != "COMPLETED"]
    assert {order["status"] for order in orders} == {"COMPLETED"}, reasons
    await ledger.assert_conserved(shop, orders)
    await eventually(lambda: shop.ok("GET", "/dead-letters"), lambda b: b["deadLetters"] == [])


@asynccontextmanager
async def _refusing_connections(database_name: str) -> AsyncIterator[None]:
    """The database down for this block: its connections dropped, new ones refused."""
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{database_name}" ALLOW_CONNECTIONS false')
        await _drop_connections(database_name)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{database_name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_a_read_while_the_database_is_down_is_a_503_and_works_again_after(
    postgres_shop: tuple[Shop, str], caplog: pytest.LogCaptureFixture
) -> None:
    shop, database_name = postgres_shop
    user = await shop.new_user()
    item = await shop.new_item(stock=5)
    order = await shop.buy(user, item)

    async def sweeps_told() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "sweep: the database is unreachable" in r.message]

    with caplog.at_level(logging.WARNING):
        async with _refusing_connections(database_name):
            status, body = await shop.call("GET", f"/orders/{order['id']}")
            assert status == 503, body
            assert body["error"]["code"] == "service_unavailable"
            assert "database" in body["error"]["message"]
            await eventually(sweeps_told)  # the periodic jobs say so in a line, and go on
        failed = [r for r in caplog.records if r.levelno >= logging.ERROR and "sweep" in r.message]
        assert failed == [], "no traceback for a database that is away"

    again = await eventually(
        lambda: shop.call("GET", f"/orders/{order['id']}"), lambda r: r[0] == 200
    )
    assert again[1]["id"] == order["id"]
