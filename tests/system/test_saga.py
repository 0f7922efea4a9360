"""The purchase saga end to end: the happy path, and a failure at each step undone exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from sagashop.events import EventName as E
from tests.support import Shop, emitted, states
from tests.topology import failing_at, happy_path, with_emitters


@asynccontextmanager
async def payments_declined(shop: Shop, rate: float) -> AsyncIterator[None]:
    """The same system with a payment provider that declines this share of charges, while
    inside: the system is shared, so every test after this one finds it declining nothing."""
    await shop.set_payment_failure_rate(rate)
    try:
        yield
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


@pytest.mark.parametrize(
    ("stock", "quantity", "declined", "failure", "reason", "undone"),
    [
        pytest.param(
            50,
            21,
            0.0,
            E.INVENTORY_REJECTED,
            "inventory: bag is full: 20 free slots, 21 needed",
            dict(user="released", inventory=None, item=None, payment=None),
            id="a full bag refunds the balance",
        ),
        pytest.param(
            1,
            2,
            0.0,
            E.ITEM_REJECTED,
            "item: out of stock: 1 left, 2 requested",
            dict(user="released", inventory="released", item=None, payment=None),
            id="out of stock frees the slots then refunds",
        ),
        pytest.param(
            30,
            3,
            1.0,
            E.PAYMENT_REJECTED,
            "payment: declined by the mock provider",
            dict(user="released", inventory="released", item="released", payment="declined"),
            id="a declined payment undoes every step newest first",
        ),
    ],
)
async def test_a_step_refused_cancels_the_order_and_undoes_every_step_before_it(
    shop: Shop,
    stock: int,
    quantity: int,
    declined: float,
    failure: E,
    reason: str,
    undone: dict[str, str | None],
) -> None:
    user = await shop.new_user(balance=50_000)
    item = await shop.new_item(price=1_000, stock=stock)

    async with payments_declined(shop, declined):
        view = await shop.settle((await shop.buy(user, item, quantity=quantity))["id"])

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == reason
    assert emitted(view) == with_emitters(failing_at(failure))
    assert states(view) == undone
    assert (await shop.balance(user), await shop.stock(item)) == (50_000, stock)
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
