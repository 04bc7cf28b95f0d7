"""Assignment filters get Graph's createdDateTime and lastModifiedDateTime. Their rules were once written with Entra's device property names; Intune's filters name them
differently (device.deviceName, device.osVersion). Rewrite the stored rules once; a rule that still doesn't parse
matches no device and its filter page says why."""

import re

import django.utils.timezone
from django.db import migrations, models

RENAMES = {"displayname": "deviceName", "deviceosversion": "osVersion"}
_PROPERTY = re.compile(r"(?i)\bdevice\.(displayName|deviceOSVersion)\b")


def to_intune_syntax(apps, schema_editor):
    AssignmentFilter = apps.get_model("policies", "AssignmentFilter")
    for assignment_filter in AssignmentFilter.objects.all():
        rule = _PROPERTY.sub(lambda m: f"device.{RENAMES[m.group(1).lower()]}", assignment_filter.rule)
        if rule != assignment_filter.rule:
            assignment_filter.rule = rule
            assignment_filter.save(update_fields=["rule"])


class Migration(migrations.Migration):
    dependencies = [("policies", "0002_policy_names_may_repeat")]

    operations = [
        migrations.AddField(
            model_name="assignmentfilter",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="assignmentfilter",
            name="updated_at",
            field=models.DateTimeField(auto_now=True),
        ),
        migrations.AlterField(
            model_name="assignmentfilter",
            name="rule",
            field=models.TextField(help_text='For example (device.osVersion -startsWith "10.0.22")'),
        ),
        migrations.RunPython(to_intune_syntax, migrations.RunPython.noop),
    ]
