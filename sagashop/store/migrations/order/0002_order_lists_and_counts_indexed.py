from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('order', '0001_initial')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['created_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['status', 'created_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['status', 'failure_reason']),
        ),
    ]
