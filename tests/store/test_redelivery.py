"""An event delivered again is not acted on again: the step log finds the step taken and
replays what it emitted then, so a redelivery heals a loss further down and changes nothing."""

from __future__ import annotations

import pytest

from sagashop.events import Event, EventName
from sagashop.names import Request
from tests.store.harness import Holdings, Steps
from tests.topology import trigger


async def delivered_twice(steps: Steps, service: str, event: Event, outcome: EventName) -> Event:
    """Hand `service` the same event twice: both times it must answer the one `outcome` event."""
    first = await steps.take(service, event)
    again = await steps.take(service, event)

    assert first is not None
    assert first.name is outcome
    assert again == first, "the same event, event_id and all, not a new one"
    return first


async def test_a_redelivered_event_replays_the_recorded_outcome_and_acts_once(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_200)

    first = await delivered_twice(steps, "user", purchase.created, EventName.BALANCE_RESERVED)

    assert first.causation_id == purchase.created.event_id
    assert (await steps.holdings(purchase)).balance == 3_800
    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]


async def test_the_same_order_told_by_another_event_still_replays_the_first_outcome(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)
    released = await steps.take("user", purchase.then(EventName.INVENTORY_REJECTED, "full bag"))

    # the other compensation the refund step handles, with an event id of its own
    again = await steps.take("user", purchase.then(EventName.INVENTORY_RELEASED))

    assert again == released
    assert await steps.taken("user", purchase.order_id) == [("refund", "balance.released")]


async def test_a_redelivered_compensation_gives_back_once(steps: Steps) -> None:
    purchase = await steps.purchase(balance=5_000, price=2_000)
    await steps.take("user", purchase.created)
    released = purchase.then(EventName.INVENTORY_RELEASED)

    await delivered_twice(steps, "user", released, EventName.BALANCE_RELEASED)

    assert (await steps.holdings(purchase)).balance == 5_000
    assert await steps.held("user", purchase.order_id) == "released"


@pytest.mark.parametrize(
    ("service", "cause", "outcome", "after"),
    [
        ("user", EventName.ORDER_CREATED, "balance.reserved", Holdings(8_500, 10, 20)),
        ("inventory", EventName.BALANCE_RESERVED, "inventory.reserved", Holdings(10_000, 10, 17)),
        ("item", EventName.INVENTORY_RESERVED, "item.reserved", Holdings(10_000, 7, 20)),
    ],
    ids=["user", "inventory", "item"],
)
async def test_a_reservation_holds_once_however_often_its_event_arrives(
    steps: Steps, service: str, cause: EventName, outcome: str, after: Holdings
) -> None:
    purchase = await steps.purchase(balance=10_000, price=500, stock=10, quantity=3)
    event = purchase.then(cause)

    outcomes = [await steps.take(service, event) for _ in range(3)]

    assert outcomes[0] is not None
    assert outcomes[0].name == outcome
    assert outcomes == [outcomes[0]] * 3, "every redelivery replays the first outcome"
    assert await steps.holdings(purchase) == after
    assert await steps.held(service, purchase.order_id) == "reserved"


async def test_a_charge_redelivered_charges_once(steps: Steps) -> None:
    purchase = await steps.purchase(price=700, quantity=2)
    reserved = purchase.then(trigger("payment", "charge"))

    await delivered_twice(steps, "payment", reserved, EventName.PAYMENT_PROCESSED)

    state = await steps.query("payment", Request.ORDER_STATE, order_id=purchase.order_id)
    assert (state["state"], state["amount"]) == ("captured", 1_400)


async def test_a_user_is_told_once_however_often_the_sale_arrives(steps: Steps) -> None:
    purchase = await steps.purchase(price=250, quantity=2)
    sold = purchase.then(EventName.ITEM_SOLD)

    await delivered_twice(steps, "notification", sold, EventName.NOTIFICATION_SENT)

    told = await steps.query("notification", Request.LIST_NOTIFICATIONS, user_id=purchase.user_id)
    assert [(n["kind"], n["message"]) for n in told["notifications"]] == [
        (
            "order.completed",
            f"Your purchase of 2 x item {purchase.item_id} for 500 is complete.",
        )
    ]
