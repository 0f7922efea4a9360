"""Inventory service: keeps each user's bag (20 slots, one per item bought) and what is in it.

balance.reserved               hold a slot per unit      -> inventory.reserved | .rejected
item.rejected | item.released  free the slots            -> inventory.released
balance.spent                  put the items in the bag  -> inventory.filled
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from sagashop.events import Event, EventName
from sagashop.names import Request, ServiceName
from sagashop.saga import Service, step
from sagashop.store.book import Book
from sagashop.store.facts import Table, table
from sagashop.store.inventory import (
    BAGS,
    HOLDS,
    PILES,
    Bag,
    BagItem,
    InventoryDeadLetter,
    InventoryStep,
    SlotReservation,
)
from sagashop.store.render import as_json
from sagashop.store.reservations import cancelled_first, confirm, hold, release

log = logging.getLogger("sagashop.inventory")

BAG_SLOTS = 20


def refusal(free: int, quantity: int) -> str | None:
    """Why `quantity` more items do not fit in a bag with `free` slots, or None if they do."""
    if quantity > free:
        return f"bag is full: {free} free slots, {quantity} needed"
    return None


def reserve_slots(event: Event, book: Book) -> Event:
    """Hold a slot per unit of the user's bag, giving them one on their first purchase."""
    if cancelled_first(book, HOLDS, event):
        return event.follow(
            EventName.INVENTORY_REJECTED, "inventory: the order was cancelled first"
        )
    bag = book.get(BAGS, event)
    if (reason := refusal(BAG_SLOTS if bag is None else bag.free, event.quantity)) is not None:
        return event.follow(EventName.INVENTORY_REJECTED, f"inventory: {reason}")
    bag = bag or book.insert(BAGS, event, capacity=BAG_SLOTS, free=BAG_SLOTS)
    book.add(bag, free=-event.quantity)
    columns = {"user_id": event.user_id, "item_id": event.item_id, "quantity": event.quantity}
    hold(book, HOLDS, event, **columns)
    log.debug(
        "order %s: reserved %d slots of user %s", event.order_id, event.quantity, event.user_id
    )
    return event.follow(EventName.INVENTORY_RESERVED)


def free_slots(event: Event, book: Book) -> Event:
    columns = {"user_id": event.user_id, "item_id": event.item_id, "quantity": event.quantity}
    held = release(book, HOLDS, event, **columns)
    if held is not None and (bag := book.get(BAGS, event)) is not None:
        book.add(bag, free=held.quantity)
        log.debug(
            "order %s: freed %d slots of user %s", event.order_id, held.quantity, held.user_id
        )
    return event.follow(EventName.INVENTORY_RELEASED)


def fill_slots(event: Event, book: Book) -> Event:
    """The slots this order held get its items (the event carries what the reservation was
    made from: the same user, item and quantity), added to the user's pile of that item."""
    if confirm(book, HOLDS, event):
        pile = book.get(PILES, event)
        if pile is None:
            book.insert(PILES, event, quantity=event.quantity)
        else:
            book.add(pile, quantity=event.quantity)
    return event.follow(EventName.INVENTORY_FILLED)


async def get_inventory(user_id: str) -> dict[str, Any]:
    bag = await Bag.get_or_none(user_id=user_id)
    items = await BagItem.filter(user_id=user_id).order_by("id")
    return {
        "userId": user_id,
        "capacity": bag.capacity if bag else BAG_SLOTS,
        "free": bag.free if bag else BAG_SLOTS,
        "inventory": [as_json(row, "id", "user_id") for row in items],
    }


class InventoryFacts(TypedDict):
    """What the audit reads of this service (see `sagashop.audit`)."""

    bags: Table
    contents: Table
    held: Table


async def audit_facts() -> InventoryFacts:
    return {
        "bags": await table(Bag, "user_id", "capacity", "free"),
        "contents": await table(BagItem, "user_id", "item_id", "quantity"),
        "held": await table(SlotReservation, "order_id", "state", "quantity", "user_id", "item_id"),
    }


async def order_state(order_id: str) -> dict[str, Any] | None:
    held = await SlotReservation.get_or_none(order_id=order_id)
    return None if held is None else as_json(held, "order_id", "user_id", "item_id")


SERVICE = Service(
    name=ServiceName.INVENTORY,
    records=InventoryStep,
    dead_letters=InventoryDeadLetter,
    tables=(BAGS, HOLDS, PILES),
    steps=(
        step(
            "reserve",
            on=[EventName.BALANCE_RESERVED],
            run=reserve_slots,
            emits=[EventName.INVENTORY_RESERVED, EventName.INVENTORY_REJECTED],
            fails_as=EventName.INVENTORY_REJECTED,
        ),
        step(
            "free",
            on=[EventName.ITEM_REJECTED, EventName.ITEM_RELEASED],
            run=free_slots,
            emits=[EventName.INVENTORY_RELEASED],
        ),
        step(
            "fill",
            on=[EventName.BALANCE_SPENT],
            run=fill_slots,
            emits=[EventName.INVENTORY_FILLED],
            settling=True,
        ),
    ),
    queries={
        Request.GET_INVENTORY: get_inventory,
        Request.ORDER_STATE: order_state,
        Request.AUDIT_FACTS: audit_facts,
    },
)
