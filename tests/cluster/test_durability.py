"""Nothing emitted is lost between a step's commit and its delivery, even across a crash.

With Pub/Sub an event that no process heard stays unpublished in its step log and the relay
sends it again, also from a restarted process; with Streams the event waits in its stream, and
an entry a dead consumer took but never acknowledged is taken over by a live one; with RabbitMQ
it waits in its service's queue, and a delivery a dead consumer never acknowledged goes back to
the queue for a live one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from sagashop.config import Settings
from sagashop.events import Event
from sagashop.transport import Channels
from sagashop.transport.protocol import Done
from sagashop.transport.rabbitmq import Broker, RabbitEvents
from sagashop.transport.signing import Signer
from tests.cluster.processes import cluster
from tests.support import Shop, eventually, make_settings, on_bus, started_shop, states
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


KEEPING = [
    pytest.param("streams", id="streams"),
    pytest.param("rabbitmq", id="rabbitmq", marks=pytest.mark.rabbitmq),
]
"""The buses that keep an event until a consumer acknowledges it."""
CHARGE = trigger("payment", "charge")
Taken = Callable[[], Awaitable[str]]
"""What a dead consumer took, as text."""


@pytest.fixture(params=KEEPING)
async def keeping_shop(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[Shop]:
    """Every service but payment in this process, on a bus that keeps events."""
    settings = make_settings(
        redis_url,
        tmp_path / "data",
        None,
        bus=request.param,
        services=tuple(WITHOUT_PAYMENT.split(",")),
        reclaim_idle=1.0,
        **PATIENT,
    )
    async with on_bus(settings), started_shop(settings) as shop:
        yield shop


@asynccontextmanager
async def dead_stream_consumer(settings: Settings, redis_url: str) -> AsyncIterator[Taken]:
    """A payment process that reads the entries of the charge's stream and, at the end of the
    block, is gone without having acknowledged them."""
    stream = Channels(settings.namespace).stream(CHARGE)
    redis = Redis.from_url(redis_url, decode_responses=True)

    async def taken() -> str:
        read = await redis.xreadgroup("payment", "ghost", {stream: ">"}, count=10)
        return str(read) if read else ""

    try:
        await redis.xgroup_create(stream, "payment", id="0", mkstream=True)
        yield taken
    finally:
        await redis.aclose()


@asynccontextmanager
async def dead_queue_consumer(settings: Settings, redis_url: str) -> AsyncIterator[Taken]:
    """A payment process that takes the charges from the payment service's queue, never
    acknowledges them and, at the end of the block, is gone: its connection closed."""
    assert settings.amqp_url is not None
    assert settings.bus_keys is not None
    namespace = settings.namespace
    signer = Signer(settings.bus_keys, namespace)
    broker = Broker(settings.amqp_url, f"sagashop {namespace} ghost")
    ghost = RabbitEvents(broker, Channels(namespace), signer)
    events: list[Event] = []
    held: list[Done] = []

    def receive(service: str, batch: list[Event], done: Done | None) -> None:
        assert done is not None
        events.extend(batch)
        held.append(done)  # a step that never commits

    async def taken() -> str:
        return " ".join(event.order_id for event in events)

    await ghost.start({"payment": [CHARGE]}, receive)
    try:
        yield taken
    finally:
        await ghost.close()  # gone: what it held goes back to the queue
        for done in held:  # too late to acknowledge: the channel is gone
            done()
        await ghost.stop()


DEAD_CONSUMERS = {"streams": dead_stream_consumer, "rabbitmq": dead_queue_consumer}


async def test_entries_a_dead_consumer_left_unacknowledged_are_taken_over(
    keeping_shop: Shop, redis_url: str, tmp_path: Path
) -> None:
    shop = keeping_shop
    assert shop.node is not None
    settings = shop.node.settings
    async with DEAD_CONSUMERS[settings.bus](settings, redis_url) as taken:
        user, item = await shop.new_user(), await shop.new_item()
        order = await shop.buy(user, item)
        took = await eventually(taken)  # a payment process that took the charge, then died
    assert order["id"] in took

    async with cluster([("payment", "payment")], replace(settings, services=()), tmp_path):
        view = await shop.settle(order["id"], within=40)

    assert view["status"] == "COMPLETED"
    assert view["nudges"] == 0
