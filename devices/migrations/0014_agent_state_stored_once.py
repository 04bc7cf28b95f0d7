"""A device's agent state is stored once per distinct state (devices.models.AgentStateField): the row holds the key
of the state's canonical JSON, the JSON lives in console.StoredText. The empty state (packed as no bytes) is NULL.

The distinct packed states are read once and unpacked here (devices.statepack, whose version 1 dictionary stays
frozen for this). On PostgreSQL the table is then rewritten once (``ALTER COLUMN … TYPE bigint USING`` a lookup in
a temporary table of packed bytes -> key, as 0013 computes its keys in SQL; the rewrite also drops the old bytes
at once and packs the table at its fillfactor). Elsewhere (SQLite) the rows are updated state by state and the
table remade. Backwards, the states are packed again.
"""

import hashlib
import json

from django.db import migrations

import devices.models
import devices.statepack

TEXTS = "console_storedtext"
# console.interned.canonical_json as it is today, frozen here: the key is the MD5 of exactly this text.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _key(text):
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def _store(cursor, pairs):
    """Insert (key, text) pairs; refuse a key that already stands for another text."""
    pairs = sorted(set(pairs))
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        cursor.execute(
            f"INSERT INTO {TEXTS} (key, text) VALUES {', '.join(['(%s, %s)'] * len(chunk))} "
            "ON CONFLICT (key) DO NOTHING",
            [p for pair in chunk for p in pair],
        )
        keys = [k for k, _ in chunk]
        cursor.execute(f"SELECT key, text FROM {TEXTS} WHERE key IN ({', '.join(['%s'] * len(keys))})", keys)
        stored = dict(cursor.fetchall())
        for key, text in chunk:
            if stored.get(key) != text:
                raise ValueError(f"Stored text key {key} already stands for another text: {stored.get(key)!r}")


def _remake(apps, schema_editor, to_keys):
    """SQLite: remake the table with the column's new type (the values are already converted)."""
    model = apps.get_model("devices", "Device")
    packed = devices.statepack.PackedJSONField(blank=True, default=dict)
    keyed = devices.models.AgentStateField(null=True, blank=True, default=dict)
    old, new = (packed, keyed) if to_keys else (keyed, packed)
    for field in (old, new):
        field.set_attributes_from_name("agent_state")
        field.model = model
    schema_editor._remake_table(model, alter_fields=[(old, new)])


def forward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT agent_state FROM devices_device WHERE agent_state IS NOT NULL")
        mapping = {}  # packed bytes -> key (None: the empty state)
        texts = []
        for (packed,) in cursor.fetchall():
            state = devices.statepack.unpack(packed)
            if state:
                text = _ENCODER.encode(state)
                texts.append((_key(text), text))
                mapping[bytes(packed)] = _key(text)
            else:
                mapping[bytes(packed)] = None
        _store(cursor, texts)
        if connection.vendor == "postgresql":
            cursor.execute("CREATE TEMPORARY TABLE state_keys (packed bytea PRIMARY KEY, key bigint)")
            items = list(mapping.items())
            for start in range(0, len(items), 1000):
                chunk = items[start : start + 1000]
                cursor.execute(
                    "INSERT INTO state_keys SELECT * FROM unnest(%s::bytea[], %s::bigint[])",
                    [[p for p, _ in chunk], [k for _, k in chunk]],
                )
            cursor.execute(
                "CREATE FUNCTION pg_temp.state_key(p bytea) RETURNS bigint LANGUAGE sql STABLE "
                "AS 'SELECT key FROM state_keys WHERE packed = p'"
            )
            cursor.execute(
                "ALTER TABLE devices_device ALTER COLUMN agent_state DROP NOT NULL, "
                "ALTER COLUMN agent_state TYPE bigint USING pg_temp.state_key(agent_state)"
            )
            cursor.execute("DROP FUNCTION pg_temp.state_key(bytea)")
            cursor.execute("DROP TABLE state_keys")
            return
    # SQLite: the table remade with the key's (nullable) type first, its values still the bytes (SQLite keeps a
    # BLOB as it is), then each distinct state's rows take the key.
    _remake(apps, schema_editor, to_keys=True)
    with connection.cursor() as cursor:
        for packed, key in mapping.items():
            cursor.execute("UPDATE devices_device SET agent_state = %s WHERE agent_state = %s", [key, packed])


def backward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT agent_state FROM devices_device WHERE agent_state IS NOT NULL")
        keys = [int(row[0]) for row in cursor.fetchall()]
        packed = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            cursor.execute(f"SELECT key, text FROM {TEXTS} WHERE key IN ({', '.join(['%s'] * len(chunk))})", chunk)
            packed.update({key: devices.statepack.pack(json.loads(text)) for key, text in cursor.fetchall()})
        if connection.vendor == "postgresql":
            cursor.execute("CREATE TEMPORARY TABLE state_packs (key bigint PRIMARY KEY, packed bytea)")
            items = list(packed.items())
            for start in range(0, len(items), 1000):
                chunk = items[start : start + 1000]
                cursor.execute(
                    "INSERT INTO state_packs SELECT * FROM unnest(%s::bigint[], %s::bytea[])",
                    [[k for k, _ in chunk], [p for _, p in chunk]],
                )
            cursor.execute(
                "CREATE FUNCTION pg_temp.state_pack(k bigint) RETURNS bytea LANGUAGE sql STABLE "
                "AS 'SELECT packed FROM state_packs WHERE key = k'"
            )
            cursor.execute(
                "ALTER TABLE devices_device ALTER COLUMN agent_state TYPE bytea "
                "USING coalesce(pg_temp.state_pack(agent_state), ''::bytea), ALTER COLUMN agent_state SET NOT NULL"
            )
            cursor.execute("DROP FUNCTION pg_temp.state_pack(bigint)")
            cursor.execute("DROP TABLE state_packs")
            return
        # The bytes in the key column (SQLite keeps a BLOB as it is), then the table remade with the bytes' type.
        for key, data in packed.items():
            cursor.execute("UPDATE devices_device SET agent_state = %s WHERE agent_state = %s", [data, key])
        cursor.execute("UPDATE devices_device SET agent_state = %s WHERE agent_state IS NULL", [b""])
    _remake(apps, schema_editor, to_keys=False)


class Migration(migrations.Migration):
    dependencies = [("devices", "0013_interned_messages")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="device",
                    name="agent_state",
                    field=devices.models.AgentStateField(blank=True, default=dict, null=True),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
