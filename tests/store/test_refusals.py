"""A reservation that cannot be had is refused with the reason, and changes nothing."""

from __future__ import annotations

from dataclasses import replace

from sagashop.events import EventName, new_id
from sagashop.requests import Request
from tests.store.harness import Holdings, Steps


async def test_a_balance_too_low_is_refused_with_what_it_has_and_needs(steps: Steps) -> None:
    purchase = await steps.purchase(balance=1_500, price=800, quantity=2)

    refused = await steps.take("user", purchase.created)

    assert refused is not None
    assert (refused.name, refused.reason) == (
        EventName.BALANCE_REJECTED,
        "user: balance too low: has 1500, needs 1600",
    )
    assert await steps.holdings(purchase) == Holdings(balance=1_500, stock=10, free=20)
    assert await steps.held("user", purchase.order_id) is None
    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.rejected")]


async def test_an_unknown_user_is_refused(steps: Steps) -> None:
    purchase = await steps.purchase()

    refused = await steps.take("user", replace(purchase.created, user_id=new_id()))

    assert refused is not None
    assert (refused.name, refused.reason) == (EventName.BALANCE_REJECTED, "user: unknown user")
    assert await steps.held("user", purchase.order_id) is None


async def test_an_inactive_user_is_refused(steps: Steps) -> None:
    purchase = await steps.purchase()
    inactive = new_id()
    await steps.command(
        "user", Request.CREATE_USER, user_id=inactive, username="gone", balance=9_000, active=False
    )

    refused = await steps.take("user", replace(purchase.created, user_id=inactive))

    assert refused is not None
    assert (refused.name, refused.reason) == (EventName.BALANCE_REJECTED, "user: user is inactive")
    user = await steps.query("user", Request.GET_USER, user_id=inactive)
    assert user["balance"] == 9_000


async def test_an_item_out_of_stock_is_refused(steps: Steps) -> None:
    purchase = await steps.purchase(stock=2, quantity=3)

    refused = await steps.take("item", purchase.then(EventName.INVENTORY_RESERVED))

    assert refused is not None
    assert (refused.name, refused.reason) == (
        EventName.ITEM_REJECTED,
        "item: out of stock: 2 left, 3 requested",
    )
    assert (await steps.holdings(purchase)).stock == 2
    assert await steps.held("item", purchase.order_id) is None


async def test_an_unknown_item_is_refused(steps: Steps) -> None:
    purchase = await steps.purchase()

    refused = await steps.take(
        "item", replace(purchase.then(EventName.INVENTORY_RESERVED), item_id=new_id())
    )

    assert refused is not None
    assert (refused.name, refused.reason) == (EventName.ITEM_REJECTED, "item: unknown item")


async def test_a_full_bag_is_refused_and_its_free_slots_stay(steps: Steps) -> None:
    purchase = await steps.purchase(stock=100, quantity=21)

    refused = await steps.take("inventory", purchase.then(EventName.BALANCE_RESERVED))

    assert refused is not None
    assert (refused.name, refused.reason) == (
        EventName.INVENTORY_REJECTED,
        "inventory: bag is full: 20 free slots, 21 needed",
    )
    assert (await steps.holdings(purchase)).free == 20
    assert await steps.held("inventory", purchase.order_id) is None


async def test_a_bag_filled_by_one_order_refuses_the_next(steps: Steps) -> None:
    purchase = await steps.purchase(stock=100, quantity=15)
    first = await steps.take("inventory", purchase.then(EventName.BALANCE_RESERVED))
    second_order = replace(purchase.then(EventName.BALANCE_RESERVED), order_id=new_id())

    refused = await steps.take("inventory", replace(second_order, quantity=6))

    assert first is not None
    assert first.name is EventName.INVENTORY_RESERVED
    assert refused is not None
    assert refused.reason == "inventory: bag is full: 5 free slots, 6 needed"
    assert (await steps.holdings(purchase)).free == 5
