"""How a process's requests, replies and monitor messages travel (events go by an
`EventTransport`): over Redis Pub/Sub, or over RabbitMQ when it carries the events
(`rabbitmq.BrokerLink`), so that a system on RabbitMQ needs no Redis.

A `Link` sends signed texts to named channels and hands a listener what arrived on the channels
it listens to. A channel listened to as *shared* (a service's requests) has each message taken
by one of its listeners: on Redis every listener hears it and a delivery claim picks the one
that answers (`claim`); on a broker one queue feeds them all, and every claim is won.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sagashop.transport.claims import DeliveryClaims
from sagashop.transport.pubsub import Message, Subscription

LINK_AWAY = (RedisError, AMQPError, ChannelInvalidStateError, OSError)
"""What a link that went away (Redis, the broker, the network) raises."""
Arrived = Callable[[list[Message]], Awaitable[None]]
"""Takes what arrived together: (channel, wire) pairs, in arrival order."""


class Listening(Protocol):
    async def stop(self) -> None:
        """Listen no more."""


class Link(Protocol):
    async def listen(
        self, channels: Collection[str], arrived: Arrived, name: str, shared: Collection[str] = ()
    ) -> Listening:
        """Hand `arrived` what comes on `channels` until stopped; listening when this returns."""

    async def send(self, channel: str, wires: Sequence[str]) -> int:
        """Send the wires, in order, in one round trip; how many listeners took the first (0:
        nobody listens, the message is gone)."""

    async def claim(self, keys: Sequence[str]) -> list[bool]:
        """Which of these shared messages (by claim key) this process takes."""

    async def ping(self) -> Any:
        """Raise if the link is away (for `/readyz`)."""


class RedisLink:
    """The link over Redis Pub/Sub; shared messages are claimed (see `claims`)."""

    def __init__(self, redis: Redis, claims: DeliveryClaims) -> None:
        self._redis = redis
        self._claims = claims

    async def listen(
        self, channels: Collection[str], arrived: Arrived, name: str, shared: Collection[str] = ()
    ) -> Listening:
        subscription = Subscription(self._redis, channels, arrived, name)
        await subscription.start()
        return subscription

    async def send(self, channel: str, wires: Sequence[str]) -> int:
        async with self._redis.pipeline(transaction=False) as pipe:
            for wire in wires:
                pipe.publish(channel, wire)
            received = await pipe.execute()
        return int(received[0])

    async def claim(self, keys: Sequence[str]) -> list[bool]:
        return await self._claims.claim(list(keys))

    async def ping(self) -> Any:
        return await self._redis.ping()
