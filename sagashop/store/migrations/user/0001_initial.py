from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from sagashop.store.reservations import ReservationState
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='BalanceReservation',
            fields=[
                ('order_id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('state', fields.CharEnumField(description='RESERVED: reserved\nCONFIRMED: confirmed\nRELEASED: released\nVOIDED: voided', enum_type=ReservationState, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('user_id', fields.UUIDField(db_index=True)),
                ('amount', fields.BigIntField()),
            ],
            options={'table': 'user_reservations', 'app': 'user', 'pk_attr': 'order_id'},
            bases=['Reservation'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('username', fields.CharField(max_length=64)),
                ('balance', fields.BigIntField()),
                ('opening_balance', fields.BigIntField()),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'users', 'app': 'user', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UserDeadLetter',
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
            options={'table': 'user_dead_letters', 'app': 'user', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['DeadLetter'],
        ),
        ops.CreateModel(
            name='UserStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.UUIDField()),
                ('step', fields.CharField(max_length=32)),
                ('handled', fields.CharField(max_length=40)),
                ('outcome', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('published', fields.BooleanField(default=False, db_index=True)),
                ('handled_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'user_steps', 'app': 'user', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['StepRecord'],
        ),
    ]
