from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('order', '0002_order_lists_and_counts_indexed')]

    initial = False

    operations = [
        ops.AddField(
            model_name='OrderDeadLetter',
            name='closed_with',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
