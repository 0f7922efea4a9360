"""The bus bridge on every transport: garbage is logged and dropped, never fatal."""

from __future__ import annotations

import json
import logging

import pytest

from tests.support import Shop, on_systems
from tests.wire import Client, connected

# What arrives on the bus is a matter of the transport alone.
pytestmark = on_systems("sqlite-pubsub", "sqlite-streams", "sqlite-rabbitmq")

GARBAGE = [
    "not json",
    json.dumps({"delivery": "x", "event": {"name": "order.created"}}),
    json.dumps({"delivery": "y", "event": {"name": "no.such.event"}}),
]


async def inject(client: Client, raw: str) -> None:
    """Put raw bytes where order.created events travel, as a broken publisher would."""
    channels = client.channels
    if client.rabbitmq:
        await client.route(channels.routing_key("order.created"), raw)
    elif client.streams:
        await client.redis.xadd(channels.stream("order.created"), {"event": raw})
    else:
        assert await client.redis.publish(channels.event("order.created"), raw) == 1


async def test_garbage_on_the_bus_is_logged_and_dropped(
    shop: Shop, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with connected(Client, shop, redis_url) as client:
        with caplog.at_level(logging.WARNING):
            for raw in GARBAGE:
                await inject(client, raw)
            user, thing = await shop.new_user(), await shop.new_item()
            view = await shop.settle((await shop.buy(user, thing))["id"])
            dropped = [r for r in caplog.records if "bus: dropped" in r.getMessage()]

    assert view["status"] == "COMPLETED"
    assert len(dropped) == len(GARBAGE), [r.getMessage() for r in dropped]
