"""On PostgreSQL the setting status rows and the effective setting rows are found by device through a
deduplicated b-tree, and no b-tree of their whole key is kept.

Their primary key b-tree (device, policy, setting key) was the second-largest relation in the database: 52 bytes an
entry, 1,594 bytes a device at 100,000 devices. A unique b-tree cannot deduplicate, and check-ins insert devices
in no particular order, so its pages split in halves and stay ~70 % full. A plain b-tree holds one key and a
posting list of 6-byte row addresses per distinct key: (device, policy) for the setting rows, one entry a
device-policy pair, 460 bytes a device after a round at 100,000 devices; (device) for the effective rows. The
policy is in the setting rows' key because "succeeded but overridden" probes one device's row for one policy and
setting 16,542 times for "ASR rules - Servers" at 1,000,000 devices: with the device alone each probe filtered the
device's ~37 rows (150-219 ms), with the policy ~6 (82-85 ms).

What that b-tree also did, refuse a second row for a key, is the job of the rows' one writer: every writer of a
device's status rows holds the device's row lock while it reads the rows it has and writes the difference
(reports.ingest, "Who writes status rows"), so no two can insert the same key. Django still knows the rows by
(device, policy, setting key) and (device, setting key, entry). Other databases keep their primary key (SQLite
cannot drop one in place, and their size is not at stake there).
"""

from django.db import migrations, models

TABLES = {
    "reports_devicesettingstatus": ("device_id", "policy_id", "setting_key"),
    "reports_deviceeffectivesetting": ("device_id", "setting_key", "entry"),
}


def drop_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    qn = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [table]
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"ALTER TABLE {qn(table)} DROP CONSTRAINT {qn(name)}")


def add_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    qn = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        for table, columns in TABLES.items():
            cursor.execute(
                f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(table + '_pkey')} "
                f"PRIMARY KEY ({', '.join(qn(c) for c in columns)})"
            )


class Migration(migrations.Migration):
    dependencies = [("reports", "0014_effective_values_stored_once")]

    operations = [
        migrations.AddIndex(
            model_name="devicesettingstatus",
            index=models.Index(fields=["device", "policy"], name="dss_device_policy_idx"),
        ),
        migrations.AddIndex(
            model_name="deviceeffectivesetting",
            index=models.Index(fields=["device"], name="des_device_idx"),
        ),
        migrations.RunPython(drop_keys, add_keys, elidable=False),
    ]
