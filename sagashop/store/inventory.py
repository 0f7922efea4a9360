"""The inventory service's tables: each user's bag, what is in it, and the slots held per order."""

from tortoise import fields
from tortoise.models import Model

from sagashop.store.base import (
    DeadLetter,
    DeadLetterMeta,
    Reservation,
    StepRecord,
    StepRecordMeta,
)


class Bag(Model):
    user_id = fields.UUIDField(primary_key=True)
    capacity = fields.IntField()
    free = fields.IntField()

    class Meta:
        table = "inventory_bags"


class BagItem(Model):
    id = fields.BigIntField(primary_key=True)
    user_id = fields.UUIDField()
    item_id = fields.UUIDField()
    quantity = fields.IntField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "inventory_items"
        unique_together = (("user_id", "item_id"),)


class SlotReservation(Reservation):
    user_id = fields.UUIDField()
    item_id = fields.UUIDField()
    quantity = fields.IntField()

    class Meta:
        table = "inventory_reservations"


class InventoryStep(StepRecord):
    class Meta(StepRecordMeta):
        table = "inventory_steps"


class InventoryDeadLetter(DeadLetter):
    class Meta(DeadLetterMeta):
        table = "inventory_dead_letters"
