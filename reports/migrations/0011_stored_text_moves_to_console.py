"""The status rows' relations now point at console.StoredText (the same table, moved by console 0011); the model
leaves this app. Only Django's state changes: the columns hold the same keys, and none has a database constraint."""

import django.db.models.deletion
from django.db import migrations, models


def _relation():
    return models.ForeignObject(
        from_fields=("setting_key",),
        on_delete=django.db.models.deletion.DO_NOTHING,
        related_name="+",
        to="console.storedtext",
        to_fields=("key",),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0011_stored_text"),
        ("reports", "0010_policy_status_reported_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="devicesettingstatus",
                    name="message_ref",
                    field=models.ForeignKey(
                        blank=True,
                        db_column="message_key",
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="console.storedtext",
                    ),
                ),
                migrations.AlterField(
                    model_name="deviceeffectivesetting", name="setting_key_text", field=_relation()
                ),
                migrations.AlterField(
                    model_name="devicesettingstatus", name="setting_key_text", field=_relation()
                ),
                migrations.DeleteModel(name="StoredText"),
            ]
        )
    ]
