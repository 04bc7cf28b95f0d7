"""Group memberships store their group and device as 4-byte ids (console.compact.NarrowForeignKey): the two
b-trees' entries are 16 bytes instead of 24 and a row 48 instead of 56. A device credential's key is unique by a
constraint instead of unique=True, which on PostgreSQL also built a LIKE index nobody used (the key is only
matched whole). At 100,000 devices (`bench_checkins`) the memberships 323 → 251 bytes a device, the credentials
196 → 151."""

import console.compact
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0017_onboarding_events_compact'),
    ]

    operations = [
        migrations.AlterField(
            model_name='devicecredential',
            name='key_id',
            field=models.CharField(max_length=32),
        ),
        migrations.AlterField(
            model_name='groupmember',
            name='device',
            field=console.compact.NarrowForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='devices.device'),
        ),
        migrations.AlterField(
            model_name='groupmember',
            name='group',
            field=console.compact.NarrowForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='devices.group'),
        ),
        migrations.AddConstraint(
            model_name='devicecredential',
            constraint=models.UniqueConstraint(fields=('key_id',), name='unique_credential_key_id'),
        ),
    ]
