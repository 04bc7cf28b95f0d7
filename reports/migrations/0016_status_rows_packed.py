"""Setting status and effective setting rows store their status / intent as a 2-byte code, and on PostgreSQL
their columns in size order.

They are the two largest tables (29 setting status rows and 10 effective rows a device at 20 policies). A setting
status row was 80 bytes (88 for Not applicable), an effective row ~98: the status or intent as ``varchar``
(8-15 bytes) sat between 8-byte columns, and PostgreSQL aligns each 8-byte column to 8 bytes, so the rows
carried padding as well. Now the status and the intent are ``smallint`` codes (console.coded: Python still sees
the text; the codes follow the texts' sort order) and the columns are stored 8-byte ones first. A setting status
row is 72 bytes (80 with an error code), an effective row 80.

PostgreSQL cannot reorder columns in place: each table is copied into a new one with the new layout (one pass,
its indexes built once afterwards, its constraints added back as they were), the old one dropped and the new one
renamed, inside the migration's transaction. Reversing copies them back into the old layout. SQLite rebuilds the
tables for the new column type (Django's alter_field) and the texts become their codes; its column order does
not matter to its size.

Three operations, so that each data step sees the model state it needs: going forward the last one packs the
tables with the coded fields' state (a partial index's condition compiles to the codes); going back the first one
unpacks them with the text fields' state.
"""

from django.db import migrations, models

import console.coded

STATUS_CHOICES = [
    ("succeeded", "Succeeded"),
    ("error", "Error"),
    ("conflict", "Conflict"),
    ("not_applicable", "Not applicable"),
    ("pending", "Pending"),
]
STATUS_CODES = {"conflict": 1, "error": 2, "not_applicable": 3, "pending": 4, "succeeded": 5}
INTENT_CHOICES = [("matches", "Matches intent"), ("differs", "Does not match intent"), ("none", "No intent")]
INTENT_CODES = {"differs": 1, "matches": 2, "none": 3}


def _code_of(column: str, codes: dict[str, int]) -> str:
    return f"(CASE {column} {' '.join(f'WHEN {t!r} THEN {c}' for t, c in codes.items())} END)"


def _text_of(column: str, codes: dict[str, int]) -> str:
    return f"(CASE {column} {' '.join(f'WHEN {c} THEN {t!r}' for t, c in codes.items())} END)"


# model -> (coded field, its codes, text field's max_length, choices, the packed and the unpacked layouts). A
# layout is [(column, type, expression over the other layout's table)], in storage order.
TABLES = {
    "DeviceSettingStatus": (
        "status",
        STATUS_CODES,
        16,
        STATUS_CHOICES,
        [
            ("device_id", "bigint NOT NULL", "device_id"),
            ("policy_id", "bigint NOT NULL", "policy_id"),
            ("setting_key", "bigint NOT NULL", "setting_key"),
            ("value", "bigint", "value"),
            ("message_key", "bigint", "message_key"),
            ("error_code", "integer", "error_code"),
            ("status", "smallint NOT NULL", _code_of("status", STATUS_CODES) + "::smallint"),
            ("conflict_policy_ids", "jsonb NOT NULL", "conflict_policy_ids"),
        ],
        [
            ("setting_key", "bigint NOT NULL", "setting_key"),
            ("value", "bigint", "value"),
            ("status", "varchar(16) NOT NULL", _text_of("status", STATUS_CODES)),
            ("error_code", "integer", "error_code"),
            ("conflict_policy_ids", "jsonb NOT NULL", "conflict_policy_ids"),
            ("device_id", "bigint NOT NULL", "device_id"),
            ("policy_id", "bigint NOT NULL", "policy_id"),
            ("message_key", "bigint", "message_key"),
        ],
    ),
    "DeviceEffectiveSetting": (
        "intent",
        INTENT_CODES,
        8,
        INTENT_CHOICES,
        [
            ("device_id", "bigint NOT NULL", "device_id"),
            ("setting_key", "bigint NOT NULL", "setting_key"),
            ("value", "bigint", "value"),
            ("intended_value", "bigint", "intended_value"),
            ("changed_at", "timestamp with time zone NOT NULL", "changed_at"),
            ("intent", "smallint NOT NULL", _code_of("intent", INTENT_CODES) + "::smallint"),
            ("entry", "varchar(500) NOT NULL", "entry"),
            ("configured_by", "varchar(20) NOT NULL", "configured_by"),
            ("other_attempts", "jsonb NOT NULL", "other_attempts"),
        ],
        [
            ("setting_key", "bigint NOT NULL", "setting_key"),
            ("entry", "varchar(500) NOT NULL", "entry"),
            ("value", "bigint", "value"),
            ("configured_by", "varchar(20) NOT NULL", "configured_by"),
            ("other_attempts", "jsonb NOT NULL", "other_attempts"),
            ("intended_value", "bigint", "intended_value"),
            ("intent", "varchar(8) NOT NULL", _text_of("intent", INTENT_CODES)),
            ("changed_at", "timestamp with time zone NOT NULL", "changed_at"),
            ("device_id", "bigint NOT NULL", "device_id"),
        ],
    ),
}


def _rewrite(schema_editor, model, layout) -> None:
    """PostgreSQL: copy ``model``'s table into ``layout``, then its constraints and ``model``'s indexes."""
    qn = schema_editor.quote_name
    table = model._meta.db_table
    new = table + "_packing"
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
            "ORDER BY conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(f"CREATE TABLE {qn(new)} ({', '.join(f'{qn(c)} {kind}' for c, kind, _ in layout)})")
        cursor.execute(
            f"INSERT INTO {qn(new)} ({', '.join(qn(c) for c, _, _ in layout)}) "
            f"SELECT {', '.join(expression for _, _, expression in layout)} FROM {qn(table)}"
        )
        cursor.execute(f"DROP TABLE {qn(table)}")
        cursor.execute(f"ALTER TABLE {qn(new)} RENAME TO {qn(table)}")
        for name, definition in constraints:
            cursor.execute(f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(name)} {definition}")
    for index in model._meta.indexes:
        schema_editor.execute(index.create_sql(model, schema_editor))
    schema_editor.execute(f"ANALYZE {qn(table)}")


def _fields(name: str, codes, max_length: int, choices):
    text = models.CharField(max_length=max_length, choices=choices)
    coded = console.coded.CodedChoiceField(choices=choices, codes=codes)
    for field in (text, coded):
        field.set_attributes_from_name(name)
    return text, coded


def pack(apps, schema_editor):
    """Forward, with the coded fields' state."""
    for model_name, (name, codes, max_length, choices, packed, _) in TABLES.items():
        model = apps.get_model("reports", model_name)
        if schema_editor.connection.vendor == "postgresql":
            _rewrite(schema_editor, model, packed)
            continue
        text, _ = _fields(name, codes, max_length, choices)
        text.model = model
        schema_editor.alter_field(model, text, model._meta.get_field(name))  # a '5' stored becomes 5
        table, column = schema_editor.quote_name(model._meta.db_table), schema_editor.quote_name(name)
        schema_editor.execute(f"UPDATE {table} SET {column} = {_code_of(column, codes)}")


def unpack(apps, schema_editor):
    """Backward, with the text fields' state."""
    for model_name, (name, codes, max_length, choices, _, unpacked) in TABLES.items():
        model = apps.get_model("reports", model_name)
        if schema_editor.connection.vendor == "postgresql":
            _rewrite(schema_editor, model, unpacked)
            continue
        _, coded = _fields(name, codes, max_length, choices)
        coded.model = model
        table, column = schema_editor.quote_name(model._meta.db_table), schema_editor.quote_name(name)
        schema_editor.execute(f"UPDATE {table} SET {column} = {_text_of(column, codes)}")
        schema_editor.alter_field(model, coded, model._meta.get_field(name))


class Migration(migrations.Migration):
    dependencies = [("reports", "0015_status_rows_found_by_device")]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, unpack, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="devicesettingstatus",
                    name="status",
                    field=console.coded.CodedChoiceField(choices=STATUS_CHOICES, codes=STATUS_CODES),
                ),
                migrations.AlterField(
                    model_name="deviceeffectivesetting",
                    name="intent",
                    field=console.coded.CodedChoiceField(
                        choices=INTENT_CHOICES, codes=INTENT_CODES, default="none"
                    ),
                ),
            ],
        ),
        migrations.RunPython(pack, migrations.RunPython.noop, elidable=False),
    ]
