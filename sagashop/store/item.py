"""The item service's tables: the catalogue with its stock, and the stock held per order."""

from tortoise import fields
from tortoise.models import Model

from sagashop.names import ServiceName
from sagashop.store.book import Keyed
from sagashop.store.journal import journal_tables
from sagashop.store.reservations import Reservation


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


ItemStep, ItemDeadLetter = journal_tables(ServiceName.ITEM, __name__)

ITEMS = Keyed(Item, by=("item_id",))
HOLDS = Keyed(StockReservation, by=("order_id",))
