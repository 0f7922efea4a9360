"""The inventory service's tables: each user's bag, what is in it, and the slots held per order."""

from tortoise import fields
from tortoise.models import Model

from sagashop.names import ServiceName
from sagashop.store.book import Keyed
from sagashop.store.journal import journal_tables
from sagashop.store.reservations import Reservation


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


InventoryStep, InventoryDeadLetter = journal_tables(ServiceName.INVENTORY, __name__)

BAGS = Keyed(Bag, by=("user_id",))
HOLDS = Keyed(SlotReservation, by=("order_id",))
PILES = Keyed(BagItem, by=("user_id", "item_id"), key=("user_id", "item_id"))
