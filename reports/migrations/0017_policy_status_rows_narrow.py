"""Policy status rows store their device and policy as 4-byte ids and their setting counts as 2-byte integers,
and the three "devices of a policy" b-trees end with the device instead of the row's id.

A row was 104 bytes: 8-byte device and policy ids and five 4-byte counts. With ``integer`` ids
(console.compact.NarrowForeignKey) and ``smallint`` counts (a policy configures at most a few hundred settings)
it is 88, and the columns stay in the size order migration 0016 gave them (ALTER COLUMN … TYPE keeps a column's
place). Within one policy the device is unique, so it replaces the row's id as the pages' tiebreaker: an entry of
(policy, device name, device) is 32 bytes instead of 40, and (device, policy) 16 instead of 24. The Last report
time b-tree drops its tiebreaker: a batch of check-ins reports its devices at one time, so PostgreSQL keeps each
(policy, time) once with the list of its rows (b-tree deduplication), and the page's few equal times are sorted
by device (an incremental sort).

On PostgreSQL the columns change in one ALTER TABLE (console.compact.retype_columns: one rewrite of the table
instead of seven). On SQLite, which stores an integer by its value whatever the
column's declared type, only the indexes change.
"""

import django.db.models.deletion
from django.db import migrations, models

import console.compact

COUNTS = ("succeeded_count", "error_count", "conflict_count", "not_applicable_count", "pending_count")
# name -> (fields before, fields after)
INDEXES = {
    "dps_policy_name_idx": (["policy", "device_name", "id"], ["policy", "device_name", "device"]),
    "dps_policy_status_name_idx": (
        ["policy", "status", "device_name", "id"],
        ["policy", "status", "device_name", "device"],
    ),
    "dps_policy_reported_idx": (["policy", "last_reported_at", "id"], ["policy", "last_reported_at"]),
}


def _fields() -> dict[str, models.Field]:
    """The new fields, for the state."""
    fk, count = console.compact.NarrowForeignKey, models.PositiveSmallIntegerField
    fields = {
        "device": fk(
            "devices.Device", on_delete=django.db.models.deletion.CASCADE, related_name="policy_statuses",
            db_index=False,
        ),
        "policy": fk(
            "policies.Policy", on_delete=django.db.models.deletion.CASCADE, related_name="device_statuses",
            db_index=False,
        ),
        **{name: count(default=0) for name in COUNTS},
    }  # fmt: skip
    for name, field in fields.items():
        field.set_attributes_from_name(name)
    return fields


def _indexes(after: bool) -> list[models.Index]:
    return [models.Index(fields=fields[after], name=name) for name, fields in INDEXES.items()]


def _change(narrow: bool):
    def run(apps, schema_editor):
        model = apps.get_model("reports", "DevicePolicyStatus")
        # the old indexes first: on PostgreSQL the rewrite below then rebuilds only the (device, policy) b-tree
        for index in _indexes(not narrow):
            schema_editor.remove_index(model, index)
        # SQLite stores an integer by its value whatever the column's declared type: only its indexes change (the
        # next rebuild of the table declares the new types, from the model's state)
        if schema_editor.connection.vendor == "postgresql":
            ids, counts = ("integer", "smallint") if narrow else ("bigint", "integer")
            types = {"device_id": ids, "policy_id": ids, **dict.fromkeys(COUNTS, counts)}
            console.compact.retype_columns(schema_editor, model._meta.db_table, types)
        for index in _indexes(narrow):
            schema_editor.add_index(model, index)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0014_agent_state_stored_once"),
        ("policies", "0005_drop_redundant_indexes"),
        ("reports", "0016_status_rows_packed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(_change(True), _change(False), elidable=False)],
            state_operations=[
                migrations.RemoveIndex(model_name="devicepolicystatus", name=name) for name in INDEXES
            ]
            + [
                migrations.AlterField(model_name="devicepolicystatus", name=name, field=field)
                for name, field in _fields().items()
            ]
            + [
                migrations.AddIndex(model_name="devicepolicystatus", index=index)
                for index in _indexes(True)
            ],
        ),
    ]
