"""The payment service charges through the mock provider once per order, and refunds or voids
when the order expires."""

from __future__ import annotations

from typing import Any

from sagashop.events import EventName
from sagashop.names import Request
from tests.store.harness import Purchase, Steps
from tests.topology import trigger

CHARGED_ON = trigger("payment", "charge")


async def decline_rate(steps: Steps, rate: float) -> None:
    """Set the mock's decline rate through the service's own command, as the tests of the
    whole system do."""
    answer = await steps.command("payment", Request.CONFIGURE_PAYMENTS, failure_rate=rate)
    assert answer == {"failureRate": rate, "seed": None}


async def payment(steps: Steps, purchase: Purchase) -> dict[str, Any]:
    state: dict[str, Any] = await steps.query(
        "payment", Request.ORDER_STATE, order_id=purchase.order_id
    )
    return state


async def recorded(steps: Steps, purchase: Purchase) -> tuple[str, str | None, int]:
    """What the payment service recorded of the order: its state, the reason, the amount."""
    state = await payment(steps, purchase)
    return state["state"], state["reason"], state["amount"]


async def test_a_provider_that_declines_everything_rejects_the_charge(steps: Steps) -> None:
    await decline_rate(steps, 1.0)
    purchase = await steps.purchase(price=1_000)

    rejected = await steps.take("payment", purchase.then(CHARGED_ON))

    assert rejected is not None
    assert (rejected.name, rejected.reason) == (
        EventName.PAYMENT_REJECTED,
        "payment: declined by the mock provider",
    )
    assert await recorded(steps, purchase) == ("declined", "declined by the mock provider", 1_000)


async def test_a_provider_that_declines_nothing_captures_the_amount(steps: Steps) -> None:
    await decline_rate(steps, 0.0)
    purchase = await steps.purchase(price=1_250, quantity=3)

    processed = await steps.take("payment", purchase.then(CHARGED_ON))

    assert processed is not None
    assert (processed.name, processed.amount) == (EventName.PAYMENT_PROCESSED, 3_750)
    assert await recorded(steps, purchase) == ("captured", None, 3_750)


async def test_a_declined_charge_redelivered_is_not_tried_again(steps: Steps) -> None:
    await decline_rate(steps, 1.0)
    purchase = await steps.purchase()
    reserved = purchase.then(CHARGED_ON)
    rejected = await steps.take("payment", reserved)
    await decline_rate(steps, 0.0)

    again = await steps.take("payment", reserved)

    assert again == rejected
    assert (await payment(steps, purchase))["state"] == "declined"


async def test_an_expiry_after_the_capture_refunds_it(steps: Steps) -> None:
    await decline_rate(steps, 0.0)
    purchase = await steps.purchase(price=800)
    await steps.take("payment", purchase.then(CHARGED_ON))
    expired = purchase.then(EventName.ORDER_EXPIRED, "order: no outcome within the 30s deadline")

    refunded = await steps.take("payment", expired)
    again = await steps.take("payment", expired)

    assert refunded is not None
    assert (refunded.name, refunded.reason) == (
        EventName.PAYMENT_REFUNDED,
        "order: no outcome within the 30s deadline",
    )
    assert again == refunded
    assert await recorded(steps, purchase) == ("refunded", "the order expired", 800)


async def test_an_expiry_after_a_decline_leaves_the_decline(steps: Steps) -> None:
    await decline_rate(steps, 1.0)
    purchase = await steps.purchase()
    await steps.take("payment", purchase.then(CHARGED_ON))

    refunded = await steps.take("payment", purchase.then(EventName.ORDER_EXPIRED))

    assert refunded is not None
    assert refunded.name is EventName.PAYMENT_REFUNDED
    assert (await payment(steps, purchase))["state"] == "declined"


async def test_a_payment_that_crashes_is_given_up_as_a_rejection(steps: Steps) -> None:
    purchase = await steps.purchase()
    reserved = purchase.then(CHARGED_ON)

    failure = await steps.give_up("payment", reserved, ConnectionError("provider down"))

    assert failure is not None
    assert (failure.name, failure.reason) == (
        EventName.PAYMENT_REJECTED,
        "payment failed: internal error (ConnectionError: provider down)",
    )
    assert await payment(steps, purchase) is None
