"""Hundreds of random purchases with a payment provider that declines 30% of them: whatever
fails, money and items are only ever moved by completed orders."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tests.support import Ledger, Shop, on_systems

# Each database and each transport once; test_concurrency runs the full matrix.
pytestmark = on_systems("sqlite-pubsub", "postgres-streams")

SEED = 20261124
PURCHASES = 320
CONCURRENCY = 32


@pytest.fixture
async def flaky_payments(shop: Shop) -> AsyncIterator[Shop]:
    await shop.set_payment_failure_rate(0.3, seed=SEED)
    try:
        yield shop
    finally:
        await shop.set_payment_failure_rate(0.0)


async def test_random_purchases_conserve_money_and_items(flaky_payments: Shop) -> None:
    shop, rng, ledger = flaky_payments, random.Random(SEED), Ledger()
    users = [await ledger.add_user(shop, rng.randrange(20_000, 120_001, 1_000)) for _ in range(16)]
    items = [
        await ledger.add_item(shop, rng.randrange(500, 5_001, 500), rng.randrange(40, 121))
        for _ in range(5)
    ]
    purchases = [
        (rng.choice(users), rng.choice(items), rng.randint(1, 3)) for _ in range(PURCHASES)
    ]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def buy(user: str, item: str, quantity: int) -> None:
        async with gate:
            await shop.buy(user, item, quantity)

    started = time.perf_counter()
    await asyncio.gather(*(buy(*purchase) for purchase in purchases))
    orders = await shop.settle_users(users)
    elapsed = time.perf_counter() - started

    statuses = Counter(order["status"] for order in orders)
    reasons = Counter(o["failureReason"].split(":")[0] for o in orders if o["failureReason"])
    print(
        f"\n{len(orders)} purchases in {elapsed:.2f}s ({len(orders) / elapsed:.0f}/s): "
        f"{dict(statuses)}; cancelled by {dict(reasons)}"
    )
    assert len(orders) == PURCHASES
    assert statuses["COMPLETED"] > 0
    assert reasons["payment"] > 0, "the 30% decline rate should have cancelled some orders"
    await ledger.assert_conserved(shop, orders)
    report = await shop.ok("GET", "/audit")
    assert report["ok"], report["violations"]
