"""The order service's table: every purchase and where its saga ended."""

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from sagashop.store.base import StepRecord, StepRecordMeta


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


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

    class Meta:
        table = "orders"


class OrderStep(StepRecord):
    class Meta(StepRecordMeta):
        table = "order_steps"
