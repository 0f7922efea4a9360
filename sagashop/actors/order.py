"""Order service: where a purchase starts and where it ends.

place_order (POST /orders)            price it, open it PENDING     -> order.created
payment.processed                     complete it                   -> order.completed
balance.rejected | balance.released   cancel it, with the reason    -> order.cancelled
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sagashop.actors.runtime import Service, step
from sagashop.actors.steplog import StepLog
from sagashop.events import Event, EventName, new_id
from sagashop.store.base import as_json, found, now
from sagashop.store.order import Order, OrderStatus, OrderStep

log = logging.getLogger("sagashop.order")

Ask = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]


async def place_order(
    user_id: str, item_id: str, quantity: int, *, ask: Ask, steps: StepLog
) -> dict[str, Any]:
    """Check the user and price the item first, so an unknown one is a 404 and no saga starts."""
    _user, item = await asyncio.gather(
        ask("user", "get_user", {"user_id": user_id}),
        ask("item", "get_item", {"item_id": item_id}),
    )
    order = {
        "id": new_id(),
        "user_id": user_id,
        "item_id": item_id,
        "quantity": quantity,
        "unit_price": item["price"],
        "total_amount": item["price"] * quantity,
    }
    await steps.record(order["id"], "create", "place_order", lambda: _open(order))
    log.info("order %s: %d x item %s for user %s", order["id"], quantity, item_id, user_id)
    return await get_order(order["id"])


async def _open(order: dict[str, Any]) -> Event:
    await Order.create(**order)
    return Event(
        EventName.ORDER_CREATED,
        order_id=order["id"],
        user_id=order["user_id"],
        item_id=order["item_id"],
        quantity=order["quantity"],
        amount=order["total_amount"],
    )


async def complete_order(event: Event) -> Event | None:
    if not await _end(event.order_id, OrderStatus.COMPLETED):
        return None
    log.info("order %s: completed", event.order_id)
    return event.follow(EventName.ORDER_COMPLETED)


async def cancel_order(event: Event) -> Event | None:
    if not await _end(event.order_id, OrderStatus.CANCELLED, event.reason):
        return None
    log.info("order %s: cancelled (%s)", event.order_id, event.reason)
    return event.follow(EventName.ORDER_CANCELLED)


async def _end(order_id: str, status: OrderStatus, reason: str | None = None) -> bool:
    """Move a PENDING order to where it ends; an order ends only once."""
    ended = await Order.filter(id=order_id, status=OrderStatus.PENDING).update(
        status=status, failure_reason=reason, updated_at=now()
    )
    return bool(ended)


async def get_order(order_id: str) -> dict[str, Any]:
    return as_json(await found(Order, "order", order_id))


async def list_user_orders(user_id: str) -> dict[str, Any]:
    orders = await Order.filter(user_id=user_id).order_by("-created_at", "-id")
    return {"userId": user_id, "orders": [as_json(order) for order in orders]}


SERVICE = Service(
    name="order",
    records=OrderStep,
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
    ),
    commands={"place_order": place_order},
    queries={"get_order": get_order, "list_user_orders": list_user_orders},
)
