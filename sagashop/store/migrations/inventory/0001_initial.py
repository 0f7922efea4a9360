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
            name='Bag',
            fields=[
                ('user_id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('capacity', fields.IntField()),
                ('free', fields.IntField()),
            ],
            options={'table': 'inventory_bags', 'app': 'inventory', 'pk_attr': 'user_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BagItem',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.UUIDField()),
                ('item_id', fields.UUIDField()),
                ('quantity', fields.IntField()),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'inventory_items', 'app': 'inventory', 'unique_together': (('user_id', 'item_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InventoryDeadLetter',
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
            options={'table': 'inventory_dead_letters', 'app': 'inventory', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['DeadLetter'],
        ),
        ops.CreateModel(
            name='InventoryStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.UUIDField()),
                ('step', fields.CharField(max_length=32)),
                ('handled', fields.CharField(max_length=40)),
                ('outcome', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('published', fields.BooleanField(default=False, db_index=True)),
                ('handled_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'inventory_steps', 'app': 'inventory', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['StepRecord'],
        ),
        ops.CreateModel(
            name='SlotReservation',
            fields=[
                ('order_id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('state', fields.CharEnumField(description='RESERVED: reserved\nCONFIRMED: confirmed\nRELEASED: released\nVOIDED: voided', enum_type=ReservationState, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('user_id', fields.UUIDField()),
                ('item_id', fields.UUIDField()),
                ('quantity', fields.IntField()),
            ],
            options={'table': 'inventory_reservations', 'app': 'inventory', 'pk_attr': 'order_id'},
            bases=['Reservation'],
        ),
    ]
