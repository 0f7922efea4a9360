"""The bus as another process sees it: put events on it, lose some; and what the node sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractConnection
from pamqp.commands import Basic
from redis.asyncio import Redis

from sagashop.bootstrap import Node
from sagashop.events import Event, EventName, encode
from sagashop.transport import Channels
from sagashop.transport.faults import Faults
from sagashop.transport.pubsub import delivery
from sagashop.transport.signing import Signer
from tests.support import Shop, amqp, eventually


@asynccontextmanager
async def losing(shop: Shop, *names: EventName) -> AsyncIterator[None]:
    """Every event of these names published while inside is lost (the bus's fault switch)."""
    assert shop.node is not None
    shop.node.events.faults = Faults(drop=1.0, only=frozenset(names))
    try:
        yield
    finally:
        await shop.node.relay.flush()  # what was emitted inside is published (and lost) first
        shop.node.events.faults = Faults()


@dataclass
class Client:
    """Another client of the shop's Redis (and broker, on RabbitMQ): where the running node's
    messages travel, and how."""

    shop: Shop
    redis: Redis
    broker: AbstractConnection | None = None

    @property
    def node(self) -> Node:
        assert self.shop.node is not None
        return self.shop.node

    @property
    def channels(self) -> Channels:
        return Channels(self.node.settings.namespace)

    @property
    def streams(self) -> bool:
        return self.node.settings.bus == "streams"

    @property
    def rabbitmq(self) -> bool:
        return self.broker is not None

    async def route(self, key: str, body: str | bytes, exchange: str | None = None) -> bool:
        """Publish `body` on an exchange (the events', unless named) under routing key `key`,
        as any client of the broker can; whether a queue took it."""
        assert self.broker is not None
        channel = await self.broker.channel(publisher_confirms=True)
        try:
            to = await channel.get_exchange(exchange or self.channels.exchange(), ensure=False)
            message = aio_pika.Message(body.encode() if isinstance(body, str) else body)
            return isinstance(await to.publish(message, key, mandatory=True), Basic.Ack)
        finally:
            await channel.close()


C = TypeVar("C", bound=Client)


@asynccontextmanager
async def connected(kind: type[C], shop: Shop, redis_url: str) -> AsyncIterator[C]:
    """A client of this kind on connections of its own, closed on the way out."""
    assert shop.node is not None
    async with AsyncExitStack() as stack:
        redis = Redis.from_url(redis_url, decode_responses=True)
        stack.push_async_callback(redis.aclose)
        broker = None
        if shop.node.settings.bus == "rabbitmq":
            broker = await stack.enter_async_context(amqp())
        yield kind(shop, redis, broker)


def bus(shop: Shop, redis_url: str) -> AbstractAsyncContextManager[Wire]:
    return connected(Wire, shop, redis_url)


@dataclass
class Wire(Client):
    """The bus as another process sees it: puts events on it, and reads what went by."""

    @property
    def signer(self) -> Signer:
        """The node's own keys: what this wire sends is signed as a process of the system would."""
        return self.node.signer

    async def emit(self, event: Event) -> None:
        """One delivery of `event`; calling it twice delivers it twice."""
        if self.rabbitmq:
            key = self.channels.routing_key(event.name)
            await self.route(key, self.signer.sign(key, encode(event)))
        elif self.streams:
            stream = self.channels.stream(event.name)
            await self.redis.xadd(stream, {"event": self.signer.sign(stream, encode(event))})
        else:
            channel = self.channels.event(event.name)
            await self.redis.publish(channel, self.signer.sign(channel, delivery(event)))

    @asynccontextmanager
    async def watching(self, name: EventName) -> AsyncIterator[Watch]:
        """Every `name` event the node sends while inside, in order, however it goes (on the
        bus, or to a service of its own: see `Relay`)."""
        watch = Watch()
        stop = self.node.relay.watch(lambda sent: watch.add(sent, name))
        try:
            yield watch
        finally:
            stop()


@dataclass
class Watch:
    events: list[Event] = field(default_factory=list)

    def add(self, sent: Sequence[Event], name: EventName) -> None:
        self.events += [event for event in sent if event.name == name]

    async def seen(self) -> list[Event]:
        return list(self.events)


async def published(watch: Watch, order_id: str, count: int) -> list[Event]:
    async def of_order() -> list[Event]:
        return [event for event in await watch.seen() if event.order_id == order_id]

    return await eventually(of_order, lambda events: len(events) >= count, within=15)
