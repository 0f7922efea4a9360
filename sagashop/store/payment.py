"""The payment service's tables: one charge per order."""

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from sagashop.names import ServiceName
from sagashop.store.book import Keyed
from sagashop.store.journal import journal_tables


class PaymentState(StrEnum):
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"
    VOIDED = "voided"
    """The order expired before it was charged: a charge arriving later is refused."""


class Payment(Model):
    order_id = fields.UUIDField(primary_key=True)
    user_id = fields.UUIDField()
    amount = fields.BigIntField()
    state = fields.CharEnumField(PaymentState, max_length=16)
    reason = fields.CharField(max_length=255, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "payments"


PaymentStep, PaymentDeadLetter = journal_tables(ServiceName.PAYMENT, __name__)

PAYMENTS = Keyed(Payment, by=("order_id",))
