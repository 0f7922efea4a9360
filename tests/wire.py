"""The bus as another process sees it: put events on it, watch what goes by, lose some."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from sagashop.events import Event, EventName, decode, encode
from sagashop.transport import Channels
from sagashop.transport.faults import Faults
from sagashop.transport.pubsub import delivery
from sagashop.transport.signing import Signer
from tests.support import Shop, eventually


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


@asynccontextmanager
async def bus(shop: Shop, redis_url: str) -> AsyncIterator[Wire]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield Wire(shop, redis)
    finally:
        await redis.aclose()


@dataclass
class Wire:
    """The bus as another process sees it: puts events on it, and reads what went by."""

    shop: Shop
    redis: Redis

    @property
    def _channels(self) -> Channels:
        assert self.shop.node is not None
        return Channels(self.shop.node.settings.namespace)

    @property
    def signer(self) -> Signer:
        """The node's own keys: what this wire sends is signed as a process of the system would."""
        assert self.shop.node is not None
        return self.shop.node.signer

    @property
    def _streams(self) -> bool:
        assert self.shop.node is not None
        return self.shop.node.settings.bus == "streams"

    async def emit(self, event: Event) -> None:
        """One delivery of `event`; calling it twice delivers it twice."""
        if self._streams:
            stream = self._channels.stream(event.name)
            await self.redis.xadd(stream, {"event": self.signer.sign(stream, encode(event))})
        else:
            channel = self._channels.event(event.name)
            await self.redis.publish(channel, self.signer.sign(channel, delivery(event)))

    @asynccontextmanager
    async def watching(self, name: EventName) -> AsyncIterator[Watch]:
        """Every `name` event published while inside, in order."""
        if self._streams:
            stream = self._channels.stream(name)
            last = await self.redis.xrevrange(stream, count=1)
            yield StreamWatch(self.redis, stream, last[0][0] if last else "0-0", self.signer)
            return
        watch = ChannelWatch(self.signer, self._channels.event(name))
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self._channels.event(name))
        listener = asyncio.create_task(watch.collect(pubsub))
        try:
            yield watch
        finally:
            listener.cancel()
            await pubsub.aclose()


class Watch(Protocol):
    async def seen(self) -> list[Event]: ...


@dataclass
class StreamWatch:
    redis: Redis
    stream: str
    after: str
    signer: Signer

    async def seen(self) -> list[Event]:
        entries = await self.redis.xrange(self.stream, min=f"({self.after}")
        return [decode(self.signer.open(self.stream, fields["event"])) for _id, fields in entries]


@dataclass
class ChannelWatch:
    signer: Signer
    channel: str
    events: list[Event] = field(default_factory=list)

    async def collect(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                body = json.loads(self.signer.open(self.channel, message["data"]))
                self.events.append(Event.from_dict(body["event"]))

    async def seen(self) -> list[Event]:
        return list(self.events)


async def published(watch: Watch, order_id: str, count: int) -> list[Event]:
    async def of_order() -> list[Event]:
        return [event for event in await watch.seen() if event.order_id == order_id]

    return await eventually(of_order, lambda events: len(events) >= count, within=15)
