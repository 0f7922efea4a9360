"""Inventory service: keeps each user's bag (20 slots, one per item bought) and what is in it.

balance.reserved               hold a slot per unit      -> inventory.reserved | .rejected
item.rejected | item.released  free the slots            -> inventory.released
balance.spent                  put the items in the bag  -> inventory.filled
"""

from __future__ import annotations

import logging
from typing import Any

from tortoise.expressions import F

from sagashop.events import Event, EventName
from sagashop.requests import Request
from sagashop.saga import Service, reason_or_retry, step
from sagashop.store.facts import table
from sagashop.store.inventory import (
    Bag,
    BagItem,
    InventoryDeadLetter,
    InventoryStep,
    SlotReservation,
)
from sagashop.store.render import as_json
from sagashop.store.rows import insert_once

log = logging.getLogger("sagashop.inventory")

BAG_SLOTS = 20


def refusal(free: int, quantity: int) -> str | None:
    """Why `quantity` more items do not fit in a bag with `free` slots, or None if they do."""
    if quantity > free:
        return f"bag is full: {free} free slots, {quantity} needed"
    return None


async def reserve_slots(event: Event) -> Event:
    if not await SlotReservation.hold(
        event.order_id, user_id=event.user_id, item_id=event.item_id, quantity=event.quantity
    ):
        return event.follow(
            EventName.INVENTORY_REJECTED, "inventory: the order was cancelled first"
        )
    if not await _take_slots(event.user_id, event.quantity):
        await SlotReservation.unhold(event.order_id)
        bag = await Bag.get(user_id=event.user_id)
        reason = reason_or_retry(refusal(bag.free, event.quantity))
        return event.follow(EventName.INVENTORY_REJECTED, f"inventory: {reason}")
    log.debug(
        "order %s: reserved %d slots of user %s", event.order_id, event.quantity, event.user_id
    )
    return event.follow(EventName.INVENTORY_RESERVED)


async def _take_slots(user_id: str, quantity: int) -> bool:
    """Take free slots of the user's bag, giving them one on their first purchase."""
    if await _take_free(user_id, quantity):
        return True
    new_bag = Bag(user_id=user_id, capacity=BAG_SLOTS, free=BAG_SLOTS)
    return await insert_once(new_bag) and await _take_free(user_id, quantity)


async def _take_free(user_id: str, quantity: int) -> bool:
    taken = await Bag.filter(user_id=user_id, free__gte=quantity).update(free=F("free") - quantity)
    return bool(taken)


async def free_slots(event: Event) -> Event:
    held = await SlotReservation.release(
        event.order_id, user_id=event.user_id, item_id=event.item_id, quantity=event.quantity
    )
    if held is not None:
        await Bag.filter(user_id=held.user_id).update(free=F("free") + held.quantity)
        log.debug(
            "order %s: freed %d slots of user %s", event.order_id, held.quantity, held.user_id
        )
    return event.follow(EventName.INVENTORY_RELEASED)


async def fill_slots(event: Event) -> Event:
    """The slots this order held get its items (the event carries what the reservation was
    made from: the same user, item and quantity)."""
    if await SlotReservation.confirm(event.order_id):
        await _put_in_bag(event.user_id, event.item_id, event.quantity)
    return event.follow(EventName.INVENTORY_FILLED)


async def _put_in_bag(user_id: str, item_id: str, quantity: int) -> None:
    """Add to the user's pile of this item, starting one if it is their first."""
    while not await BagItem.filter(user_id=user_id, item_id=item_id).update(
        quantity=F("quantity") + quantity
    ):
        pile = BagItem(user_id=user_id, item_id=item_id, quantity=quantity)
        if await insert_once(pile):
            return


async def get_inventory(user_id: str) -> dict[str, Any]:
    bag = await Bag.get_or_none(user_id=user_id)
    items = await BagItem.filter(user_id=user_id).order_by("id")
    return {
        "userId": user_id,
        "capacity": bag.capacity if bag else BAG_SLOTS,
        "free": bag.free if bag else BAG_SLOTS,
        "inventory": [as_json(row, "id", "user_id") for row in items],
    }


async def audit_facts() -> dict[str, Any]:
    return {
        "bags": await table(Bag, "user_id", "capacity", "free"),
        "contents": await table(BagItem, "user_id", "item_id", "quantity"),
        "held": await table(SlotReservation, "order_id", "state", "quantity", "user_id", "item_id"),
    }


async def order_state(order_id: str) -> dict[str, Any] | None:
    held = await SlotReservation.get_or_none(order_id=order_id)
    return None if held is None else as_json(held, "order_id", "user_id", "item_id")


SERVICE = Service(
    name="inventory",
    records=InventoryStep,
    dead_letters=InventoryDeadLetter,
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
        ),
    ),
    queries={
        Request.GET_INVENTORY: get_inventory,
        Request.ORDER_STATE: order_state,
        Request.AUDIT_FACTS: audit_facts,
    },
)
