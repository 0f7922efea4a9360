"""A compensation can overtake the action it undoes. It then records a void, so that the action,
arriving late, is refused instead of holding something for an order that is already undone;
and a compensation arriving after the reservation was spent gives nothing back."""

from __future__ import annotations

import pytest

from sagashop.events import EventName
from sagashop.names import Request
from tests.store.harness import Holdings, Steps
from tests.topology import trigger


@pytest.mark.parametrize(
    ("service", "compensation", "cause", "rejection", "reason"),
    [
        (
            "user",
            EventName.INVENTORY_RELEASED,
            EventName.ORDER_CREATED,
            EventName.BALANCE_REJECTED,
            "user: the order was cancelled first",
        ),
        (
            "inventory",
            EventName.ITEM_REJECTED,
            EventName.BALANCE_RESERVED,
            EventName.INVENTORY_REJECTED,
            "inventory: the order was cancelled first",
        ),
        (
            "item",
            EventName.PAYMENT_REJECTED,
            EventName.INVENTORY_RESERVED,
            EventName.ITEM_REJECTED,
            "item: the order was cancelled first",
        ),
    ],
    ids=["user", "inventory", "item"],
)
async def test_a_compensation_before_its_action_voids_it_and_the_action_is_refused(
    steps: Steps,
    service: str,
    compensation: EventName,
    cause: EventName,
    rejection: EventName,
    reason: str,
) -> None:
    purchase = await steps.purchase(balance=10_000, price=1_000, stock=5, quantity=2)

    undone = await steps.take(service, purchase.then(compensation, "undone upstream"))
    late = await steps.take(service, purchase.then(cause))

    assert undone is not None
    assert undone.name.endswith(".released")
    assert late is not None
    assert (late.name, late.reason) == (rejection, reason)
    assert await steps.held(service, purchase.order_id) == "voided"
    assert await steps.holdings(purchase) == Holdings(balance=10_000, stock=5, free=20)


async def test_an_expiry_before_the_charge_voids_it_and_the_charge_is_refused(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(price=900)

    refunded = await steps.take("payment", purchase.then(EventName.ORDER_EXPIRED, "deadline"))
    late = await steps.take("payment", purchase.then(trigger("payment", "charge")))

    assert refunded is not None
    assert refunded.name is EventName.PAYMENT_REFUNDED
    assert late is not None
    assert (late.name, late.reason) == (
        EventName.PAYMENT_REJECTED,
        "payment: the order expired first",
    )
    state = await steps.query("payment", Request.ORDER_STATE, order_id=purchase.order_id)
    assert (state["state"], state["reason"]) == (
        "voided",
        "the order expired before it was charged",
    )


async def test_a_refund_after_the_money_was_spent_gives_nothing_back(steps: Steps) -> None:
    purchase = await steps.purchase(balance=3_000, price=1_000)
    await steps.take("user", purchase.created)
    spent = await steps.take("user", purchase.then(EventName.ORDER_COMPLETED))

    late = await steps.take("user", purchase.then(EventName.INVENTORY_RELEASED))

    assert spent is not None
    assert spent.name is EventName.BALANCE_SPENT
    assert late is not None
    assert late.name is EventName.BALANCE_RELEASED
    assert (await steps.holdings(purchase)).balance == 2_000
    assert await steps.held("user", purchase.order_id) == "confirmed"


async def test_settling_puts_the_items_in_the_bag_and_sells_the_stock(steps: Steps) -> None:
    purchase = await steps.purchase(balance=10_000, price=1_000, stock=6, quantity=4)
    for service, cause in [
        ("user", EventName.ORDER_CREATED),
        ("inventory", EventName.BALANCE_RESERVED),
        ("item", EventName.INVENTORY_RESERVED),
    ]:
        await steps.take(service, purchase.then(cause))

    filled = await steps.take("inventory", purchase.then(EventName.BALANCE_SPENT))
    sold = await steps.take("item", purchase.then(EventName.INVENTORY_FILLED))

    assert (filled and filled.name, sold and sold.name) == (
        EventName.INVENTORY_FILLED,
        EventName.ITEM_SOLD,
    )
    assert await steps.holdings(purchase) == Holdings(balance=6_000, stock=2, free=16)
    assert await steps.held("inventory", purchase.order_id) == "confirmed"
    assert await steps.held("item", purchase.order_id) == "confirmed"
    bag = await steps.query("inventory", Request.GET_INVENTORY, user_id=purchase.user_id)
    assert [(row["itemId"], row["quantity"]) for row in bag["inventory"]] == [(purchase.item_id, 4)]
