from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from sagashop.store.payment import PaymentState
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Payment',
            fields=[
                ('order_id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user_id', fields.UUIDField()),
                ('amount', fields.BigIntField()),
                ('state', fields.CharEnumField(description='CAPTURED: captured\nDECLINED: declined\nREFUNDED: refunded\nVOIDED: voided', enum_type=PaymentState, max_length=16)),
                ('reason', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'payments', 'app': 'payment', 'pk_attr': 'order_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PaymentDeadLetter',
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
            options={'table': 'payment_dead_letters', 'app': 'payment', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['DeadLetter'],
        ),
        ops.CreateModel(
            name='PaymentStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.UUIDField()),
                ('step', fields.CharField(max_length=32)),
                ('handled', fields.CharField(max_length=40)),
                ('outcome', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('published', fields.BooleanField(default=False, db_index=True)),
                ('handled_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'payment_steps', 'app': 'payment', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['StepRecord'],
        ),
    ]
