"""Many purchases at once: conditional updates decide, so nothing is oversold or overspent, and
nothing that could succeed is refused because another purchase was in flight."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.support import Ledger, Shop


async def test_fifty_purchases_by_one_user_who_can_afford_exactly_ten(shop: Shop) -> None:
    ledger = Ledger()
    user = await ledger.add_user(shop, balance=10_000)
    item = await ledger.add_item(shop, price=1_000, stock=100)

    await asyncio.gather(*(shop.buy(user, item) for _ in range(50)))
    orders = await shop.settle_users([user])

    assert Counter(order["status"] for order in orders) == {"COMPLETED": 10, "CANCELLED": 40}
    assert {o["failureReason"] for o in orders if o["status"] == "CANCELLED"} == {
        "user: balance too low: has 0, needs 1000"
    }
    await ledger.assert_conserved(shop, orders)
    assert await shop.balance(user) == 0
    assert await shop.bag(user) == {item: 10}


async def test_two_hundred_purchases_by_a_hundred_users_for_seven_in_stock(shop: Shop) -> None:
    ledger = Ledger()
    users = [await ledger.add_user(shop, balance=5_000) for _ in range(100)]
    item = await ledger.add_item(shop, price=1_000, stock=7)

    await asyncio.gather(*(shop.buy(user, item) for user in users for _ in range(2)))
    orders = await shop.settle_users(users)

    assert len(orders) == 200
    assert Counter(order["status"] for order in orders) == {"COMPLETED": 7, "CANCELLED": 193}
    assert {o["failureReason"][:18] for o in orders if o["status"] == "CANCELLED"} == {
        "item: out of stock"
    }
    await ledger.assert_conserved(shop, orders)
    assert await shop.stock(item) == 0
