"""The stored texts move down to the console app with their table (``reports_storedtext`` → ``console_storedtext``):
the devices' messages are interned too, and the inventory layer may not depend on the status layer. Nothing is
copied; the reports migration after this one points its relations here and forgets the model."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0010_drop_redundant_indexes"),
        ("reports", "0010_policy_status_reported_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE reports_storedtext RENAME TO console_storedtext",
                    "ALTER TABLE console_storedtext RENAME TO reports_storedtext",
                )
            ],
            state_operations=[
                migrations.CreateModel(
                    name="StoredText",
                    fields=[
                        ("key", models.BigIntegerField(primary_key=True, serialize=False)),
                        ("text", models.TextField()),
                    ],
                )
            ],
        )
    ]
