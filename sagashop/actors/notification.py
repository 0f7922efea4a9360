"""Notification service: tells the user how their purchase ended (a log line, a stored message).

item.sold | order.cancelled    store and log the message -> notification.sent
"""

from __future__ import annotations

import logging
from typing import Any

from sagashop.events import Event, EventName
from sagashop.names import Request, ServiceName
from sagashop.saga import Service, step
from sagashop.saga.declare import Kept
from sagashop.store.book import Book
from sagashop.store.notification import (
    NOTIFICATIONS,
    Notification,
    NotificationDeadLetter,
    NotificationStep,
)
from sagashop.store.pages import PAGE, Position, page
from sagashop.store.render import as_json

log = logging.getLogger("sagashop.notification")


def message_for(event: Event) -> tuple[str, str]:
    """What kind of news the user gets, and the message."""
    purchase = f"Your purchase of {event.quantity} x item {event.item_id}"
    if event.name is EventName.ITEM_SOLD:
        return "order.completed", f"{purchase} for {event.amount} is complete."
    return "order.cancelled", f"{purchase} was cancelled and nothing was charged: {event.reason}"


def notify(event: Event, book: Book) -> Event:
    kind, message = message_for(event)
    book.insert(NOTIFICATIONS, event, user_id=event.user_id, kind=kind, message=message[:255])
    log.debug("order %s: told user %s: %s", event.order_id, event.user_id, message)
    return event.follow(EventName.NOTIFICATION_SENT)


async def list_notifications(
    user_id: str, after: Position | None = None, limit: int = PAGE
) -> dict[str, Any]:
    """A page of what the user was told, newest first."""
    rows, after = await page(Notification.filter(user_id=user_id), ("-id",), after, limit)
    found = [as_json(row, "user_id") for row in rows]
    return {"userId": user_id, "notifications": found, "next": after}


async def order_state(order_id: str) -> dict[str, Any] | None:
    row = await Notification.get_or_none(order_id=order_id)
    return None if row is None else as_json(row, "id", "order_id", "user_id")


SERVICE = Service(
    name=ServiceName.NOTIFICATION,
    records=NotificationStep,
    dead_letters=NotificationDeadLetter,
    tables=(NOTIFICATIONS,),
    steps=(
        step(
            "notify",
            on=[EventName.ITEM_SOLD, EventName.ORDER_CANCELLED],
            run=notify,
            emits=[EventName.NOTIFICATION_SENT],
            settling=True,
        ),
    ),
    queries={Request.LIST_NOTIFICATIONS: list_notifications, Request.ORDER_STATE: order_state},
    pruned=(Kept(Notification, "created_at"),),
)
