"""Item service: keeps the catalogue, its prices and its stock.

inventory.reserved             hold the stock            -> item.reserved | item.rejected
payment.rejected | .refunded   put it back               -> item.released
inventory.filled               the stock is sold         -> item.sold
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from tortoise.expressions import F

from sagashop.events import Event, EventName
from sagashop.requests import Request
from sagashop.saga import Service, reason_or_retry, step
from sagashop.store.facts import table
from sagashop.store.item import Item, ItemDeadLetter, ItemStep, StockReservation
from sagashop.store.pages import OLDEST_FIRST, PAGE, Position, page
from sagashop.store.render import as_json, found

log = logging.getLogger("sagashop.item")


class Stocked(Protocol):
    stock: int


def refusal(item: Stocked | None, quantity: int) -> str | None:
    """Why `quantity` of `item` cannot be had, or None if it can."""
    if item is None:
        return "unknown item"
    if item.stock < quantity:
        return f"out of stock: {item.stock} left, {quantity} requested"
    return None


async def reserve_stock(event: Event) -> Event:
    if not await StockReservation.hold(
        event.order_id, item_id=event.item_id, quantity=event.quantity
    ):
        return event.follow(EventName.ITEM_REJECTED, "item: the order was cancelled first")
    taken = await Item.filter(id=event.item_id, stock__gte=event.quantity).update(
        stock=F("stock") - event.quantity
    )
    if not taken:
        await StockReservation.unhold(event.order_id)
        reason = reason_or_retry(refusal(await Item.get_or_none(id=event.item_id), event.quantity))
        return event.follow(EventName.ITEM_REJECTED, f"item: {reason}")
    log.debug("order %s: reserved %d of item %s", event.order_id, event.quantity, event.item_id)
    return event.follow(EventName.ITEM_RESERVED)


async def restock(event: Event) -> Event:
    held = await StockReservation.release(
        event.order_id, item_id=event.item_id, quantity=event.quantity
    )
    if held is not None:
        await Item.filter(id=held.item_id).update(stock=F("stock") + held.quantity)
        log.debug("order %s: put back %d of item %s", event.order_id, held.quantity, held.item_id)
    return event.follow(EventName.ITEM_RELEASED)


async def sell_stock(event: Event) -> Event:
    await StockReservation.confirm(event.order_id)
    return event.follow(EventName.ITEM_SOLD)


async def create_item(item_id: str, name: str, price: int, stock: int) -> dict[str, Any]:
    defaults = {"name": name, "price": price, "stock": stock, "opening_stock": stock}
    item, _ = await Item.get_or_create(id=item_id, defaults=defaults)
    return as_json(item, "opening_stock")


async def get_item(item_id: str) -> dict[str, Any]:
    return as_json(await found(Item, "item", item_id), "opening_stock")


async def list_items(after: Position | None = None, limit: int = PAGE) -> dict[str, Any]:
    """A page of the catalogue, oldest first."""
    items, after = await page(Item.all(), OLDEST_FIRST, after, limit)
    return {"items": [as_json(item, "opening_stock") for item in items], "next": after}


async def audit_facts() -> dict[str, Any]:
    return {
        "items": await table(Item, "id", "opening_stock", "stock"),
        "held": await table(StockReservation, "order_id", "state", "quantity", "item_id"),
    }


async def order_state(order_id: str) -> dict[str, Any] | None:
    held = await StockReservation.get_or_none(order_id=order_id)
    return None if held is None else as_json(held, "order_id", "item_id")


SERVICE = Service(
    name="item",
    records=ItemStep,
    dead_letters=ItemDeadLetter,
    steps=(
        step(
            "reserve",
            on=[EventName.INVENTORY_RESERVED],
            run=reserve_stock,
            emits=[EventName.ITEM_RESERVED, EventName.ITEM_REJECTED],
            fails_as=EventName.ITEM_REJECTED,
        ),
        step(
            "restock",
            on=[EventName.PAYMENT_REJECTED, EventName.PAYMENT_REFUNDED],
            run=restock,
            emits=[EventName.ITEM_RELEASED],
        ),
        step(
            "sell",
            on=[EventName.INVENTORY_FILLED],
            run=sell_stock,
            emits=[EventName.ITEM_SOLD],
        ),
    ),
    commands={Request.CREATE_ITEM: create_item},
    queries={
        Request.GET_ITEM: get_item,
        Request.LIST_ITEMS: list_items,
        Request.ORDER_STATE: order_state,
        Request.AUDIT_FACTS: audit_facts,
    },
)
