"""An effective-settings row's value and intended value are stored once (console.interned), as the setting status
rows' values are since 0009: a few dozen distinct values over every entry (21 bytes each on average as jsonb),
8 bytes each instead. JSON null becomes SQL NULL (both read as None).

A value's key is the MD5 of its canonical JSON text (console.interned.canonical_json), which PostgreSQL's jsonb
text does not reproduce, so, as in 0009, the distinct values are read once and keyed in Python, and on PostgreSQL
the table is rewritten once looking each row's values up in a temporary table. Elsewhere (SQLite) the rows are
updated value by value and the table remade.
"""

import hashlib
import json

from django.db import migrations, models

import console.interned

TABLE, TEXTS = "reports_deviceeffectivesetting", "console_storedtext"
COLUMNS = ("value", "intended_value")
ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _key(text):
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def _store(cursor, texts):
    """Insert (key, text) pairs; refuse a key that already stands for another text."""
    pairs = sorted({(_key(t), t) for t in texts})
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start : start + 1000]
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


def _raw_values(cursor, cast=""):
    union = " UNION ".join(f"SELECT {c}{cast} AS v FROM {TABLE} WHERE {c} IS NOT NULL" for c in COLUMNS)
    cursor.execute(union)
    return [row[0] for row in cursor.fetchall()]


def _fields(interned):
    made = []
    for name in COLUMNS:
        field = (
            console.interned.InternedJSONField(blank=True, null=True)
            if interned
            else models.JSONField(blank=True, null=True)
        )
        field.set_attributes_from_name(name)
        made.append(field)
    return made


def _remake(apps, schema_editor, to_keys):
    """SQLite: one table remake with the columns' new types (the values are already converted)."""
    model = apps.get_model("reports", "DeviceEffectiveSetting")
    pairs = list(zip(_fields(not to_keys), _fields(to_keys), strict=True))
    for old, new in pairs:
        old.model = new.model = model
    schema_editor._remake_table(model, alter_fields=pairs)


def forward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            canonical = {raw: ENCODER.encode(json.loads(raw)) for raw in _raw_values(cursor, "::text")}
            canonical = {raw: text for raw, text in canonical.items() if text != "null"}
            _store(cursor, set(canonical.values()))
            cursor.execute("CREATE TEMP TABLE interned_values (value jsonb PRIMARY KEY, key bigint NOT NULL)")
            items = list(canonical.items())
            for start in range(0, len(items), 1000):
                chunk = items[start : start + 1000]
                cursor.execute(
                    "INSERT INTO interned_values VALUES " + ", ".join(["(%s::jsonb, %s)"] * len(chunk)),
                    [p for raw, text in chunk for p in (raw, _key(text))],
                )
            cursor.execute("ANALYZE interned_values")
            cursor.execute(
                "CREATE FUNCTION pg_temp.interned_value_key(v jsonb) RETURNS bigint LANGUAGE sql STABLE "
                "AS 'SELECT key FROM interned_values WHERE value = v'"
            )
            cursor.execute(
                f"ALTER TABLE {TABLE} "
                + ", ".join(f"ALTER COLUMN {c} TYPE bigint USING pg_temp.interned_value_key({c})" for c in COLUMNS)
            )
            cursor.execute("DROP FUNCTION pg_temp.interned_value_key(jsonb)")
            cursor.execute("DROP TABLE interned_values")
            return
        canonical = {raw: ENCODER.encode(json.loads(raw)) for raw in set(_raw_values(cursor))}
        _store(cursor, {text for text in canonical.values() if text != "null"})
        # The key as text in the old columns; remaking the table as bigint turns it into the number.
        for raw, text in canonical.items():
            new = None if text == "null" else str(_key(text))
            for column in COLUMNS:
                cursor.execute(f"UPDATE {TABLE} SET {column} = %s WHERE {column} = %s", [new, raw])
    _remake(apps, schema_editor, to_keys=True)


def backward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION pg_temp.stored_text(k bigint) RETURNS text LANGUAGE sql STABLE "
                f"AS 'SELECT text FROM {TEXTS} WHERE key = k'"
            )
            cursor.execute(
                f"ALTER TABLE {TABLE} "
                + ", ".join(
                    f"ALTER COLUMN {c} TYPE jsonb USING coalesce(pg_temp.stored_text({c}), 'null')::jsonb"
                    for c in COLUMNS
                )
            )
            cursor.execute("DROP FUNCTION pg_temp.stored_text(bigint)")
            return
        keys = {int(k) for k in _raw_values(cursor)}
    _remake(apps, schema_editor, to_keys=False)
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute(f"SELECT text FROM {TEXTS} WHERE key = %s", [key])
            text = cursor.fetchone()[0]
            for column in COLUMNS:
                cursor.execute(f"UPDATE {TABLE} SET {column} = %s WHERE {column} = %s", [text, str(key)])
        for column in COLUMNS:
            cursor.execute(f"UPDATE {TABLE} SET {column} = 'null' WHERE {column} IS NULL")


class Migration(migrations.Migration):
    dependencies = [("reports", "0013_policy_status_messages")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="deviceeffectivesetting",
                    name=name,
                    field=console.interned.InternedJSONField(blank=True, null=True),
                )
                for name in COLUMNS
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
