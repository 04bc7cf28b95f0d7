"""A setting row's message text is stored once, in reports_statusmessage, and the row keeps its 8-byte key.

At 1,000,000 devices the setting rows carried 29 million copies of a few thousand texts (~75 bytes each,
2.4 KB a device). The data moves over in SQL on PostgreSQL (the key is the first 8 bytes of the MD5, as
reports.models.message_key computes it) and row by row elsewhere.
"""

import hashlib

import django.db.models.deletion
from django.db import migrations, models

PG_FORWARD = """
INSERT INTO reports_statusmessage (key, text)
SELECT DISTINCT ('x' || left(md5(message), 16))::bit(64)::bigint, message
FROM reports_devicesettingstatus WHERE message <> ''
ON CONFLICT (key) DO NOTHING;
UPDATE reports_devicesettingstatus SET message_key = ('x' || left(md5(message), 16))::bit(64)::bigint
WHERE message <> '';
"""
PG_BACKWARD = """
UPDATE reports_devicesettingstatus s SET message = m.text FROM reports_statusmessage m WHERE m.key = s.message_key;
"""


def _key(text):
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
        return
    Row = apps.get_model("reports", "DeviceSettingStatus")
    Message = apps.get_model("reports", "StatusMessage")
    texts = set(Row.objects.exclude(message="").values_list("message", flat=True).distinct())
    Message.objects.bulk_create([Message(key=_key(t), text=t) for t in texts], ignore_conflicts=True)
    for text in texts:
        Row.objects.filter(message=text).update(message_ref_id=_key(text))


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)
        return
    Row = apps.get_model("reports", "DeviceSettingStatus")
    for message in apps.get_model("reports", "StatusMessage").objects.all():
        Row.objects.filter(message_ref_id=message.key).update(message=message.text)


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0006_hash_unique_status_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="StatusMessage",
            fields=[
                ("key", models.BigIntegerField(primary_key=True, serialize=False)),
                ("text", models.TextField()),
            ],
        ),
        migrations.AddField(
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
                to="reports.statusmessage",
            ),
        ),
        migrations.RunPython(forward, backward, elidable=False),
        migrations.RemoveField(
            model_name="devicesettingstatus",
            name="message",
        ),
    ]
