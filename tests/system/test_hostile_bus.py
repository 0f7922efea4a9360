"""Someone who can reach Redis (or RabbitMQ) but holds no bus key: whatever they put on the bus
is dropped and counted, changes nothing, and stops no listener (a key rotation between
processes is in tests/cluster/test_rotation.py)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sagashop.actors import SERVICE_NAMES
from sagashop.events import Event, EventName, encode, new_id
from sagashop.names import Request
from sagashop.transport.pubsub import delivery
from sagashop.transport.signing import BusKeys, Signer
from tests.support import (
    TEST_BUS_KEYS,
    Shop,
    eventually,
    on_systems,
    waiting,
)
from tests.wire import Client, connected

# What reaches a listener is a matter of the transport; the database plays no part.
pytestmark = on_systems("sqlite-pubsub", "sqlite-streams", "sqlite-rabbitmq")

FORGED_AMOUNT = -(10**9)
HARMLESS = {
    f'"amount":{FORGED_AMOUNT}': '"amount":1000',
    '"failure_rate": 1.0': '"failure_rate": 0.0',
    f'"balance": {10**12}': '"balance": 1',
}
"""What the tampered messages were, when signed: the harmful part, and what it replaced."""
Forge = Callable[[str, str], str | bytes]
"""(channel, honest body) -> what the attacker puts on the wire."""


def signer(namespace: str, keys: BusKeys = TEST_BUS_KEYS, age: float = 0.0) -> Signer:
    return Signer(keys, namespace, clock=lambda: time.time() - age)


def forgeries(namespace: str, pubsub: bool) -> dict[str, Forge]:
    """Each way of attacking one channel, by name."""
    honest = signer(namespace)
    wrong_secret = signer(namespace, BusKeys.parse("test:not-the-secret-the-shop-uses"))
    unknown_key = signer(namespace, BusKeys.parse("evil:a-key-nobody-configured-here"))
    noise = random.Random(10)  # the same bytes every run

    def tampered(channel: str, body: str) -> str:
        """A harmless message, signed; then its body swapped for the harmful one."""
        harmless = body
        for harmful, innocent in HARMLESS.items():
            harmless = harmless.replace(harmful, innocent)
        assert harmless != body, "nothing to tamper with"
        return honest.sign(channel, harmless).removesuffix(harmless) + body

    chosen: dict[str, Forge] = {
        "unsigned": lambda channel, body: body,
        "wrong secret": wrong_secret.sign,
        "unknown key": unknown_key.sign,
        "tampered": tampered,
        "depth bomb": lambda channel, body: "[" * 100_000,
        "signed depth bomb": lambda channel, body: honest.sign(channel, "[" * 60_000),
        "random bytes": lambda channel, body: noise.randbytes(512),
    }
    if pubsub:  # a stream entry may wait long, so only Pub/Sub judges a message by its age
        chosen["replayed an hour later"] = signer(namespace, age=3600).sign
    return chosen


@dataclass
class Attacker(Client):
    """A client of the shop's Redis (and broker), without its keys."""

    async def put_event(self, name: EventName, forge: Forge, event: Event) -> int:
        """Put a forged `name` event where events travel; answer how many readers take it."""
        if self.rabbitmq:
            key = self.channels.routing_key(name)
            await self.route(key, forge(key, encode(event)))
            return 1  # the one queue bound for it: each event has one service
        if self.streams:
            stream = self.channels.stream(name)
            await self.redis.xadd(stream, {"event": forge(stream, encode(event))})
            return len(await self.redis.xinfo_groups(stream))
        channel = self.channels.event(name)
        return int(await self.redis.publish(channel, forge(channel, delivery(event))))

    async def put(self, channel: str, wire: str | bytes) -> int:
        """Put a message where requests, replies and the monitor travel (the link)."""
        if self.rabbitmq:
            return int(await self.route(channel, wire, self.channels.link()))
        return int(await self.redis.publish(channel, wire))

    @asynccontextmanager
    async def replies(self, channel: str) -> AsyncIterator[asyncio.Queue[str | bytes]]:
        """What arrives on a channel of the link, as a process listening there hears it."""
        heard: asyncio.Queue[str | bytes] = asyncio.Queue()

        async def arrived(messages: list[tuple[str, Any]]) -> None:
            for _channel, data in messages:
                heard.put_nowait(data)

        listening = await self.node.link.listen([channel], arrived, "attacker")
        try:
            yield heard
        finally:
            await listening.stop()

    def rejected(self) -> int:
        return sum(self.node.signer.rejected.values())

    async def pending(self) -> int:
        """Stream entries read but not acknowledged, over every stream and group; on RabbitMQ,
        messages waiting in the services' queues."""
        if self.broker is not None:
            queues = [self.channels.queue(name) for name in SERVICE_NAMES]
            return sum([await waiting(self.broker, queue) for queue in queues])
        total = 0
        for name in EventName:
            stream = self.channels.stream(name)
            for group in await self.redis.xinfo_groups(stream) if self.streams else ():
                total += int(group["pending"])
        return total


def attacker(shop: Shop, redis_url: str) -> AbstractAsyncContextManager[Attacker]:
    return connected(Attacker, shop, redis_url)


@dataclass(frozen=True)
class Books:
    """What an attack must not change."""

    balance: int
    stock: int
    orders: int
    failure_rate: float


async def books(shop: Shop, user: str, item: str) -> Books:
    assert shop.node is not None
    return Books(
        await shop.balance(user),
        await shop.stock(item),
        len(await shop.orders_of(user)),
        shop.node.payments.failure_rate,
    )


def forged_event(name: EventName, user: str, item: str, amount: int) -> Event:
    return Event(name, new_id(), user, item, quantity=1, amount=amount)


async def wait_for_rejections(hostile: Attacker, expected: int) -> None:
    """Until exactly `expected` messages were dropped in all (more would fail too)."""

    async def rejected() -> int:
        return hostile.rejected()

    await eventually(rejected, lambda seen: seen == expected, within=15)


async def test_forged_events_on_every_channel_are_dropped_counted_and_change_nothing(
    shop: Shop, redis_url: str
) -> None:
    user, item = await shop.new_user(), await shop.new_item(price=1000)
    before = await books(shop, user, item)
    async with attacker(shop, redis_url) as hostile:
        start, taken, forged = hostile.rejected(), 0, []
        pubsub = not (hostile.streams or hostile.rabbitmq)
        ways = forgeries(hostile.channels.namespace, pubsub)
        for name in EventName:
            for way, forge in ways.items():
                # a harmful amount, and (but for tampering, which alters a harmless message)
                # one the contract allows, which only the signature keeps out
                for amount in (FORGED_AMOUNT,) if way == "tampered" else (FORGED_AMOUNT, 1000):
                    event = forged_event(name, user, item, amount)
                    forged.append(event.order_id)
                    taken += await hostile.put_event(name, forge, event)
            # correctly signed, but off the contract: refused by validation
            event = forged_event(name, user, item, -1)
            forged.append(event.order_id)
            taken += await hostile.put_event(name, signer(hostile.channels.namespace).sign, event)
        assert taken > 0
        await wait_for_rejections(hostile, start + taken)
        await eventually(hostile.pending, lambda pending: pending == 0, within=15)

    assert await books(shop, user, item) == before
    for order_id in forged:
        assert (await shop.call("GET", f"/orders/{order_id}"))[0] == 404
    assert (await shop.ok("GET", "/audit"))["ok"] is True
    assert (await shop.settle((await shop.buy(user, item))["id"]))["status"] == "COMPLETED"


async def test_the_drops_are_visible_by_reason(shop: Shop, redis_url: str) -> None:
    async with attacker(shop, redis_url) as hostile:
        before = dict(hostile.node.signer.rejected)
        taken = await hostile.put_event(
            EventName.ORDER_CREATED,
            lambda channel, body: body,
            forged_event(EventName.ORDER_CREATED, new_id(), new_id(), FORGED_AMOUNT),
        )
        await wait_for_rejections(hostile, sum(before.values()) + taken)
    health = await shop.ok("GET", "/health")
    assert health["faults"]["rejected"]["unsigned"] == before.get("unsigned", 0) + taken
    async with shop.client.request("GET", "/metrics") as response:
        metrics = await response.text()
    assert 'sagashop_bus_rejected_total{reason="unsigned"}' in metrics


async def test_forged_requests_and_spoofed_replies_are_ignored(shop: Shop, redis_url: str) -> None:
    user, item = await shop.new_user(), await shop.new_item(price=1000)
    before = await books(shop, user, item)
    async with attacker(shop, redis_url) as hostile:
        namespace, channels = hostile.channels.namespace, hostile.channels
        configure = {
            "id": new_id(),
            "reply_to": channels.reply("attacker"),
            "name": Request.CONFIGURE_PAYMENTS,
            "args": {"failure_rate": 1.0, "seed": None},
        }
        create_user = {
            **configure,
            "name": Request.CREATE_USER,
            "args": {"user_id": new_id(), "username": "rich", "balance": 10**12},
        }
        reply = {"id": new_id(), "value": {"balance": 10**12}}
        targets = [
            (channels.requests_to("payment"), json.dumps(configure)),
            (channels.requests_to("user"), json.dumps(create_user)),
            (channels.reply(hostile.node.id), json.dumps(reply)),
        ]
        start, taken = hostile.rejected(), 0
        for channel, body in targets:
            for forge in forgeries(namespace, pubsub=True).values():
                taken += await hostile.put(channel, forge(channel, body))
        assert taken == len(targets) * len(forgeries(namespace, pubsub=True))
        await wait_for_rejections(hostile, start + taken)
        # the request listener is alive: a correctly signed request is still answered
        answer = await signed_request(hostile, Request.PAYMENT_SETTINGS)

    assert answer == {"value": {"failureRate": before.failure_rate, "seed": None}}
    assert await books(shop, user, item) == before
    assert (await shop.settle((await shop.buy(user, item))["id"]))["status"] == "COMPLETED"


async def signed_request(hostile: Attacker, name: str) -> dict[str, Any]:
    """Ask the payment service as another process holding the key would, and read the reply."""
    channels, honest = hostile.channels, signer(hostile.channels.namespace)
    reply_to, request_id = channels.reply(f"tester-{new_id()[:8]}"), new_id()
    async with hostile.replies(reply_to) as heard:
        request = {"id": request_id, "reply_to": reply_to, "name": name, "args": {}}
        asked = channels.requests_to("payment")
        assert await hostile.put(asked, honest.sign(asked, json.dumps(request))) == 1
        async with asyncio.timeout(10):
            body: dict[str, Any] = json.loads(honest.open(reply_to, await heard.get()))
    assert body.pop("id") == request_id
    return body
