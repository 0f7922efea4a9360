"""The user service's tables: accounts and the money held for each order."""

from tortoise import fields
from tortoise.models import Model

from sagashop.names import ServiceName
from sagashop.store.book import Keyed
from sagashop.store.journal import journal_tables
from sagashop.store.reservations import Reservation


class User(Model):
    id = fields.UUIDField(primary_key=True)
    username = fields.CharField(max_length=64)
    balance = fields.BigIntField()
    opening_balance = fields.BigIntField()
    """What the user started with: the audit checks it equals balance + held + spent."""
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class BalanceReservation(Reservation):
    user_id = fields.UUIDField(db_index=True)
    amount = fields.BigIntField()

    class Meta:
        table = "user_reservations"


UserStep, UserDeadLetter = journal_tables(ServiceName.USER, __name__)

USERS = Keyed(User, by=("user_id",))
HOLDS = Keyed(BalanceReservation, by=("order_id",))
