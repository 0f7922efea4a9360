"""Order service: where a purchase starts, where it ends, and what makes sure it does end.

    place_order (POST /orders)     price it, open it PENDING -> order.created
    payment.processed              complete it               -> order.completed
    balance.rejected | .released   cancel it, with why       -> order.cancelled
    notification.sent              close it: nothing is owed
    sweep (every second or so)     ask again for what is owed, publishing the last event again;
                                   end a saga past its deadline -> order.expired

Until an order is closed the service knows what it is still owed (`Order.owes`) and, past
`retry_at`, publishes its last event again; every service that already acted replays its
recorded outcome, so the saga picks up wherever it was lost. An order past its deadline is
cancelled at once, and its undoing starts from the last step backwards: payment refunds or
voids, then item, inventory and user give back what they hold, each recording a void where
nothing was held yet, so a late action is refused rather than held for an order that is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tortoise.expressions import RawSQL

from sagashop.errors import Conflict, NotFound
from sagashop.events import Event, EventName, refused_by
from sagashop.metrics import Sagas
from sagashop.requests import Request
from sagashop.saga import Service, StepLog, step
from sagashop.store.facts import table
from sagashop.store.order import Order, OrderDeadLetter, OrderStatus, OrderStep, Owed
from sagashop.store.pages import NEWEST_FIRST, PAGE, Position, page
from sagashop.store.render import as_json, found, now

log = logging.getLogger("sagashop.order")

Ask = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]
SWEEP_BATCH = 200
LOOK_AGAIN = 0.5
"""Seconds between reads of an order a client waits for, when no step here woke the wait."""


@dataclass(frozen=True)
class Deadlines:
    """How long a saga may take, and how often a stalled one is looked at (backing off)."""

    saga: float = 30.0
    first_nudge: float = 5.0

    def wait(self, nudges: int) -> timedelta:
        """Doubling from the first nudge, but never past a quarter of the deadline: a saga that
        lost an event near its end should not wait longer than the deadline gave it."""
        longest = max(self.first_nudge, self.saga / 4)
        return timedelta(seconds=min(self.first_nudge * 2 ** min(nudges, 16), longest))


async def place_order(
    order_id: str,
    user_id: str,
    item_id: str,
    quantity: int,
    *,
    ask: Ask,
    step_log: StepLog,
    deadlines: Deadlines,
    sagas: Sagas,
) -> dict[str, Any]:
    """Check the user and price the item first, so an unknown one is a 404 and no saga starts.
    Placing the same order id again opens nothing new: it answers with the order placed then
    (read back; a new order is answered from what was written, without reading it again)."""
    _user, item = await asyncio.gather(
        ask("user", Request.GET_USER, {"user_id": user_id}),
        ask("item", Request.GET_ITEM, {"item_id": item_id}),
    )
    opened = now()
    order = Order(
        id=order_id,
        user_id=user_id,
        item_id=item_id,
        quantity=quantity,
        unit_price=item["price"],
        total_amount=item["price"] * quantity,
        deadline_at=opened + timedelta(seconds=deadlines.saga),
        retry_at=opened + deadlines.wait(0),
    )
    fresh: list[Order] = []

    async def open_it() -> Event:
        await order.save(force_create=True)
        fresh.append(order)
        log.debug("order %s: %d x item %s for user %s", order.id, quantity, item_id, user_id)
        return _event(EventName.ORDER_CREATED, order)

    await step_log.record(str(order.id), "create", "place_order", open_it)
    if fresh:
        sagas.started(str(order.id))
        return as_json(order, "backoff")
    placed = await get_order(str(order.id), step_log=step_log)
    if (placed["userId"], placed["itemId"], placed["quantity"]) != (user_id, item_id, quantity):
        raise Conflict(f"order {order_id} was placed before with another user, item or quantity")
    return placed


def _event(name: EventName, order: Order, reason: str | None = None) -> Event:
    return Event(
        name,
        order_id=str(order.id),
        user_id=str(order.user_id),
        item_id=str(order.item_id),
        quantity=order.quantity,
        amount=order.total_amount,
        reason=reason,
    )


async def complete_order(
    event: Event, *, deadlines: Deadlines, step_log: StepLog, sagas: Sagas
) -> Event | None:
    ended = await _end(event.order_id, deadlines, status=OrderStatus.COMPLETED)
    if not ended:
        return None  # it expired meanwhile: the payment service refunds what it took
    step_log.after_commit(partial(sagas.completed, event.order_id))
    return event.follow(EventName.ORDER_COMPLETED)


async def cancel_order(
    event: Event, *, deadlines: Deadlines, step_log: StepLog, sagas: Sagas
) -> Event | None:
    """The user's money is back: cancel the order, or, if it expired, stop asking for that."""
    if await _end(event.order_id, deadlines, OrderStatus.CANCELLED, event.reason):
        step_log.after_commit(partial(sagas.cancelled, event.order_id, event.reason))
        log.debug("order %s: cancelled (%s)", event.order_id, event.reason)
    elif await _owed_next(event.order_id, Owed.UNDOING, Owed.SETTLING, deadlines):
        log.debug("order %s: everything it held is given back", event.order_id)
    else:
        return None
    return event.follow(EventName.ORDER_CANCELLED)


async def close_order(event: Event, *, deadlines: Deadlines) -> None:
    """The user was told, after every service settled its part: nothing more is owed."""
    await _owed_next(event.order_id, Owed.SETTLING, None, deadlines)


async def _end(
    order_id: str, deadlines: Deadlines, status: OrderStatus, reason: str | None = None
) -> bool:
    """Move a PENDING order to where it ends (once); then its settling is owed."""
    ended = await Order.filter(id=order_id, status=OrderStatus.PENDING).update(
        status=status, failure_reason=reason, updated_at=now(), **_owing(Owed.SETTLING, deadlines)
    )
    return bool(ended)


async def _owed_next(order_id: str, was: Owed, becomes: Owed | None, deadlines: Deadlines) -> bool:
    moved = await Order.filter(id=order_id, owes=was).update(**_owing(becomes, deadlines))
    return bool(moved)


def _owing(owed: Owed | None, deadlines: Deadlines) -> dict[str, Any]:
    """The columns that say what is owed and when to ask again, backing off from scratch."""
    retry_at = None if owed is None else now() + deadlines.wait(0)
    return {"owes": owed, "retry_at": retry_at, "backoff": 0}


async def sweep(*, step_log: StepLog, deadlines: Deadlines, sagas: Sagas) -> dict[str, int]:
    """Ask again for what the due orders are owed, and end those past their deadline."""
    moment = now()
    due = await Order.filter(retry_at__lte=moment).order_by("retry_at").limit(SWEEP_BATCH)
    done: Counter[str] = Counter()
    for order in due:
        expiring = order.owes is Owed.OUTCOME and moment >= order.deadline_at
        if expiring:
            expire = partial(_expire, order, deadlines, step_log, sagas)
            await step_log.record(str(order.id), "expire", "deadline", expire)
        elif await _take_turn(order, deadlines, moment):
            await step_log.republish(str(order.id), _last_step(order))
            sagas.redriven(order.owes)
        else:
            continue  # another process running the order service took this one
        done["expired" if expiring else f"asked again for {order.owes}"] += 1
    if done:
        log.info("sweep: %s", ", ".join(f"{n} {what}" for what, n in done.items()))
    return dict(done)


def _last_step(order: Order) -> str:
    """The step whose event, published again, drives what the order is owed."""
    if order.owes is Owed.OUTCOME:
        return "create"
    if order.owes is Owed.UNDOING:
        return "expire"
    return "complete" if order.status is OrderStatus.COMPLETED else "cancel"


async def _take_turn(order: Order, deadlines: Deadlines, moment: datetime) -> bool:
    next_look = moment + deadlines.wait(order.backoff + 1)
    if order.owes is Owed.OUTCOME:
        next_look = min(next_look, order.deadline_at)
    taken = await Order.filter(id=order.id, nudges=order.nudges).update(
        nudges=order.nudges + 1, backoff=order.backoff + 1, retry_at=next_look
    )
    return bool(taken)


async def _expire(
    order: Order, deadlines: Deadlines, step_log: StepLog, sagas: Sagas
) -> Event | None:
    """Cancel at once; the undoing is owed until the user has their money back."""
    reason = f"order: no outcome within the {deadlines.saga:g}s deadline"
    ended = await Order.filter(id=order.id, status=OrderStatus.PENDING).update(
        status=OrderStatus.CANCELLED,
        failure_reason=reason,
        updated_at=now(),
        **_owing(Owed.UNDOING, deadlines),
    )
    if not ended:
        return None
    log.warning("order %s: expired; undoing what it holds", order.id)
    step_log.after_commit(partial(sagas.expired, str(order.id)))
    return _event(EventName.ORDER_EXPIRED, order, reason)


async def audit_facts() -> dict[str, Any]:
    columns = ("id", "status", "user_id", "item_id", "quantity", "total_amount")
    times = ("created_at", "updated_at", "deadline_at", "owes")
    return {"orders": await table(Order, *columns, *times)}


async def get_order(order_id: str, wait: float = 0.0, *, step_log: StepLog) -> dict[str, Any]:
    """The order; with `wait`, once it has ended or `wait` seconds have passed."""

    async def read() -> dict[str, Any]:
        return as_json(await found(Order, "order", order_id), "backoff")

    return await _once_ended(order_id, wait, step_log, read)


async def get_order_status(
    order_id: str, wait: float = 0.0, *, step_log: StepLog
) -> dict[str, Any]:
    """Only where the order stands: one small read, for clients that wait for the outcome."""

    async def read() -> dict[str, Any]:
        rows = await Order.filter(id=order_id).values("status", "failure_reason")
        if not rows:
            raise NotFound(f"no order with id {order_id}")
        return {
            "id": order_id,
            "status": rows[0]["status"],
            "failureReason": rows[0]["failure_reason"],
        }

    return await _once_ended(order_id, wait, step_log, read)


async def _once_ended(
    order_id: str,
    wait: float,
    step_log: StepLog,
    read: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """What `read` finds once the order is no longer PENDING, or when `wait` runs out. It reads
    again as soon as the order takes a step in this process, and every `LOOK_AGAIN` seconds
    besides: where several processes run the order service, the step may be taken in another."""
    if wait <= 0:
        return await read()
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + wait
    while True:
        with step_log.watch.next_step(order_id) as stepped:
            found_now = await read()
            remaining = give_up_at - loop.time()
            if found_now["status"] != OrderStatus.PENDING or remaining <= 0:
                return found_now
            await asyncio.wait([stepped], timeout=min(remaining, LOOK_AGAIN))


async def list_user_orders(
    user_id: str, after: Position | None = None, limit: int = PAGE
) -> dict[str, Any]:
    """A page of the user's orders, newest first."""
    orders, after = await page(Order.filter(user_id=user_id), NEWEST_FIRST, after, limit)
    found = [as_json(order, "backoff") for order in orders]
    return {"userId": user_id, "orders": found, "next": after}


async def list_orders(
    status: str | None = None, limit: int = PAGE, after: Position | None = None
) -> dict[str, Any]:
    """The latest orders, newest first, of one status if given (the monitor's list)."""
    chosen = Order.all() if status is None else Order.filter(status=OrderStatus(status))
    orders, after = await page(chosen, NEWEST_FIRST, after, limit)
    return {"orders": [as_json(order, "backoff") for order in orders], "next": after}


async def count_orders() -> dict[str, Any]:
    """How many orders stand where, and which service's refusal cancelled how many ("order"
    for those that expired). COUNT(*), so that the index on (status, failure_reason) answers
    it alone."""
    rows = (
        await Order.annotate(count=RawSQL("COUNT(*)"))
        .group_by("status", "failure_reason")
        .values("status", "failure_reason", "count")
    )
    by_status: Counter[str] = Counter()
    cancelled_by: Counter[str] = Counter()
    for row in rows:
        by_status[row["status"]] += row["count"]
        if row["status"] == OrderStatus.CANCELLED:
            cancelled_by[refused_by(row["failure_reason"]) or "other"] += row["count"]
    statuses = {status.value: by_status[status.value] for status in OrderStatus}
    return {"byStatus": statuses, "cancelledBy": dict(cancelled_by)}


SERVICE = Service(
    name="order",
    records=OrderStep,
    dead_letters=OrderDeadLetter,
    steps=(
        step(
            "complete",
            on=[EventName.PAYMENT_PROCESSED],
            run=complete_order,
            emits=[EventName.ORDER_COMPLETED],
        ),
        step(
            "cancel",
            on=[EventName.BALANCE_REJECTED, EventName.BALANCE_RELEASED],
            run=cancel_order,
            emits=[EventName.ORDER_CANCELLED],
        ),
        step("close", on=[EventName.NOTIFICATION_SENT], run=close_order),
    ),
    commands={Request.PLACE_ORDER: place_order},
    queries={
        Request.GET_ORDER: get_order,
        Request.GET_ORDER_STATUS: get_order_status,
        Request.LIST_USER_ORDERS: list_user_orders,
        Request.LIST_ORDERS: list_orders,
        Request.COUNT_ORDERS: count_orders,
        Request.AUDIT_FACTS: audit_facts,
    },
    periodic={"sweep": sweep},
)
