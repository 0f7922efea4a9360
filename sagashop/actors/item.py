"""Item service: keeps the catalogue, its prices and its stock.

inventory.reserved             hold the stock            -> item.reserved | item.rejected
payment.rejected | .refunded   put it back               -> item.released
inventory.filled               the stock is sold         -> item.sold
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, TypedDict

from sagashop.events import Event, EventName
from sagashop.names import Request, ServiceName
from sagashop.saga import Service, StepLog, step
from sagashop.store.book import Book
from sagashop.store.facts import Table, table
from sagashop.store.item import HOLDS, ITEMS, Item, ItemDeadLetter, ItemStep, StockReservation
from sagashop.store.pages import OLDEST_FIRST, PAGE, Position, page
from sagashop.store.render import as_json, found, shown
from sagashop.store.reservations import cancelled_first, confirm, hold, release

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


def reserve_stock(event: Event, book: Book) -> Event:
    if cancelled_first(book, HOLDS, event):
        return event.follow(EventName.ITEM_REJECTED, "item: the order was cancelled first")
    item = book.get(ITEMS, event)
    if (reason := refusal(item, event.quantity)) is not None:
        return event.follow(EventName.ITEM_REJECTED, f"item: {reason}")
    assert item is not None  # refusal names an unknown item
    book.add(item, stock=-event.quantity)
    hold(book, HOLDS, event, item_id=event.item_id, quantity=event.quantity)
    log.debug("order %s: reserved %d of item %s", event.order_id, event.quantity, event.item_id)
    return event.follow(EventName.ITEM_RESERVED)


def restock(event: Event, book: Book) -> Event:
    held = release(book, HOLDS, event, item_id=event.item_id, quantity=event.quantity)
    if held is not None and (item := book.get(ITEMS, event)) is not None:
        book.add(item, stock=held.quantity)
        log.debug("order %s: put back %d of item %s", event.order_id, held.quantity, held.item_id)
    return event.follow(EventName.ITEM_RELEASED)


def sell_stock(event: Event, book: Book) -> Event:
    confirm(book, HOLDS, event)
    return event.follow(EventName.ITEM_SOLD)


async def create_item(item_id: str, name: str, price: int, stock: int) -> dict[str, Any]:
    defaults = {"name": name, "price": price, "stock": stock, "opening_stock": stock}
    item, _ = await Item.get_or_create(id=item_id, defaults=defaults)
    return as_json(item, "opening_stock")


async def get_item(item_id: str) -> dict[str, Any]:
    return as_json(await found(Item, item_id), "opening_stock")


async def get_items(item_ids: list[str], *, step_log: StepLog) -> dict[str, dict[str, Any]]:
    """Those of the items that exist, by id: one read for a batch of orders."""
    items = await step_log.database.lookup_all(ITEMS, [(item_id,) for item_id in item_ids])
    return {item["id"]: shown(Item, item, "opening_stock") for item in items}


async def list_items(after: Position | None = None, limit: int = PAGE) -> dict[str, Any]:
    """A page of the catalogue, oldest first."""
    items, after = await page(Item.all(), OLDEST_FIRST, after, limit)
    return {"items": [as_json(item, "opening_stock") for item in items], "next": after}


class ItemFacts(TypedDict):
    """What the audit reads of this service (see `sagashop.audit`)."""

    items: Table
    held: Table


async def audit_facts() -> ItemFacts:
    return {
        "items": await table(Item, "id", "opening_stock", "stock"),
        "held": await table(StockReservation, "order_id", "state", "quantity", "item_id"),
    }


async def order_state(order_id: str) -> dict[str, Any] | None:
    held = await StockReservation.get_or_none(order_id=order_id)
    return None if held is None else as_json(held, "order_id", "item_id")


SERVICE = Service(
    name=ServiceName.ITEM,
    records=ItemStep,
    dead_letters=ItemDeadLetter,
    tables=(ITEMS, HOLDS),
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
            settling=True,
        ),
    ),
    commands={Request.CREATE_ITEM: create_item},
    queries={
        Request.GET_ITEM: get_item,
        Request.GET_ITEMS: get_items,
        Request.LIST_ITEMS: list_items,
        Request.ORDER_STATE: order_state,
        Request.AUDIT_FACTS: audit_facts,
    },
)
