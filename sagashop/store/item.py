"""The item service's tables: the catalogue with its stock, and the stock held per order."""

from tortoise import fields
from tortoise.models import Model

from sagashop.store.base import (
    DeadLetter,
    DeadLetterMeta,
    Reservation,
    StepRecord,
    StepRecordMeta,
)


class Item(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=100)
    price = fields.BigIntField()
    stock = fields.IntField()
    opening_stock = fields.IntField()
    """What the catalogue started with: the audit checks it equals stock + held + sold."""
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "items"


class StockReservation(Reservation):
    item_id = fields.UUIDField(db_index=True)
    quantity = fields.IntField()

    class Meta:
        table = "item_reservations"


class ItemStep(StepRecord):
    class Meta(StepRecordMeta):
        table = "item_steps"


class ItemDeadLetter(DeadLetter):
    class Meta(DeadLetterMeta):
        table = "item_dead_letters"
