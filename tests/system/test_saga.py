"""The purchase saga end to end: the happy path, and a failure at each step undone exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sagashop.events import EventName as E
from tests.support import Shop, emitted, states
from tests.topology import failing_at, happy_path, with_emitters


@pytest.fixture
async def declining(shop: Shop) -> AsyncIterator[Shop]:
    """The same system with a payment provider that declines everything, for one test."""
    await shop.set_payment_failure_rate(1.0)
    try:
        yield shop
    finally:
        await shop.set_payment_failure_rate(0.0)


async def test_a_purchase_completes_and_every_service_settles(shop: Shop) -> None:
    user = await shop.new_user(balance=50_000)
    item = await shop.new_item(price=10_000, stock=50)

    placed = await shop.buy(user, item, quantity=2)
    assert placed["status"] == "PENDING"
    assert (placed["quantity"], placed["unitPrice"], placed["totalAmount"]) == (2, 10_000, 20_000)

    view = await shop.settle(placed["id"])
    assert (view["status"], view["failureReason"]) == ("COMPLETED", None)
    assert await shop.balance(user) == 30_000
    assert await shop.stock(item) == 48
    assert await shop.bag(user) == {item: 2}
    assert await shop.free_slots(user) == 18
    assert states(view) == {
        "user": "confirmed",
        "inventory": "confirmed",
        "item": "confirmed",
        "payment": "captured",
    }
    assert emitted(view) == with_emitters(happy_path())
    assert (view["steps"][-1]["service"], view["steps"][-1]["step"]) == ("order", "close")
    [note] = await shop.notifications(user)
    assert (note["orderId"], note["kind"]) == (placed["id"], "order.completed")
    [listed] = await shop.orders_of(user)
    assert (listed["id"], listed["status"]) == (placed["id"], "COMPLETED")


async def test_a_user_who_cannot_pay_gets_the_order_cancelled_and_nothing_moves(shop: Shop) -> None:
    user = await shop.new_user(balance=500)
    item = await shop.new_item(price=1_000, stock=5)

    view = await shop.settle((await shop.buy(user, item))["id"])

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == "user: balance too low: has 500, needs 1000"
    assert emitted(view) == with_emitters(failing_at(E.BALANCE_REJECTED))
    assert states(view) == {"user": None, "inventory": None, "item": None, "payment": None}
    assert (await shop.balance(user), await shop.stock(item), await shop.bag(user)) == (500, 5, {})
    [note] = await shop.notifications(user)
    assert note["kind"] == "order.cancelled"
    assert "balance too low" in note["message"]


async def test_an_inactive_user_cannot_buy(shop: Shop) -> None:
    user = await shop.new_user(balance=50_000, active=False)
    item = await shop.new_item(price=1_000, stock=5)

    view = await shop.settle((await shop.buy(user, item))["id"])

    assert (view["status"], view["failureReason"]) == ("CANCELLED", "user: user is inactive")
    assert (await shop.balance(user), await shop.stock(item)) == (50_000, 5)


async def test_a_full_bag_refunds_the_balance(shop: Shop) -> None:
    user = await shop.new_user(balance=50_000)
    item = await shop.new_item(price=1_000, stock=50)

    view = await shop.settle((await shop.buy(user, item, quantity=21))["id"])

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == "inventory: bag is full: 20 free slots, 21 needed"
    assert emitted(view) == with_emitters(failing_at(E.INVENTORY_REJECTED))
    assert states(view) == {"user": "released", "inventory": None, "item": None, "payment": None}
    assert (await shop.balance(user), await shop.stock(item)) == (50_000, 50)
    assert (await shop.bag(user), await shop.free_slots(user)) == ({}, 20)


async def test_out_of_stock_frees_the_slots_then_refunds(shop: Shop) -> None:
    user = await shop.new_user(balance=50_000)
    item = await shop.new_item(price=1_000, stock=1)

    view = await shop.settle((await shop.buy(user, item, quantity=2))["id"])

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == "item: out of stock: 1 left, 2 requested"
    assert emitted(view) == with_emitters(failing_at(E.ITEM_REJECTED))
    assert states(view) == {
        "user": "released",
        "inventory": "released",
        "item": None,
        "payment": None,
    }
    assert (await shop.balance(user), await shop.stock(item)) == (50_000, 1)
    assert (await shop.bag(user), await shop.free_slots(user)) == ({}, 20)


async def test_a_declined_payment_undoes_every_step_newest_first(declining: Shop) -> None:
    shop = declining
    user = await shop.new_user(balance=50_000)
    item = await shop.new_item(price=5_000, stock=30)

    view = await shop.settle((await shop.buy(user, item, quantity=3))["id"])

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == "payment: declined by the mock provider"
    assert emitted(view) == with_emitters(failing_at(E.PAYMENT_REJECTED))
    assert states(view) == {
        "user": "released",
        "inventory": "released",
        "item": "released",
        "payment": "declined",
    }
    assert (await shop.balance(user), await shop.stock(item)) == (50_000, 30)
    assert (await shop.bag(user), await shop.free_slots(user)) == ({}, 20)


async def test_the_original_setup_endpoint_creates_a_fresh_user_and_items(shop: Shop) -> None:
    first = await shop.ok("POST", "/setup-test-data")
    second = await shop.ok("POST", "/setup-test-data")

    assert first["success"] is True
    user = first["data"]["user"]
    assert user["balance"] == 50_000
    assert user["id"] != second["data"]["user"]["id"]
    assert [(i["price"], i["stock"]) for i in first["data"]["items"]] == [
        (10_000, 50),
        (5_000, 30),
        (1_000, 100),
    ]
    sword = first["data"]["items"][0]["id"]
    view = await shop.settle((await shop.buy(user["id"], sword))["id"])
    assert view["status"] == "COMPLETED"
    assert await shop.balance(user["id"]) == 40_000
