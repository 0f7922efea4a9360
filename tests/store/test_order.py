"""The order service opens an order once per id, ends it once, and, past its deadline, cancels
it and owes its undoing; `ask` reaches the user and item services in this process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from sagashop.actors.order import LOOK_AGAIN, Deadlines, claim_nudge
from sagashop.errors import Conflict, NotFound
from sagashop.events import EventName, new_id
from sagashop.names import Request
from sagashop.saga import Service
from sagashop.store.order import Order, OrderStatus
from tests.store.harness import Purchase, Steps

PLACE = Request.PLACE_ORDER


async def place(
    steps: Steps, purchase: Purchase, quantity: int | None = None, order: Service | None = None
) -> dict[str, Any]:
    """Place the purchase's order (its quantity unless told otherwise) as `POST /orders` does,
    in a batch of its own."""
    placing = (order or steps.services["order"]).batched[PLACE]
    asked = {
        "order_id": purchase.order_id,
        "user_id": purchase.user_id,
        "item_id": purchase.item_id,
        "quantity": purchase.created.quantity if quantity is None else quantity,
    }
    (placed,) = await steps.within(placing([asked]))
    if isinstance(placed, BaseException):
        raise placed
    assert isinstance(placed, dict)
    return placed


async def order_view(steps: Steps, purchase: Purchase) -> dict[str, Any]:
    view: dict[str, Any] = await steps.query("order", Request.GET_ORDER, order_id=purchase.order_id)
    return view


async def test_placing_an_order_prices_it_opens_it_and_emits_order_created(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(price=1_500, quantity=3)

    placed = await place(steps, purchase)

    assert (placed["id"], placed["status"], placed["owes"]) == (
        purchase.order_id,
        "PENDING",
        "outcome",
    )
    assert (placed["unitPrice"], placed["totalAmount"], placed["quantity"]) == (1_500, 4_500, 3)
    [(record_id, created)] = await steps.unpublished("order", purchase.order_id)
    assert (created.name, created.amount, created.quantity) == (EventName.ORDER_CREATED, 4_500, 3)
    assert (created.user_id, created.item_id) == (purchase.user_id, purchase.item_id)
    assert await steps.taken("order", purchase.order_id) == [("create", "order.created")]
    assert record_id == (await steps.step_rows("order", purchase.order_id))[0].id


async def test_placing_the_same_order_again_answers_the_first_and_opens_nothing(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(price=1_000, quantity=2)
    first = await place(steps, purchase)

    again = await place(steps, purchase)

    assert again == first
    assert await steps.taken("order", purchase.order_id) == [("create", "order.created")]
    with pytest.raises(Conflict, match="placed before with another user, item or quantity"):
        await place(steps, purchase, quantity=5)
    assert (await order_view(steps, purchase))["quantity"] == 2


async def test_an_order_for_an_unknown_user_is_not_opened(steps: Steps) -> None:
    purchase = await steps.purchase()
    stranger = Purchase(new_id(), purchase.item_id, purchase.created)

    with pytest.raises(NotFound, match="no user with id"):
        await place(steps, stranger)

    assert await steps.taken("order", purchase.order_id) == []
    with pytest.raises(NotFound, match="no order with id"):
        await order_view(steps, purchase)


async def test_a_payment_completes_a_pending_order_once_and_a_second_replays(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(price=600, quantity=2)
    await place(steps, purchase)

    completed = await steps.take("order", purchase.then(EventName.PAYMENT_PROCESSED))
    view = await order_view(steps, purchase)
    again = await steps.take("order", purchase.then(EventName.PAYMENT_PROCESSED))

    assert completed is not None
    assert (completed.name, completed.amount) == (EventName.ORDER_COMPLETED, 1_200)
    assert again == completed
    assert (view["status"], view["owes"], view["failureReason"]) == (
        "COMPLETED",
        "settling",
        None,
    )
    assert await order_view(steps, purchase) == view, "the replay changed nothing"
    assert await steps.taken("order", purchase.order_id) == [
        ("create", "order.created"),
        ("complete", "order.completed"),
    ]


async def test_a_rejection_cancels_a_pending_order_with_its_reason(steps: Steps) -> None:
    purchase = await steps.purchase()
    await place(steps, purchase)
    reason = "user: balance too low: has 10, needs 1000"

    cancelled = await steps.take("order", purchase.then(EventName.BALANCE_REJECTED, reason))

    assert cancelled is not None
    assert (cancelled.name, cancelled.reason) == (EventName.ORDER_CANCELLED, reason)
    view = await order_view(steps, purchase)
    assert (view["status"], view["failureReason"], view["owes"]) == (
        "CANCELLED",
        reason,
        "settling",
    )


async def test_a_rejection_after_completion_changes_nothing(steps: Steps) -> None:
    purchase = await steps.purchase()
    await place(steps, purchase)
    await steps.take("order", purchase.then(EventName.PAYMENT_PROCESSED))

    late = await steps.take("order", purchase.then(EventName.BALANCE_RELEASED, "too late"))

    assert late is None
    view = await order_view(steps, purchase)
    assert (view["status"], view["failureReason"]) == ("COMPLETED", None)


async def test_telling_the_user_closes_the_order_so_nothing_is_owed(steps: Steps) -> None:
    purchase = await steps.purchase()
    await place(steps, purchase)
    await steps.take("order", purchase.then(EventName.PAYMENT_PROCESSED))
    completed = await order_view(steps, purchase)

    closed = await steps.take("order", purchase.then(EventName.NOTIFICATION_SENT))

    assert closed is None
    view = await order_view(steps, purchase)
    assert (view["status"], view["owes"], view["retryAt"]) == ("COMPLETED", None, None)
    assert view["updatedAt"] == completed["updatedAt"], "it says when the order ended"


async def test_an_order_past_its_deadline_is_cancelled_once_and_owes_its_undoing(
    steps: Steps,
) -> None:
    hasty = steps.bind("order", Deadlines(saga=0.0, nudge_after=0.0))
    purchase = await steps.purchase(price=400)
    await place(steps, purchase, order=hasty)

    swept = await steps.within(hasty.periodic["sweep"]())
    view = await order_view(steps, purchase)
    late = await steps.take("order", purchase.then(EventName.PAYMENT_PROCESSED))

    assert swept.get("expired") == 1
    assert (view["status"], view["owes"], view["failureReason"]) == (
        "CANCELLED",
        "undoing",
        "order: no outcome within the 0s deadline",
    )
    assert late is None, "a payment after the deadline completes nothing"
    [expired] = [e for _, e in await steps.unpublished("order", purchase.order_id)][1:]
    assert (expired.name, expired.amount) == (EventName.ORDER_EXPIRED, 400)
    assert await steps.taken("order", purchase.order_id) == [
        ("create", "order.created"),
        ("expire", "order.expired"),
        ("complete", None),
    ]

    # the user's money back ends the undoing: the settling is owed now
    given_back = await steps.take("order", purchase.then(EventName.BALANCE_RELEASED))
    assert given_back is not None
    assert given_back.name is EventName.ORDER_CANCELLED
    settling = await order_view(steps, purchase)
    assert settling["owes"] == "settling"
    assert settling["updatedAt"] == view["updatedAt"], "it says when the order ended"


async def test_a_waiting_read_sees_an_order_ended_by_another_process(steps: Steps) -> None:
    """Where several processes run the order service, the step that ends an order may be taken
    in another one, which wakes no one here: the wait still answers, long before it runs out."""
    purchase = await steps.purchase()
    await place(steps, purchase)
    waiting = steps.spawn(
        steps.services["order"].queries[Request.GET_ORDER_STATUS](
            order_id=purchase.order_id, wait=30
        )
    )

    ended = await steps.read(
        lambda: Order.filter(id=purchase.order_id).update(status=OrderStatus.COMPLETED)
    )
    status = await asyncio.wait_for(waiting, timeout=LOOK_AGAIN * 4)

    assert ended == 1
    assert status["status"] == "COMPLETED"


async def test_a_nudge_read_before_the_order_closed_gives_it_no_retry_at_back(
    steps: Steps,
) -> None:
    """The sweep reads an order owing its settling; the close step commits; the sweep's claim
    comes after. It must lose: a closed order with a `retry_at` came due again for ever (and,
    once the sweep expected only orders that owe something, stopped the sweep in a chaos run)."""
    purchase = await steps.purchase()
    await place(steps, purchase)
    await steps.take("order", purchase.then(EventName.PAYMENT_PROCESSED))
    read = await steps.read(lambda: Order.get(id=purchase.order_id))

    await steps.take("order", purchase.then(EventName.NOTIFICATION_SENT))
    claimed = await steps.within(claim_nudge(read, read.retry_at))

    view = await order_view(steps, purchase)
    assert claimed is False
    assert (view["owes"], view["retryAt"], view["nudges"]) == (None, None, 0)


async def test_an_order_that_owes_nothing_never_stops_the_sweep_for_the_others(
    steps: Steps,
) -> None:
    """A closed order with a `retry_at` left behind (as the race above left them before)."""
    hasty = steps.bind("order", Deadlines(saga=0.0, nudge_after=0.0))
    closed, late = await steps.purchase(), await steps.purchase()
    await place(steps, closed, order=hasty)
    await steps.take("order", closed.then(EventName.PAYMENT_PROCESSED))
    await steps.take("order", closed.then(EventName.NOTIFICATION_SENT))
    await steps.read(lambda: Order.filter(id=closed.order_id).update(retry_at=datetime.now(UTC)))
    await place(steps, late, order=hasty)

    swept = await steps.within(hasty.periodic["sweep"]())

    assert swept == {"expired": 1}
    assert (await order_view(steps, late))["status"] == "CANCELLED"
    assert (await order_view(steps, closed))["status"] == "COMPLETED"
