"""Delivery anomalies, service by service, with events put on the real bus as a misbehaving
network would deliver them:

- a duplicate takes effect once, and publishes the outcome it recorded the first time again
  (the same event, same id), so that a loss further down heals;
- a compensation that arrives before its action records a void and changes nothing else;
- the action arriving after that is refused with a failure, so nothing is left held.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sagashop.events import Event, EventName, new_id
from tests.support import Shop, eventually
from tests.topology import trigger
from tests.wire import bus, losing, published

E = EventName


@dataclass(frozen=True)
class Part:
    """One service's part in the saga, as seen from outside it."""

    service: str
    action: EventName
    compensation: EventName
    done: EventName
    undone: EventName
    refused: EventName
    refusal: str


PARTS = [
    Part(
        "user",
        trigger("user", "reserve"),
        E.INVENTORY_RELEASED,
        E.BALANCE_RESERVED,
        E.BALANCE_RELEASED,
        E.BALANCE_REJECTED,
        "user: the order was cancelled first",
    ),
    Part(
        "inventory",
        trigger("inventory", "reserve"),
        E.ITEM_RELEASED,
        E.INVENTORY_RESERVED,
        E.INVENTORY_RELEASED,
        E.INVENTORY_REJECTED,
        "inventory: the order was cancelled first",
    ),
    Part(
        "item",
        trigger("item", "reserve"),
        E.PAYMENT_REJECTED,
        E.ITEM_RESERVED,
        E.ITEM_RELEASED,
        E.ITEM_REJECTED,
        "item: the order was cancelled first",
    ),
    Part(
        "payment",
        trigger("payment", "charge"),
        E.ORDER_EXPIRED,
        E.PAYMENT_PROCESSED,
        E.PAYMENT_REFUNDED,
        E.PAYMENT_REJECTED,
        "payment: the order expired first",
    ),
]


@dataclass
class Purchase:
    """A user and an item, and a way to read what the service under test holds of them."""

    shop: Shop
    user: str
    item: str

    def event(self, name: EventName, order_id: str, quantity: int = 2) -> Event:
        return Event(name, order_id, self.user, self.item, quantity=quantity, amount=2_000)

    async def holdings(self, service: str, order_id: str) -> tuple[str | None, int | None]:
        """What the service holds for the order, and what it has left of the user or item."""
        assert self.shop.node is not None
        state = await self.shop.node.ask(service, "order_state", {"order_id": order_id})
        return (state or {}).get("state"), await self.left(service)

    async def left(self, service: str) -> int | None:
        if service == "user":
            return await self.shop.balance(self.user)
        if service == "inventory":
            return await self.shop.free_slots(self.user)
        if service == "item":
            return await self.shop.stock(self.item)
        return None  # payment holds nothing of the user's or the item's


@pytest.fixture(params=PARTS, ids=[p.service for p in PARTS])
def part(request: pytest.FixtureRequest) -> Part:
    """Each service's part in turn, for the tests that ask for one."""
    chosen: Part = request.param
    return chosen


@pytest.fixture
async def purchase(shop: Shop) -> Purchase:
    return Purchase(shop, await shop.new_user(balance=10_000), await shop.new_item(stock=10))


async def test_a_duplicate_takes_effect_once_and_replays_its_outcome(
    part: Part, purchase: Purchase, redis_url: str
) -> None:
    order_id = new_id()
    before = await purchase.holdings(part.service, order_id)
    action = purchase.event(part.action, order_id)

    async with bus(purchase.shop, redis_url) as wire, wire.watching(part.done) as watch:
        await wire.emit(action)
        first = (await published(watch, order_id, 1))[0]
        held = await purchase.holdings(part.service, order_id)
        await wire.emit(action)
        both = await published(watch, order_id, 2)

    assert [event.event_id for event in both] == [first.event_id] * 2
    assert first.causation_id == action.event_id
    assert held[0] in {"reserved", "captured"}
    assert await purchase.holdings(part.service, order_id) == held
    assert held != before


async def test_a_compensation_before_its_action_voids_it_and_the_action_is_refused(
    part: Part, purchase: Purchase, redis_url: str
) -> None:
    order_id = new_id()
    before = await purchase.holdings(part.service, order_id)

    async with bus(purchase.shop, redis_url) as wire:
        async with wire.watching(part.undone) as undone:
            await wire.emit(purchase.event(part.compensation, order_id))
            await published(undone, order_id, 1)
        voided = await purchase.holdings(part.service, order_id)
        async with wire.watching(part.refused) as refused:
            await wire.emit(purchase.event(part.action, order_id))
            [refusal] = await published(refused, order_id, 1)

    assert before[0] is None
    assert voided == ("voided", before[1])
    assert refusal.reason == part.refusal
    assert await purchase.holdings(part.service, order_id) == voided


async def test_an_order_ends_once_however_often_it_hears_so(
    purchase: Purchase, redis_url: str
) -> None:
    shop = purchase.shop
    async with losing(shop, E.ORDER_CREATED):  # the saga waits, the order stays PENDING
        order = await shop.buy(purchase.user, purchase.item)
    processed = purchase.event(E.PAYMENT_PROCESSED, order["id"], quantity=1)

    async with bus(shop, redis_url) as wire, wire.watching(E.ORDER_COMPLETED) as completed:
        await wire.emit(processed)
        [first] = await published(completed, order["id"], 1)
        await wire.emit(processed)
        twice = await published(completed, order["id"], 2)

    assert [event.event_id for event in twice] == [first.event_id] * 2
    assert (await shop.order(order["id"]))["status"] == "COMPLETED"
    [note] = await eventually(lambda: shop.notifications(purchase.user))
    assert note["kind"] == "order.completed"
