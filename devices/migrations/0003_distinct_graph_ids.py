"""Give every device its own Entra object id and managedDevice id (Graph's three ids differ; issue 14 item 4).

Added nullable, filled with a fresh GUID per existing device (a field default would give them all one value),
then made unique and required. device_id keeps its value: it stays the Entra deviceId / azureADDeviceId.
"""

import uuid

from django.db import migrations, models

BATCH = 2000


def fill_ids(apps, schema_editor):
    Device = apps.get_model("devices", "Device")
    pending = Device.objects.filter(
        models.Q(entra_object_id__isnull=True) | models.Q(managed_device_id__isnull=True)
    )
    while True:
        batch = list(pending.only("pk")[:BATCH])
        if not batch:
            return
        for device in batch:
            device.entra_object_id = uuid.uuid4()
            device.managed_device_id = uuid.uuid4()
        Device.objects.bulk_update(batch, ["entra_object_id", "managed_device_id"])


class Migration(migrations.Migration):
    dependencies = [("devices", "0002_onboarding_changes")]

    operations = [
        migrations.AddField(
            model_name="device",
            name="entra_object_id",
            field=models.UUIDField(null=True, verbose_name="Object ID"),
        ),
        migrations.AddField(
            model_name="device",
            name="managed_device_id",
            field=models.UUIDField(null=True, verbose_name="Managed device ID"),
        ),
        migrations.RunPython(fill_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="device",
            name="entra_object_id",
            field=models.UUIDField(default=uuid.uuid4, unique=True, verbose_name="Object ID"),
        ),
        migrations.AlterField(
            model_name="device",
            name="managed_device_id",
            field=models.UUIDField(default=uuid.uuid4, unique=True, verbose_name="Managed device ID"),
        ),
    ]
