"""The agent state moves from JSONB to packed bytes (devices.statepack): a new column, filled in batches, then it
takes the old one's name. Backwards, the bytes are unpacked into JSON again."""

from django.db import migrations

import devices.statepack

BATCH = 2_000


def _copy(apps, schema_editor, source: str, target: str, convert) -> None:
    Device = apps.get_model("devices", "Device")
    connection = schema_editor.connection
    last = 0
    while True:
        batch = list(
            Device.objects.using(connection.alias)
            .filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", source)[:BATCH]
        )
        if not batch:
            return
        last = batch[-1][0]
        rows = [(pk, convert(value)) for pk, value in batch]
        if connection.vendor == "postgresql":
            kind = "bytea" if target == "agent_state_packed" else "jsonb"
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE devices_device AS d SET {target} = v.state "
                    f"FROM unnest(%s::bigint[], %s::{kind}[]) AS v(id, state) WHERE d.id = v.id",
                    [[pk for pk, _ in rows], [state for _, state in rows]],
                )
        else:
            objs = [Device(pk=pk, **{target: state}) for pk, state in rows]
            Device.objects.using(connection.alias).bulk_update(objs, [target])


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        convert = devices.statepack.pack  # raw SQL: the bytes themselves
    else:
        convert = dict  # bulk_update: the field packs
    _copy(apps, schema_editor, "agent_state", "agent_state_packed", lambda value: convert(value or {}))


def backward(apps, schema_editor):
    import json

    if schema_editor.connection.vendor == "postgresql":
        convert = json.dumps
    else:
        convert = dict
    _copy(apps, schema_editor, "agent_state_packed", "agent_state", lambda value: convert(value or {}))


class Migration(migrations.Migration):
    dependencies = [("devices", "0010_device_counts")]

    operations = [
        migrations.AddField(
            model_name="device",
            name="agent_state_packed",
            field=devices.statepack.PackedJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(forward, backward, elidable=False),
        migrations.RemoveField(model_name="device", name="agent_state"),
        migrations.RenameField(model_name="device", old_name="agent_state_packed", new_name="agent_state"),
    ]
