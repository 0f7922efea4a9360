from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from sagashop.store.order import OrderStatus, Owed
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Order',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user_id', fields.UUIDField(db_index=True)),
                ('item_id', fields.UUIDField()),
                ('quantity', fields.IntField()),
                ('unit_price', fields.BigIntField()),
                ('total_amount', fields.BigIntField()),
                ('status', fields.CharEnumField(default=OrderStatus.PENDING, description='PENDING: PENDING\nCOMPLETED: COMPLETED\nCANCELLED: CANCELLED', enum_type=OrderStatus, max_length=16)),
                ('failure_reason', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('deadline_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('owes', fields.CharEnumField(null=True, default=Owed.OUTCOME, description='OUTCOME: outcome\nUNDOING: undoing\nSETTLING: settling', enum_type=Owed, max_length=16)),
                ('retry_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('nudges', fields.IntField(default=0)),
                ('backoff', fields.IntField(default=0)),
            ],
            options={'table': 'orders', 'app': 'order', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OrderDeadLetter',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.UUIDField()),
                ('step', fields.CharField(max_length=32)),
                ('event', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('error', fields.TextField(unique=False)),
                ('failures', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('replayed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'order_dead_letters', 'app': 'order', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['DeadLetter'],
        ),
        ops.CreateModel(
            name='OrderStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.UUIDField()),
                ('step', fields.CharField(max_length=32)),
                ('handled', fields.CharField(max_length=40)),
                ('outcome', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('published', fields.BooleanField(default=False, db_index=True)),
                ('handled_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'order_steps', 'app': 'order', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['StepRecord'],
        ),
    ]
