"""A policy status row's message is stored once (console.interned): nine texts over every device-policy row (46 bytes
on average, "Waiting for the device to check in and report." the commonest), 8 bytes a row instead.

As devices 0013: on PostgreSQL the texts are stored and the table rewritten once (``ALTER COLUMN … TYPE bigint
USING`` the key computed in SQL); an empty message becomes NULL and still reads as "". Elsewhere (SQLite) the rows
are updated text by text and the table remade.
"""

import hashlib

import django.db.models.deletion
from django.db import migrations, models

import console.interned

KEY = "('x' || left(md5({0}), 16))::bit(64)::bigint"
TEXTS = "console_storedtext"
COLUMNS = (("reports_devicepolicystatus", "message", "DevicePolicyStatus"),)


def _key(text):
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def _texts(cursor) -> list[str]:
    union = " UNION ".join(f"SELECT {column} AS t FROM {table}" for table, column, _ in COLUMNS)
    cursor.execute(f"SELECT t FROM ({union}) AS texts WHERE t <> ''")
    return [row[0] for row in cursor.fetchall()]


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


def _fields(interned):
    field = (
        console.interned.InternedTextField(null=True, blank=True, default="", empty_text="")
        if interned
        else models.TextField(blank=True, default="")
    )
    return field


def _remake(apps, schema_editor, to_keys):
    """SQLite: one table remake each, with the column's new type (the values are already converted)."""
    for _, column, model_name in COLUMNS:
        model = apps.get_model("reports", model_name)
        old, new = _fields(not to_keys), _fields(to_keys)
        for field in (old, new):
            field.set_attributes_from_name(column)
            field.model = model
        schema_editor._remake_table(model, alter_fields=[(old, new)])


def forward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        texts = _texts(cursor)
        _store(cursor, texts)
        if connection.vendor == "postgresql":
            for table, column, _ in COLUMNS:
                cursor.execute(
                    f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL, ALTER COLUMN {column} TYPE bigint "
                    f"USING CASE WHEN {column} = '' THEN NULL ELSE {KEY.format(column)} END"
                )
            return
    # SQLite: the table remade with the key's (nullable) type first, its values still the texts (a text that is
    # not a number stays a text in an integer column), then each text's rows take its key.
    _remake(apps, schema_editor, to_keys=True)
    with connection.cursor() as cursor:
        for table, column, _ in COLUMNS:
            cursor.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} = ''")
            for text in texts:
                cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {column} = %s", [_key(text), text])


def backward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION pg_temp.stored_text(k bigint) RETURNS text LANGUAGE sql STABLE "
                f"AS 'SELECT text FROM {TEXTS} WHERE key = k'"
            )
            for table, column, _ in COLUMNS:
                cursor.execute(
                    f"ALTER TABLE {table} ALTER COLUMN {column} TYPE text "
                    f"USING coalesce(pg_temp.stored_text({column}), ''), ALTER COLUMN {column} SET NOT NULL"
                )
            cursor.execute("DROP FUNCTION pg_temp.stored_text(bigint)")
            return
        # SQLite: each key's rows take its text first (NULL: ""), then the table is remade with the text type.
        for table, column, _ in COLUMNS:
            cursor.execute(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL")
            keys = [row[0] for row in cursor.fetchall()]
            for key in keys:
                cursor.execute(f"SELECT text FROM {TEXTS} WHERE key = %s", [int(key)])
                cursor.execute(
                    f"UPDATE {table} SET {column} = %s WHERE {column} = %s", [cursor.fetchone()[0], key]
                )
            cursor.execute(f"UPDATE {table} SET {column} = '' WHERE {column} IS NULL")
    _remake(apps, schema_editor, to_keys=False)


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0011_stored_text"),
        ("reports", "0012_status_row_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="devicepolicystatus",
                    name="message",
                    field=console.interned.InternedTextField(
                        blank=True, default="", empty_text="", null=True
                    ),
                ),
                # No column: the stored text, to export or match by text (a state-only operation: SQLite's
                # schema editor cannot remove a ForeignObject backwards).
                migrations.AddField(
                    model_name="devicepolicystatus",
                    name="message_text",
                    field=models.ForeignObject(
                        from_fields=["message"],
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="console.storedtext",
                        to_fields=["key"],
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
