"""Retention on the whole system: once every saga settled longer ago than `--retain`, their
step rows, notifications and replayed dead letters go, in every service, in batches; the audit
is exact as before (nothing it reads is pruned), the orders and balances stay, and the next
purchase goes through as if nothing happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import Shop, on_systems

pytestmark = on_systems("sqlite-pubsub", "postgres-pubsub")


async def test_the_steps_of_sagas_settled_long_ago_go_and_the_books_stay_exact(
    shop: Shop,
) -> None:
    assert shop.node is not None
    user, item = await shop.new_user(balance=10_000), await shop.new_item(price=1_000)
    orders = [(await shop.buy(user, item))["id"] for _ in range(3)]
    for order_id in orders:
        await shop.settle(order_id)
    before = await shop.ok("GET", "/audit")
    assert await shop.notifications(user)
    await shop.node.relay.flush()  # every outcome marked published, as the relay does soon after

    later = datetime.now(UTC) + timedelta(seconds=shop.node.settings.retain + 1)
    pruned = 0
    while gone := await shop.node.prune(later):
        pruned += gone

    assert pruned >= len(orders) * 11, "every step row of the three purchases, at least"
    for order_id in orders:
        view = await shop.order(order_id)
        assert view["steps"] == []
        assert view["status"] == "COMPLETED"
    assert await shop.notifications(user) == []
    after = await shop.ok("GET", "/audit")
    assert after["ok"], after["violations"]
    assert after["counts"] == before["counts"]
    assert (await shop.ok("GET", f"/user/{user}/balance"))["balance"] == 7_000

    again = await shop.buy(user, item)
    assert (await shop.settle(again["id"]))["status"] == "COMPLETED"
    assert (await shop.ok("GET", f"/user/{user}/balance"))["balance"] == 6_000


async def test_nothing_younger_than_the_retention_goes(shop: Shop) -> None:
    assert shop.node is not None
    user, item = await shop.new_user(), await shop.new_item()
    order_id = (await shop.buy(user, item))["id"]
    steps = len((await shop.settle(order_id))["steps"])

    assert await shop.node.prune() == 0
    assert len((await shop.order(order_id))["steps"]) == steps
