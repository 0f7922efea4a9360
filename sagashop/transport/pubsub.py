"""Events on Redis Pub/Sub (the default): every event name is a channel.

A process subscribes to the events its services handle and hands each service what arrived,
several events at once when they came together. Every delivery carries an id of its own and is
claimed before it is handled (see `claims`), so two processes running one service never both
take it. Pub/Sub keeps nothing: an event published while nobody listens is gone, which the
outbox's resending and the order deadline make good.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from sagashop.events import Event, EventName, MalformedEvent, new_id
from sagashop.transport.channels import Channels
from sagashop.transport.claims import DeliveryClaims
from sagashop.transport.protocol import Receive, reconnect_delay
from sagashop.transport.signing import MAX_SKEW, Signer

log = logging.getLogger(__name__)

MAX_READ = 256
"""Messages taken off the subscription before they are handed on together."""
STOP_LOOKS_EVERY = 0.5

Message = tuple[str, Any]  # (channel, data)


class Subscription:
    """A set of Pub/Sub channels, listened to until stopped: it subscribes again after Redis
    comes back, and hands `handle` what arrived, in batches of what was already waiting."""

    def __init__(
        self,
        redis: Redis,
        channels: Collection[str],
        handle: Callable[[list[Message]], Awaitable[None]],
        name: str,
    ) -> None:
        self._redis = redis
        self._channels = list(channels)
        self._handle = handle
        self._name = name
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribed when this returns: nothing published afterwards is missed."""
        self._pubsub = await self._subscribe()
        self._listener = asyncio.create_task(self._listen(), name=self._name)

    async def stop(self) -> None:
        """Cancel the listener until it has ended. Once is not always enough on Python 3.11: a
        cancel that lands as `get_message`'s own timeout expires is taken for that timeout
        (redis-py reads under `asyncio.timeout`), and the listener listens on; a process then
        hung on Ctrl-C, now and then, with its listeners still running."""
        while self._listener is not None and not self._listener.done():
            self._listener.cancel()
            await asyncio.wait([self._listener], timeout=STOP_LOOKS_EVERY)
        await _close_quietly(self._pubsub)

    async def _subscribe(self) -> PubSub:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(*self._channels)
        return pubsub

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe()
                    log.warning("%s: reconnected to Redis and subscribed again", self._name)
                failures = 0
                await self._pump(self._pubsub)
            except (RedisError, OSError) as error:
                delay = reconnect_delay(failures)
                failures += 1
                log.warning("%s: lost Redis (%s); reconnecting in %.1fs", self._name, error, delay)
                await _close_quietly(self._pubsub)
                self._pubsub = None
                await asyncio.sleep(delay)
            except Exception:
                # A handler's own checks drop a bad message; this is the last guard, so that
                # nothing a batch carries can end the listener (and with it the process's bus).
                log.exception("%s: a batch failed; listening on", self._name)

    async def _pump(self, pubsub: PubSub) -> None:
        while True:
            first = await pubsub.get_message(timeout=1.0)
            batch = [first] if first else []
            while batch and len(batch) < MAX_READ:
                more = await pubsub.get_message(timeout=0)
                if more is None:
                    break
                batch.append(more)
            messages = [(m["channel"], m["data"]) for m in batch if m["type"] == "message"]
            if messages:
                await self._handle(messages)


class PubSubEvents:
    """The Pub/Sub event transport (see the module's docstring)."""

    def __init__(
        self, redis: Redis, channels: Channels, claims: DeliveryClaims, signer: Signer
    ) -> None:
        self._redis = redis
        self._channels = channels
        self._claims = claims
        self._signer = signer
        self._receive: Receive | None = None
        self._consumers: dict[str, list[str]] = {}
        self._subscription: Subscription | None = None

    async def start(self, handled: Mapping[str, Collection[EventName]], receive: Receive) -> None:
        self._receive = receive
        for service, events in handled.items():
            for name in events:
                self._consumers.setdefault(self._channels.event(name), []).append(service)
        if self._consumers:
            self._subscription = Subscription(
                self._redis, self._consumers, self._hand_out, "pubsub-events"
            )
            await self._subscription.start()

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    async def close(self) -> None:
        """Nothing of its own: the Redis client is the node's."""

    async def publish(self, events: Sequence[Event]) -> list[int]:
        """How many processes were subscribed to each event's channel."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                channel = self._channels.event(event.name)
                pipe.publish(channel, self._signer.sign(channel, delivery(event)))
            return [int(n) for n in await pipe.execute()]

    async def _hand_out(self, messages: list[Message]) -> None:
        """Claim every (service, delivery) in one round trip; hand each service what it won."""
        wanted: list[tuple[str, str, Event]] = []  # (claim key, service, event)
        for channel, data in messages:
            opened = self._open(channel, data)
            if opened is None:
                continue
            event, delivery_id = opened
            for service in self._consumers.get(channel, ()):
                wanted.append((self._channels.claim(service, delivery_id), service, event))
        if not wanted:
            return
        won = await self._claims.claim([key for key, _, _ in wanted])
        batches: dict[str, list[Event]] = {}
        for (_, service, event), ok in zip(wanted, won, strict=True):
            if ok:
                batches.setdefault(service, []).append(event)
        assert self._receive is not None
        for service, events in batches.items():
            self._receive(service, events, None)

    def _open(self, channel: str, data: Any) -> tuple[Event, str] | None:
        """The event and delivery id of a signed, recent, valid message; else None, counted.
        Anything at all may go wrong with what a stranger sent (a RecursionError from nested
        brackets, say): it costs that message only."""
        try:
            body = json.loads(self._signer.open(channel, data, MAX_SKEW))
            event = Event.from_dict(body["event"])
            if self._channels.event(event.name) != channel:
                raise MalformedEvent(f"a {event.name} event on another event's channel")
            return event, _delivery_id(body["delivery"])
        except Exception as error:
            self._signer.reject(channel, error, data)
            return None


def delivery(event: Event) -> str:
    """An event as it travels: with a delivery id of its own, so each publish is claimed anew."""
    return json.dumps({"delivery": new_id(), "event": event.to_dict()}, separators=(",", ":"))


def _delivery_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise MalformedEvent("a delivery id is a short string")
    return value


async def _close_quietly(pubsub: PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(RedisError, OSError):
            await pubsub.aclose()
