"""What every service stores the same way: the steps it has handled, and what it holds per order."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self, TypeVar
from uuid import UUID

from tortoise import fields
from tortoise.models import Model

from sagashop.errors import NotFound

M = TypeVar("M", bound=Model)


def now() -> datetime:
    """For `.update()`, which does not touch auto_now fields."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def found(model: type[M], what: str, row_id: str) -> M:
    """The row with this primary key, or NotFound naming what was looked for."""
    row = await model.get_or_none(pk=row_id)
    if row is None:
        raise NotFound(f"no {what} with id {row_id}")
    return row


def as_json(row: Model, *skip: str) -> dict[str, Any]:
    """A row as the API shows it: camelCase keys, ids and times as text."""
    return {
        _camel(name): _json_value(getattr(row, name))
        for name in row._meta.fields_map
        if name not in skip
    }


async def rows(model: type[Model], *columns: str) -> list[list[Any]]:
    """Every row of a table, as JSON-able lists of the given columns (for the audit)."""
    found = await model.all().values_list(*columns)
    return [[_json_value(value) for value in row] for row in found]


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, UUID):
        return str(value)
    return value


class StepRecord(Model):
    """One saga step a service has handled: its idempotency key, its outbox entry and its place
    in the order's timeline, written in the same transaction as the step's state change.

    (order_id, step) is unique, so a redelivered event finds the row and replays `outcome`
    instead of acting twice; `published` turns true once the relay has put `outcome` on the
    bus, so a crash between commit and publish loses nothing.
    """

    id = fields.BigIntField(primary_key=True)
    order_id = fields.UUIDField()
    step = fields.CharField(max_length=32)
    handled = fields.CharField(max_length=40)
    outcome: Any = fields.JSONField(null=True)
    published = fields.BooleanField(default=False, db_index=True)
    handled_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        abstract = True


class StepRecordMeta:
    """Meta of every concrete StepRecord (Tortoise does not inherit an abstract model's Meta)."""

    unique_together = (("order_id", "step"),)


class DeadLetter(Model):
    """An event whose step kept failing, kept with its error until someone replays it."""

    id = fields.BigIntField(primary_key=True)
    order_id = fields.UUIDField()
    step = fields.CharField(max_length=32)
    event: Any = fields.JSONField()
    error = fields.TextField()
    failures = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    replayed_at = fields.DatetimeField(null=True)

    class Meta:
        abstract = True


class DeadLetterMeta:
    unique_together = (("order_id", "step"),)


class ReservationState(StrEnum):
    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    VOIDED = "voided"
    """Compensated before its action arrived: nothing was held, and the action will be refused."""


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
