"""What is RabbitMQ's own (`--bus rabbitmq`): the processes of one service share its queue and
no event reaches two of them; a poison message is dead-lettered, counted and never delivered
again; an event is acknowledged only once its step committed; and neither a connection the
broker drops mid-load nor the broker itself restarted mid-load (a node of the test's own)
loses or doubles anything."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from sagashop.actors import SERVICE_NAMES
from sagashop.chaos.rabbitmq import OwnRabbit
from sagashop.events import Event, EventName, encode, new_id
from sagashop.transport import Channels
from sagashop.transport.protocol import Done
from sagashop.transport.rabbitmq import Broker, RabbitEvents
from sagashop.transport.signing import MAX_WIRE_BYTES, BusKeys, Signer
from tests.cluster.processes import Process, cluster
from tests.support import (
    REQUIRE_SERVICES,
    TEST_BUS_KEYS,
    Ledger,
    Shop,
    amqp,
    emitted,
    eventually,
    make_settings,
    on_bus,
    own_rabbit_or_skip,
    waiting,
)
from tests.topology import happy_path, with_emitters

pytestmark = pytest.mark.rabbitmq

USER = SERVICE_NAMES[1]
"""The service whose queue the transport's own tests consume (it handles `order.created`)."""


@dataclass
class Taker:
    """A service's side of the transport: records what it is handed, and says it is done
    (`hold`: not until told, as a step that has not committed yet)."""

    hold: bool = False
    taken: list[Event] = field(default_factory=list)
    batches: int = 0
    held: list[Done] = field(default_factory=list)

    def receive(self, service: str, events: list[Event], done: Done | None) -> None:
        assert service == USER
        assert done is not None
        self.taken += events
        self.batches += 1
        if self.hold:
            self.held.append(done)
        else:
            done()

    def release(self) -> None:
        for done in self.held:
            done()
        self.held.clear()

    async def ids(self) -> list[str]:
        return [event.event_id for event in self.taken]


@dataclass
class Namespace:
    """A namespace on the broker of this test's own: its transports, and a look at its queues."""

    settings_namespace: str
    url: str
    opened: list[RabbitEvents] = field(default_factory=list)
    takers: list[Taker] = field(default_factory=list)

    @property
    def channels(self) -> Channels:
        return Channels(self.settings_namespace)

    @property
    def signer(self) -> Signer:
        return Signer(TEST_BUS_KEYS, self.settings_namespace)

    def transport(self, name: str, signer: Signer | None = None) -> RabbitEvents:
        broker = Broker(self.url, f"sagashop {self.settings_namespace} {name}")
        opened = RabbitEvents(broker, self.channels, signer or self.signer)
        self.opened.append(opened)
        return opened

    async def consuming(
        self, name: str, taker: Taker, signer: Signer | None = None
    ) -> RabbitEvents:
        self.takers.append(taker)
        transport = self.transport(name, signer)
        await transport.start({USER: [EventName.ORDER_CREATED]}, taker.receive)
        return transport

    async def waiting(self, queue: str) -> int:
        async with amqp() as connection:
            return await waiting(connection, queue)


@pytest.fixture
async def namespace(tmp_path: Path) -> AsyncIterator[Namespace]:
    settings = make_settings("unused", tmp_path, None, bus="rabbitmq")
    async with on_bus(settings):
        assert settings.amqp_url is not None
        made = Namespace(settings.namespace, settings.amqp_url)
        try:
            yield made
        finally:
            for taker in made.takers:  # a test that failed may have left a batch in hand
                taker.release()
            for transport in made.opened:
                await transport.stop()
                await transport.close()


def orders(count: int) -> list[Event]:
    return [
        Event(EventName.ORDER_CREATED, new_id(), new_id(), new_id(), quantity=1, amount=100)
        for _ in range(count)
    ]


async def test_the_processes_of_a_service_share_its_queue_and_no_event_reaches_two(
    namespace: Namespace,
) -> None:
    first, second = Taker(), Taker()
    await namespace.consuming("first", first)
    await namespace.consuming("second", second)
    sent = orders(400)

    publisher = namespace.transport("publisher")
    for start in range(0, len(sent), 50):  # in parts, so that both consumers are waiting
        assert await publisher.publish(sent[start : start + 50]) == [1] * 50

    async def taken() -> list[str]:
        return await first.ids() + await second.ids()

    everything = await eventually(taken, lambda ids: len(ids) >= len(sent))
    assert sorted(everything) == sorted(event.event_id for event in sent)  # each once
    assert first.taken, "each process got a share"
    assert second.taken, "each process got a share"
    assert first.batches + second.batches < len(sent), "deliveries handed over together"
    assert await namespace.waiting(namespace.channels.queue(USER)) == 0


async def test_an_event_no_queue_is_bound_for_is_not_taken_as_published(
    namespace: Namespace,
) -> None:
    """Mandatory publishing: the outbox keeps such an event and sends it again later."""
    await namespace.consuming("user", Taker())
    publisher = namespace.transport("publisher")
    unbound = Event(EventName.ITEM_SOLD, new_id(), new_id(), new_id(), quantity=1, amount=1)
    assert await publisher.publish([*orders(1), unbound]) == [1, 0]


def poison(channels: Channels, signer: Signer) -> dict[str, bytes]:
    """Each way a message on `order.created` can be bad, by name."""
    key = channels.routing_key(EventName.ORDER_CREATED)
    body = encode(orders(1)[0])
    forger = Signer(BusKeys.parse("test:not-the-secret-the-shop-uses"), channels.namespace)
    sold = encode(replace(orders(1)[0], name=EventName.ITEM_SOLD))
    return {
        "unsigned": body.encode(),
        "forged signature": forger.sign(key, body).encode(),
        "oversized": signer.sign(key, "x" * MAX_WIRE_BYTES).encode(),
        "malformed JSON": signer.sign(key, "{not json").encode(),
        "another event's name": signer.sign(key, sold).encode(),
        "not UTF-8": b"\xff\xfe" * 10,
    }


async def test_a_poison_message_is_dead_lettered_counted_and_never_delivered_again(
    namespace: Namespace,
) -> None:
    signer = namespace.signer
    taker = Taker()
    await namespace.consuming("user", taker, signer)
    channels = namespace.channels
    bad = poison(channels, signer)

    async with amqp() as connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(channels.exchange(), ensure=False)
        for body in bad.values():
            await exchange.publish(aio_pika.Message(body), channels.routing_key("order.created"))
    good = orders(1)
    assert await namespace.transport("publisher").publish(good) == [1]

    await eventually(taker.ids, lambda ids: ids == [good[0].event_id])  # the listener went on
    assert sum(signer.rejected.values()) == len(bad)  # each counted once: none came again
    assert set(signer.rejected) == {"unsigned", "bad_signature", "oversized", "invalid"}
    assert await namespace.waiting(channels.queue(USER)) == 0
    kept = await eventually(lambda: namespace.waiting(channels.dead_letters()), bool)
    assert kept == len(bad)


async def test_an_event_is_acknowledged_only_once_its_step_committed(
    namespace: Namespace,
) -> None:
    queue = namespace.channels.queue(USER)
    publisher = namespace.transport("publisher")
    holding = Taker(hold=True)
    dying = await namespace.consuming("dying", holding)
    sent = orders(3)
    assert await publisher.publish(sent) == [1, 1, 1]
    await eventually(holding.ids)  # a first batch in the service's hands, the rest waiting
    assert await namespace.waiting(queue) == 0  # all delivered, none acknowledged

    await dying.close()  # the process dies before its step commits: nothing was acknowledged
    assert await namespace.waiting(queue) == 3
    holding.release()  # too late: its channel is gone, and the events with it
    taking = Taker(hold=True)
    survivor = await namespace.consuming("survivor", taking)
    redelivered = await eventually(taking.ids, lambda ids: len(ids) == 3)
    assert sorted(redelivered) == sorted(event.event_id for event in sent)

    taking.release()  # committed: acknowledged, and never delivered again
    await survivor.stop()
    await survivor.close()
    assert await namespace.waiting(queue) == 0


async def test_stopping_finishes_the_batch_in_hand_first(
    namespace: Namespace, caplog: pytest.LogCaptureFixture
) -> None:
    holding = Taker(hold=True)
    transport = await namespace.consuming("stopping", holding)
    assert await namespace.transport("publisher").publish(orders(1)) == [1]
    await eventually(holding.ids)

    async def waiting_for_the_batch() -> bool:
        return any("stopping once its batch" in r.getMessage() for r in caplog.records)

    queue = namespace.channels.queue(USER)
    with caplog.at_level(logging.INFO):
        stopping = asyncio.create_task(transport.stop())
        await eventually(waiting_for_the_batch)
    assert not stopping.done()
    holding.release()
    await asyncio.wait_for(stopping, 10)
    await transport.close()
    assert await namespace.waiting(queue) == 0, "acknowledged before the channel closed"


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def close_connections(named: Callable[[str], bool]) -> int:
    """Have the broker close the connections whose name `named` accepts (`rabbitmqctl`, on
    this machine's broker: only this test's connections, which other users share)."""
    closed = 0
    for line in _rabbitmqctl("list_connections", "pid", "client_properties").splitlines()[1:]:
        pid, _, properties = line.partition("\t")
        name = properties.partition('{"connection_name","')[2].partition('"}')[0]
        if named(name):
            _rabbitmqctl("close_connection", pid, "a test drops the connection")
            closed += 1
    return closed


SPLIT = [("front", ",".join(SERVICE_NAMES[:3])), ("back", ",".join(SERVICE_NAMES[3:]))]
"""The services over two processes, so that every event of a saga crosses the broker (within
one process, the outbox hands an event to its services without publishing it)."""


@pytest.fixture
async def split(redis_url: str, tmp_path: Path) -> AsyncIterator[list[Process]]:
    """The services over two processes (`SPLIT`), on the machine's broker."""
    if shutil.which("rabbitmqctl") is None:
        reason = "rabbitmqctl is not on PATH: the broker's connections cannot be closed"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    settings = make_settings(redis_url, tmp_path / "data", None, bus="rabbitmq", nudge_after=2.0)
    async with on_bus(settings), cluster(SPLIT, settings, tmp_path) as processes:
        yield processes


MOST_PURCHASES = 400
"""A bound on the load of the test below (it buys until the connections are back)."""


async def test_a_connection_dropped_mid_load_loses_and_doubles_nothing(
    split: list[Process],
) -> None:
    shop = split[0].shop
    namespace = split[0].child.settings.namespace
    ledger = Ledger()
    users = [await ledger.add_user(shop, balance=MOST_PURCHASES * 100) for _ in range(10)]
    item = await ledger.add_item(shop, price=100, stock=MOST_PURCHASES)
    placed: list[dict[str, Any]] = []
    enough = asyncio.Event()

    async def keep_buying() -> None:
        """Rounds of a purchase per user, each round once the one before has ended."""
        while not enough.is_set() and len(placed) < MOST_PURCHASES:
            bought = await asyncio.gather(*(shop.buy(user, item) for user in users))
            placed.extend(bought)
            await asyncio.gather(*(shop.settle(order["id"], within=60) for order in bought))

    async def reconnected() -> list[str]:
        return [p.name for p in split if "rabbitmq: reconnected" in p.log_text()]

    buying = asyncio.create_task(keep_buying())
    await eventually(lambda: asyncio.sleep(0, len(placed)))  # the load is on
    before = len(placed)
    ours = f"sagashop {namespace} "
    closed = await asyncio.to_thread(close_connections, lambda name: name.startswith(ours))
    await eventually(reconnected, lambda names: len(names) == len(split))
    await eventually(lambda: asyncio.sleep(0, len(placed)), lambda count: count > before + 50)
    enough.set()
    await buying
    orders = await shop.settle_users(users, within=90)

    assert closed == 2, "each process's connection was dropped"
    assert len(orders) == len(placed) < MOST_PURCHASES, "bought on until the connections were back"
    assert {order["status"] for order in orders} == {"COMPLETED"}
    await ledger.assert_conserved(shop, orders)
    await eventually(lambda: shop.ok("GET", "/dead-letters"), lambda b: b["deadLetters"] == [])


@pytest.fixture
async def split_on_own_broker(
    redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[list[Process], OwnRabbit]]:
    """The services over two processes (`SPLIT`), on a RabbitMQ node of this test's own, so
    that it can be stopped and started again (the machine's broker is shared)."""
    own_rabbit_or_skip()
    broker = OwnRabbit(tmp_path / "rabbitmq.log")
    try:
        await asyncio.to_thread(broker.start)
        settings = make_settings(
            redis_url,
            tmp_path / "data",
            None,
            bus="rabbitmq",
            amqp_url=broker.url,
            nudge_after=2.0,
        )
        async with cluster(SPLIT, settings, tmp_path) as processes:
            yield processes, broker
    finally:
        await asyncio.to_thread(broker.stop)


CLIENTS = 12
EACH_AT_MOST = 20
"""Purchases of one client, at most: its user's bag holds 20 items."""
AFTER_THE_RESTART = 48
"""Purchases the test waits for once the broker is back, before its clients stop buying."""


async def bought_despite_the_outage(shop: Shop, user: str, item: str) -> str:
    """A purchase, asked again while the front door answers 503 (it reaches the services of the
    other process through the broker, which may be away), under one idempotency key: one
    order, whichever ask placed it."""
    body = {"userId": user, "itemId": item, "quantity": 1}
    once = {"Idempotency-Key": str(uuid.uuid4())}

    async def place() -> tuple[int, Any]:
        return await shop.call("POST", "/orders", json=body, headers=once)

    status, answer = await eventually(place, lambda asked: asked[0] != 503, within=60)
    assert status == 201, answer
    return str(answer["id"])


async def test_the_broker_restarted_mid_load_loses_and_doubles_nothing(
    split_on_own_broker: tuple[list[Process], OwnRabbit],
) -> None:
    """Clients buy on while the broker stops and starts again: what it held in its queues, what
    the services had in hand unacknowledged and what the outboxes could not publish while it
    was away all arrive, and each event's step is taken once."""
    processes, broker = split_on_own_broker
    shop = processes[0].shop
    ledger = Ledger()
    users = [await ledger.add_user(shop, balance=EACH_AT_MOST * 100) for _ in range(CLIENTS)]
    item = await ledger.add_item(shop, price=100, stock=CLIENTS * EACH_AT_MOST)
    placed: list[str] = []
    enough = asyncio.Event()

    async def client(user: str) -> None:
        """One purchase after another, each once the one before has ended."""
        for _ in range(EACH_AT_MOST):
            if enough.is_set():
                return
            order_id = await bought_despite_the_outage(shop, user, item)
            placed.append(order_id)
            await shop.settle(order_id, within=90)

    async def count() -> int:
        return len(placed)

    async def reconnected() -> list[str]:
        return [p.name for p in processes if "rabbitmq: reconnected" in p.log_text()]

    buying = asyncio.gather(*(client(user) for user in users))
    await eventually(count, lambda n: n >= 2 * CLIENTS)  # the load is on
    down = await asyncio.to_thread(broker.restart)
    back = len(placed)
    await eventually(reconnected, lambda names: len(names) == len(processes))
    await eventually(count, lambda n: n >= back + AFTER_THE_RESTART, within=90)
    enough.set()
    await buying
    orders = await shop.settle_users(users, within=90)
    views = [await shop.order(order["id"]) for order in orders]

    assert down > 0
    assert len(orders) == len(placed)
    reasons = [order["failureReason"] for order in orders if order["status"] != "COMPLETED"]
    assert {order["status"] for order in orders} == {"COMPLETED"}, reasons
    await ledger.assert_conserved(shop, orders)
    doubled = [view["id"] for view in views if emitted(view) != with_emitters(happy_path())]
    assert doubled == [], "each event's step taken once"
    audit = await shop.ok("GET", "/audit")
    assert audit["ok"], audit["violations"]
    await eventually(lambda: shop.ok("GET", "/dead-letters"), lambda b: b["deadLetters"] == [])
