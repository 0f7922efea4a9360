"""The bus bridge on either transport: garbage is logged and dropped, never fatal."""

from __future__ import annotations

import json
import logging

import pytest
from redis.asyncio import Redis

from sagashop.transport import Channels
from tests.support import Shop, on_systems

# What arrives on the bus is a matter of the transport alone.
pytestmark = on_systems("sqlite-pubsub", "sqlite-streams")

GARBAGE = [
    "not json",
    json.dumps({"delivery": "x", "event": {"name": "order.created"}}),
    json.dumps({"delivery": "y", "event": {"name": "no.such.event"}}),
]


async def inject(redis: Redis, shop: Shop, raw: str) -> None:
    """Put raw bytes where order.created events travel, as a broken publisher would."""
    assert shop.node is not None
    settings = shop.node.settings
    channels = Channels(settings.namespace)
    if settings.bus == "streams":
        await redis.xadd(channels.stream("order.created"), {"event": raw})
    else:
        assert await redis.publish(channels.event("order.created"), raw) == 1


async def test_garbage_on_the_bus_is_logged_and_dropped(
    shop: Shop, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        with caplog.at_level(logging.WARNING):
            for raw in GARBAGE:
                await inject(redis, shop, raw)
            user, thing = await shop.new_user(), await shop.new_item()
            view = await shop.settle((await shop.buy(user, thing))["id"])
            dropped = [r for r in caplog.records if "bus: dropped" in r.getMessage()]
    finally:
        await redis.aclose()

    assert view["status"] == "COMPLETED"
    assert len(dropped) == len(GARBAGE), [r.getMessage() for r in dropped]
