"""A device row keeps the first 32 hex digits of its status plan's and its effective report's digests
(reports.ingest.short_digest), not all 64: the stored ones are cut to their first 32, which is what the next
check-in computes, so no device rewrites its status for it. Reversing leaves them short: a digest that no longer
matches costs one full rewrite of that device's status rows at its next check-in, nothing else."""

from django.db import migrations
from django.db.models import Q
from django.db.models.functions import Left, Length


def shorten(apps, schema_editor):
    """One UPDATE, so that each row is written once."""
    Device = apps.get_model("devices", "Device")
    fields = ("desired_fingerprint", "effective_digest")
    longer = Q(_fp__gt=32) | Q(_effective__gt=32)
    Device.objects.annotate(_fp=Length(fields[0]), _effective=Length(fields[1])).filter(longer).update(
        **{field: Left(field, 32) for field in fields}
    )


class Migration(migrations.Migration):
    dependencies = [("devices", "0014_agent_state_stored_once")]

    operations = [migrations.RunPython(shorten, migrations.RunPython.noop, elidable=False)]
