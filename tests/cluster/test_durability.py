"""Nothing emitted is lost between a step's commit and its delivery, even across a crash.

With Pub/Sub an event that no process heard stays unpublished in its step log and the relay
sends it again, also from a restarted process; with Streams the event waits in its stream, and
an entry a dead consumer took but never acknowledged is taken over by a live one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from sagashop.config import Settings
from sagashop.transport import Channels
from tests.cluster.processes import cluster
from tests.support import Shop, eventually, make_settings, started_shop, states
from tests.topology import trigger

WITHOUT_PAYMENT = "order,user,inventory,item,notification"
PATIENT = {"nudge_after": 600.0, "saga_deadline": 1200.0}
"""The deadline's nudges would heal these losses too; they must not get the chance."""


async def test_an_event_nobody_heard_is_delivered_after_a_crash(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(cluster_settings, **PATIENT)
    async with cluster([("first", WITHOUT_PAYMENT)], settings, tmp_path) as [first]:
        user, item = await first.shop.new_user(), await first.shop.new_item()
        order = await first.shop.buy(user, item)
        stuck = await eventually(
            lambda: first.shop.order(order["id"]), lambda view: states(view)["item"] == "reserved"
        )
        first.kill()  # item.reserved was emitted, and nobody runs payment to hear it

    assert stuck["unavailable"] == {"payment": "no process runs the payment service"}

    layout = [("again", WITHOUT_PAYMENT), ("payment", "payment")]
    async with cluster(layout, settings, tmp_path) as [again, _payment]:
        view = await again.shop.settle(order["id"], within=30)

    assert view["status"] == "COMPLETED"
    assert view["nudges"] == 0, "delivered by the outbox or the stream, not by a nudge"


@pytest.fixture
async def streams_shop(redis_url: str, tmp_path: Path) -> AsyncIterator[Shop]:
    """Every service but payment in this process, on Streams."""
    settings = make_settings(
        redis_url,
        tmp_path / "data",
        None,
        bus="streams",
        services=tuple(WITHOUT_PAYMENT.split(",")),
        reclaim_idle=1.0,
        **PATIENT,
    )
    async with started_shop(settings) as shop:
        yield shop


async def test_entries_a_dead_consumer_left_unacknowledged_are_taken_over(
    streams_shop: Shop, redis_url: str, tmp_path: Path
) -> None:
    shop = streams_shop
    assert shop.node is not None
    settings = shop.node.settings
    stream = Channels(settings.namespace).stream(trigger("payment", "charge"))
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        await redis.xgroup_create(stream, "payment", id="0", mkstream=True)
        user, item = await shop.new_user(), await shop.new_item()
        order = await shop.buy(user, item)
        taken = await eventually(  # a payment process that read the entry, then died
            lambda: redis.xreadgroup("payment", "ghost", {stream: ">"}, count=10)
        )
    finally:
        await redis.aclose()
    assert order["id"] in str(taken)

    async with cluster([("payment", "payment")], replace(settings, services=()), tmp_path):
        view = await shop.settle(order["id"], within=40)

    assert view["status"] == "COMPLETED"
    assert view["nudges"] == 0
