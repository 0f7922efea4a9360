from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('user', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='UserDeadLetter',
            name='closed_with',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
