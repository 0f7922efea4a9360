"""The order service's table: every purchase and where its saga ended."""

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from sagashop.names import ServiceName
from sagashop.store.book import Keyed
from sagashop.store.journal import journal_tables


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class Owed(StrEnum):
    """What the order service still waits for, and re-asks for until it comes."""

    OUTCOME = "outcome"
    """The saga is running: it must complete or fail before the deadline."""
    UNDOING = "undoing"
    """The order expired: what the services hold for it must be given back."""
    SETTLING = "settling"
    """The order ended: the services must confirm or give back their part, and the user be told."""


class Order(Model):
    id = fields.UUIDField(primary_key=True)
    user_id = fields.UUIDField(db_index=True)
    item_id = fields.UUIDField()
    quantity = fields.IntField()
    unit_price = fields.BigIntField()
    total_amount = fields.BigIntField()
    status = fields.CharEnumField(OrderStatus, max_length=16, default=OrderStatus.PENDING)
    failure_reason = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    deadline_at = fields.DatetimeField()
    owes = fields.CharEnumField(Owed, max_length=16, null=True, default=Owed.OUTCOME)
    retry_at = fields.DatetimeField(null=True, db_index=True)
    """When the sweep next asks again for what is owed; None once nothing is."""
    nudges = fields.IntField(default=0)
    """How often the sweep asked again, in all."""
    backoff = fields.IntField(default=0)
    """How often it asked again for what is owed now: the next wait doubles with it."""

    class Meta:
        table = "orders"
        indexes = (
            ("created_at", "id"),  # the latest orders, a page at a time
            ("status", "created_at", "id"),  # the latest of one status
            ("status", "failure_reason"),  # the counts by status and refusal, from the index alone
        )


OrderStep, OrderDeadLetter = journal_tables(ServiceName.ORDER, __name__)

ORDERS = Keyed(Order, by=("order_id",))
