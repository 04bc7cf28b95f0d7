"""The devices table leaves half of each page free (PostgreSQL ``fillfactor = 50``).

Every check-in rewrites its device's row at least twice (the lease, then the schedule and the agent's state). With
full pages each new version went to another page: the table grew to four times its live rows between two
vacuums (3.7 KB a device at 100,000 for an 870-byte row), and every one of those updates also wrote an entry into
each of the table's twenty indexes. With room on the page the lease is a HOT update (no index touched) and the
schedule's new version stays on its page, where the next read prunes the old one. Measured with ``bench_checkins``
at 100,000 devices: the table 5,095 → 3,603 bytes a device, pass 1 839 → 1,047 check-ins/s, pass 2 2,939 →
3,676/s (fillfactor 60: 3,815 bytes, 916/s, 4,027/s).

ALTER TABLE only sets the option: rows already stored move to half-full pages as they are updated (or at once with
``VACUUM FULL devices_device``, which locks the table while it copies it). SQLite has no such option.
"""

from django.db import migrations


def _set(fillfactor: int | None):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name(apps.get_model("devices", "Device")._meta.db_table)
        if fillfactor is None:
            schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")
        else:
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(fillfactor)})")

    return run


class Migration(migrations.Migration):
    dependencies = [("devices", "0011_pack_agent_state")]

    operations = [migrations.RunPython(_set(50), _set(None), elidable=False)]
