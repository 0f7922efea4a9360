"""What a service holds for one order: the shape the user, inventory and item services share,
and the moves a reservation makes, as a step takes them on the batch's rows (`Book`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from sagashop.events import Event
from sagashop.store.book import Book, Keyed, Row


class ReservationState(StrEnum):
    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    VOIDED = "voided"
    """Compensated before its action arrived: nothing was held, and the action will be refused."""


HOLDING = frozenset({ReservationState.RESERVED, ReservationState.CONFIRMED})
"""The states in which a reservation counts as held or used (the audit adds them up)."""


class Reservation(Model):
    """What a service holds for one order: reserved, then confirmed or released.

    The order id is the primary key, so an action and its compensation can never both take
    effect: whichever comes second finds the row the first one wrote.
    """

    order_id = fields.UUIDField(primary_key=True)
    state = fields.CharEnumField(ReservationState, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        abstract = True


def cancelled_first(book: Book, holds: Keyed, event: Event) -> bool:
    """Whether the order has a row here before its action: a compensation came first and
    voided it, so the action is refused."""
    return book.get(holds, event) is not None


def hold(book: Book, holds: Keyed, event: Event, **columns: Any) -> None:
    book.insert(holds, event, state=ReservationState.RESERVED, **columns)


def release(book: Book, holds: Keyed, event: Event, **columns: Any) -> Row | None:
    """Close the order's reservation; return it if it held something to give back.

    With nothing held yet, record a void (with `columns`), so the action, should it still
    arrive, is refused instead of holding something for an order that is gone."""
    held = book.get(holds, event)
    if held is None:
        book.insert(holds, event, state=ReservationState.VOIDED, **columns)
        return None
    if held.state is not ReservationState.RESERVED:
        return None
    book.set(held, state=ReservationState.RELEASED)
    return held


def confirm(book: Book, holds: Keyed, event: Event) -> bool:
    """Mark what the order holds as spent; whether it held anything."""
    held = book.get(holds, event)
    if held is None or held.state is not ReservationState.RESERVED:
        return False
    book.set(held, state=ReservationState.CONFIRMED)
    return True
