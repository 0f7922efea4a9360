"""No saga is lost: a stalled one is driven again, and one past its deadline is cancelled at
once and undone from the last step backwards. A success that arrives after that changes nothing.

The system here has a 2 s deadline and nudges a saga after 0.3 s without an outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from sagashop.events import Event, EventName
from tests.support import Shop, emitted, eventually, on_systems, states
from tests.topology import chain_from, with_emitters
from tests.wire import bus, losing

# Losses are injected where events are published, whatever carries them: each database and
# each transport once.
pytestmark = on_systems("sqlite-pubsub", "postgres-streams")

E = EventName
DEADLINE = 2.0
SWEEP_EVERY = 0.1


@pytest.fixture(scope="module")
def system_settings() -> dict[str, Any]:
    return {"saga_deadline": DEADLINE, "nudge_after": 0.3, "sweep_every": SWEEP_EVERY}


def lasted(view: dict[str, Any]) -> float:
    """Seconds from the order's creation until it last changed status."""
    created, ended = (datetime.fromisoformat(view[key]) for key in ("createdAt", "updatedAt"))
    return (ended - created).total_seconds()


UNDOING = with_emitters(chain_from(E.ORDER_EXPIRED))
"""What the deadline sweep starts: undoing the order from the last step backwards."""


async def test_a_lost_event_is_sent_again_until_the_saga_moves(shop: Shop) -> None:
    user, item = await shop.new_user(), await shop.new_item()

    async with losing(shop, E.ORDER_CREATED):
        placed = await shop.buy(user, item)

    view = await shop.settle(placed["id"], within=10)
    assert view["status"] == "COMPLETED"
    assert view["nudges"] >= 1
    assert lasted(view) < DEADLINE


async def test_a_loss_halfway_is_healed_by_replaying_every_step_before_it(shop: Shop) -> None:
    user, item = await shop.new_user(balance=10_000), await shop.new_item(price=1_000, stock=5)

    async with losing(shop, E.ITEM_RESERVED):
        placed = await shop.buy(user, item, quantity=2)
        await eventually(lambda: shop.order(placed["id"]), lambda view: view["nudges"] >= 1)

    view = await shop.settle(placed["id"], within=10)
    assert view["status"] == "COMPLETED"
    assert [step for step in emitted(view) if step[1] == "item.reserved"] == [
        ("item", "item.reserved")
    ], "a replayed step is not taken again"
    assert (await shop.balance(user), await shop.stock(item)) == (8_000, 3)


async def test_past_its_deadline_an_order_is_cancelled_and_undone_newest_first(
    shop: Shop,
) -> None:
    user, item = await shop.new_user(balance=10_000), await shop.new_item(price=1_000, stock=5)

    async with losing(shop, E.ITEM_RESERVED):  # the payment service never hears of the order
        placed = await shop.buy(user, item, quantity=2)
        view = await shop.settle(placed["id"], within=10)

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == "order: no outcome within the 2s deadline"
    assert lasted(view) <= DEADLINE + 10 * SWEEP_EVERY
    assert emitted(view)[-len(UNDOING) :] == UNDOING
    assert states(view) == {
        "user": "released",
        "inventory": "released",
        "item": "released",
        "payment": "voided",
    }
    assert (await shop.balance(user), await shop.stock(item)) == (10_000, 5)
    assert (await shop.bag(user), await shop.free_slots(user)) == ({}, 20)
    [note] = await shop.notifications(user)
    assert note["kind"] == "order.cancelled"
    assert "deadline" in note["message"]


async def test_a_success_after_the_deadline_is_undone_and_resurrects_nothing(
    shop: Shop, redis_url: str
) -> None:
    user, item = await shop.new_user(balance=10_000), await shop.new_item(price=1_000, stock=5)

    async with losing(shop, E.PAYMENT_PROCESSED):  # charged, but the order never hears of it
        placed = await shop.buy(user, item, quantity=2)
        view = await shop.settle(placed["id"], within=10)

    assert (view["status"], states(view)["payment"]) == ("CANCELLED", "refunded")
    late = Event(E.PAYMENT_PROCESSED, placed["id"], user, item, quantity=2, amount=2_000)
    async with bus(shop, redis_url) as wire:
        await wire.emit(late)
    after = await eventually(
        lambda: shop.order(placed["id"]),
        lambda seen: ("order", "complete") in {(s["service"], s["step"]) for s in seen["steps"]},
    )
    assert after["status"] == "CANCELLED"
    assert states(after) == {
        "user": "released",
        "inventory": "released",
        "item": "released",
        "payment": "refunded",
    }
    assert (await shop.balance(user), await shop.stock(item), await shop.bag(user)) == (
        10_000,
        5,
        {},
    )
    assert [n["kind"] for n in await shop.notifications(user)] == ["order.cancelled"]
