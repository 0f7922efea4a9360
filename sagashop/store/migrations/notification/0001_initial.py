from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.UUIDField(unique=True)),
                ('user_id', fields.UUIDField(db_index=True)),
                ('kind', fields.CharField(max_length=40)),
                ('message', fields.CharField(max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'notifications', 'app': 'notification', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotificationDeadLetter',
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
            options={'table': 'notification_dead_letters', 'app': 'notification', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['DeadLetter'],
        ),
        ops.CreateModel(
            name='NotificationStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.UUIDField()),
                ('step', fields.CharField(max_length=32)),
                ('handled', fields.CharField(max_length=40)),
                ('outcome', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('published', fields.BooleanField(default=False, db_index=True)),
                ('handled_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'notification_steps', 'app': 'notification', 'unique_together': (('order_id', 'step'),), 'pk_attr': 'id'},
            bases=['StepRecord'],
        ),
    ]
