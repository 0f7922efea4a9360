"""The notification service's table: what each user was told, one message per order."""

from tortoise import fields
from tortoise.models import Model

from sagashop.names import ServiceName
from sagashop.store.book import Keyed
from sagashop.store.journal import journal_tables


class Notification(Model):
    id = fields.BigIntField(primary_key=True)
    order_id = fields.UUIDField(unique=True)
    user_id = fields.UUIDField(db_index=True)
    kind = fields.CharField(max_length=40)
    message = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notifications"


NotificationStep, NotificationDeadLetter = journal_tables(ServiceName.NOTIFICATION, __name__)

NOTIFICATIONS = Keyed(Notification, by=("order_id",), key=("order_id",), read=False)
