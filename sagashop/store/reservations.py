"""What a service holds for one order: the shape the user, inventory and item services share."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from tortoise import fields
from tortoise.models import Model

from sagashop.store.render import now
from sagashop.store.rows import insert_once


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
    async def hold(cls, order_id: str, **columns: Any) -> bool:
        """Hold for the order, unless it has a row here already (voided by a compensation that
        came first): one statement either way. Whether it holds now."""
        row = cls(order_id=order_id, state=ReservationState.RESERVED, **columns)
        return await insert_once(row)

    @classmethod
    async def unhold(cls, order_id: str) -> None:
        """Take back a hold whose action was refused, in the same transaction."""
        await cls.filter(order_id=order_id, state=ReservationState.RESERVED).delete()

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
        return held if await cls._move(order_id, ReservationState.RELEASED) else None

    @classmethod
    async def confirm(cls, order_id: str) -> bool:
        """Mark what the order holds as spent; whether it held anything."""
        return await cls._move(order_id, ReservationState.CONFIRMED)

    @classmethod
    async def _move(cls, order_id: str, to: ReservationState) -> bool:
        return bool(
            await cls.filter(order_id=order_id, state=ReservationState.RESERVED).update(
                state=to, updated_at=now()
            )
        )
