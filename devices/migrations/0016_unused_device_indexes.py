"""Two indexes of the devices table that no query uses: the management type's (and its LIKE one: Graph's
$filter compares it case-insensitively, UPPER(…), which neither serves) and the enrollment status code's (shown,
never searched). Every check-in's update of a device row, which changes its indexed check-in times and so is
never a HOT update, wrote an entry into each: 54 bytes a device at 100,000 devices."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0015_shorter_digests"),
    ]

    operations = [
        migrations.AlterField(
            model_name="device",
            name="enrollment_status_code",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="device",
            name="management_type",
            field=models.CharField(blank=True, default="", max_length=30, verbose_name="managementType"),
        ),
    ]
