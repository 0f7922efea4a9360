"""A reservation that cannot be had is refused with the reason, and changes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sagashop.events import EventName, new_id
from sagashop.names import Request
from tests.store.harness import Holdings, Steps


@pytest.mark.parametrize(
    ("purchase_of", "service", "cause", "refusal", "reason", "left"),
    [
        pytest.param(
            {"balance": 1_500, "price": 800, "quantity": 2},
            "user",
            EventName.ORDER_CREATED,
            EventName.BALANCE_REJECTED,
            "user: balance too low: has 1500, needs 1600",
            Holdings(balance=1_500, stock=10, free=20),
            id="balance too low",
        ),
        pytest.param(
            {"stock": 2, "quantity": 3},
            "item",
            EventName.INVENTORY_RESERVED,
            EventName.ITEM_REJECTED,
            "item: out of stock: 2 left, 3 requested",
            Holdings(balance=10_000, stock=2, free=20),
            id="out of stock",
        ),
        pytest.param(
            {"stock": 100, "quantity": 21},
            "inventory",
            EventName.BALANCE_RESERVED,
            EventName.INVENTORY_REJECTED,
            "inventory: bag is full: 20 free slots, 21 needed",
            Holdings(balance=10_000, stock=100, free=20),
            id="bag full",
        ),
    ],
)
async def test_asking_for_more_than_there_is_is_refused_with_the_reason_and_changes_nothing(
    steps: Steps,
    purchase_of: dict[str, int],
    service: str,
    cause: EventName,
    refusal: EventName,
    reason: str,
    left: Holdings,
) -> None:
    purchase = await steps.purchase(**purchase_of)

    refused = await steps.take(service, purchase.then(cause))

    assert refused is not None
    assert (refused.name, refused.reason) == (refusal, reason)
    assert await steps.holdings(purchase) == left
    assert await steps.held(service, purchase.order_id) is None
    assert await steps.taken(service, purchase.order_id) == [("reserve", refusal)]


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


async def test_an_unknown_item_is_refused(steps: Steps) -> None:
    purchase = await steps.purchase()

    refused = await steps.take(
        "item", replace(purchase.then(EventName.INVENTORY_RESERVED), item_id=new_id())
    )

    assert refused is not None
    assert (refused.name, refused.reason) == (EventName.ITEM_REJECTED, "item: unknown item")


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
