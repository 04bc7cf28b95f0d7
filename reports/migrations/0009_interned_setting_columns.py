"""Setting keys (setting status and effective rows) and setting values (setting status rows) are stored once.

The rows keep the 8-byte key of the text (reports.interned, now console.interned); the texts join the status
messages in one table, renamed StatusMessage -> StoredText. On PostgreSQL each table is rewritten once (``ALTER COLUMN … TYPE bigint
USING …``; the indexes and the hash-kept unique constraints over the column are rebuilt by it). A setting key's
key is computed in SQL, as for the messages in 0007. A value's key is the MD5 of its canonical JSON text (sorted
keys, no spaces: console.interned.canonical_json), which PostgreSQL's jsonb text does not reproduce, so the
distinct values are read once, keyed in Python, and the rewrite looks each row's value up in a temporary table.
JSON null becomes SQL NULL. Elsewhere (SQLite) the columns are rewritten row by row and the table remade.
"""

import hashlib
import json

import django.db.models.deletion
from django.db import migrations, models

import console.interned

KEY = "('x' || left(md5({}), 16))::bit(64)::bigint"
STATUS, EFFECTIVE, TEXTS = (
    "reports_devicesettingstatus",
    "reports_deviceeffectivesetting",
    "reports_storedtext",
)
ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _key(text):
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def _store(cursor, texts, placeholder="%s"):
    """Insert (key, text) pairs; refuse a key that already stands for another text."""
    pairs = sorted({(_key(t), t) for t in texts})
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start : start + 1000]
        values = ", ".join([f"({placeholder}, {placeholder})"] * len(chunk))
        cursor.execute(
            f"INSERT INTO {TEXTS} (key, text) VALUES {values} ON CONFLICT (key) DO NOTHING",
            [p for pair in chunk for p in pair],
        )
        keys = [k for k, _ in chunk]
        cursor.execute(
            f"SELECT key, text FROM {TEXTS} WHERE key IN ({', '.join([placeholder] * len(keys))})", keys
        )
        stored = dict(cursor.fetchall())
        for key, text in chunk:
            if stored.get(key) != text:
                raise ValueError(
                    f"Stored text key {key} already stands for another text: {stored.get(key)!r}"
                )


def _distinct(cursor, sql):
    cursor.execute(sql)
    return [row[0] for row in cursor.fetchall()]


def forward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        keys = set(_distinct(cursor, f"SELECT DISTINCT setting_key FROM {STATUS}"))
        keys |= set(_distinct(cursor, f"SELECT DISTINCT setting_key FROM {EFFECTIVE}"))
        if connection.vendor == "postgresql":
            values = _distinct(cursor, f"SELECT DISTINCT value::text FROM {STATUS} WHERE value IS NOT NULL")
            canonical = {raw: ENCODER.encode(json.loads(raw)) for raw in values}
            canonical = {raw: text for raw, text in canonical.items() if text != "null"}
            _store(cursor, keys | set(canonical.values()))
            cursor.execute("CREATE TEMP TABLE interned_values (value jsonb PRIMARY KEY, key bigint NOT NULL)")
            for start in range(0, len(canonical), 1000):
                chunk = list(canonical.items())[start : start + 1000]
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
                f"ALTER TABLE {STATUS} ALTER COLUMN setting_key TYPE bigint USING {KEY.format('setting_key')}, "
                "ALTER COLUMN value TYPE bigint USING pg_temp.interned_value_key(value)"
            )
            cursor.execute(
                f"ALTER TABLE {EFFECTIVE} ALTER COLUMN setting_key TYPE bigint USING {KEY.format('setting_key')}"
            )
            cursor.execute("DROP FUNCTION pg_temp.interned_value_key(jsonb)")
            cursor.execute("DROP TABLE interned_values")
            return
        values = _distinct(cursor, f"SELECT DISTINCT value FROM {STATUS} WHERE value IS NOT NULL")
        canonical = {raw: ENCODER.encode(json.loads(raw)) for raw in values}
        _store(cursor, keys | {text for text in canonical.values() if text != "null"})
        # The key as text in the old columns; remaking the table as bigint turns it into the number.
        for key in keys:
            for table in (STATUS, EFFECTIVE):
                cursor.execute(
                    f"UPDATE {table} SET setting_key = %s WHERE setting_key = %s", [str(_key(key)), key]
                )
        for raw, text in canonical.items():
            new = None if text == "null" else str(_key(text))
            cursor.execute(f"UPDATE {STATUS} SET value = %s WHERE value = %s", [new, raw])
    _remake(apps, schema_editor, to_keys=True)


def _fields(interned, names):
    made = {
        "setting_key": console.interned.InternedTextField() if interned else models.CharField(max_length=255),
        "value": (
            console.interned.InternedJSONField(blank=True, null=True)
            if interned
            else models.JSONField(blank=True, null=True)
        ),
    }
    for name, field in made.items():
        field.set_attributes_from_name(name)
    return [made[name] for name in names]


def _remake(apps, schema_editor, to_keys):
    """SQLite: one table remake each, with the columns' new types (the values are already converted)."""
    for model_name, names in (
        ("DeviceSettingStatus", ("setting_key", "value")),
        ("DeviceEffectiveSetting", ("setting_key",)),
    ):
        model = apps.get_model("reports", model_name)
        pairs = list(zip(_fields(not to_keys, names), _fields(to_keys, names), strict=True))
        for old, new in pairs:
            old.model = new.model = model
        schema_editor._remake_table(model, alter_fields=pairs)


def backward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION pg_temp.stored_text(k bigint) RETURNS text LANGUAGE sql STABLE "
                f"AS 'SELECT text FROM {TEXTS} WHERE key = k'"
            )
            cursor.execute(
                f"ALTER TABLE {STATUS} ALTER COLUMN setting_key TYPE varchar(255) USING pg_temp.stored_text(setting_key), "
                "ALTER COLUMN value TYPE jsonb USING coalesce(pg_temp.stored_text(value), 'null')::jsonb"
            )
            cursor.execute(
                f"ALTER TABLE {EFFECTIVE} ALTER COLUMN setting_key TYPE varchar(255) "
                "USING pg_temp.stored_text(setting_key)"
            )
            cursor.execute("DROP FUNCTION pg_temp.stored_text(bigint)")
            return
    _remake(apps, schema_editor, to_keys=False)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, text FROM {TEXTS}")
        for key, text in cursor.fetchall():
            for table in (STATUS, EFFECTIVE):
                cursor.execute(
                    f"UPDATE {table} SET setting_key = %s WHERE setting_key = %s", [text, str(key)]
                )
            cursor.execute(f"UPDATE {STATUS} SET value = %s WHERE value = %s", [text, str(key)])
        cursor.execute(f"UPDATE {STATUS} SET value = 'null' WHERE value IS NULL")


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0008_policy_status_device_name"),
    ]

    operations = [
        migrations.RenameModel(old_name="StatusMessage", new_name="StoredText"),
        migrations.AddField(
            model_name="deviceeffectivesetting",
            name="setting_key_text",
            field=models.ForeignObject(
                default=None,
                from_fields=["setting_key"],
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="reports.storedtext",
                to_fields=["key"],
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="devicesettingstatus",
            name="setting_key_text",
            field=models.ForeignObject(
                default=None,
                from_fields=["setting_key"],
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="reports.storedtext",
                to_fields=["key"],
            ),
            preserve_default=False,
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="deviceeffectivesetting",
                    name="setting_key",
                    field=console.interned.InternedTextField(),
                ),
                migrations.AlterField(
                    model_name="devicesettingstatus",
                    name="setting_key",
                    field=console.interned.InternedTextField(),
                ),
                migrations.AlterField(
                    model_name="devicesettingstatus",
                    name="value",
                    field=console.interned.InternedJSONField(blank=True, null=True),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
