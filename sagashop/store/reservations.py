"""What a service holds for one order: the shape the user, inventory and item services share."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from tortoise import fields
from tortoise.models import Model

from sagashop.store.render import now


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
    effect: whichever commits second finds the row the first one wrote.
    """

    order_id = fields.UUIDField(primary_key=True)
    state = fields.CharEnumField(ReservationState, max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        abstract = True

    @classmethod
    async def closed(cls, order_id: str) -> bool:
        """Whether the order already has a row here: held before, or voided by a compensation."""
        return await cls.exists(order_id=order_id)

    @classmethod
    async def hold(cls, order_id: str, **columns: Any) -> None:
        await cls.create(order_id=order_id, state=ReservationState.RESERVED, **columns)

    @classmethod
    async def release(cls, order_id: str, **columns: Any) -> Self | None:
        """Close the order's reservation; return it if it held something to give back.

        With nothing held yet, record a void (with `columns`), so the action, should it still
        arrive, is refused instead of holding something for an order that is gone.
        """
        held = await cls.get_or_none(order_id=order_id)
        if held is None:
            await cls.create(order_id=order_id, state=ReservationState.VOIDED, **columns)
            return None
        return held if await cls._move(held, ReservationState.RELEASED) else None

    @classmethod
    async def confirm(cls, order_id: str) -> Self | None:
        """Mark what the order holds as spent; return it, or None if nothing was held."""
        held = await cls.get_or_none(order_id=order_id)
        return held if held and await cls._move(held, ReservationState.CONFIRMED) else None

    @classmethod
    async def _move(cls, held: Self, to: ReservationState) -> bool:
        return bool(
            await cls.filter(order_id=held.order_id, state=ReservationState.RESERVED).update(
                state=to, updated_at=now()
            )
        )
