"""The status rows store their statuses as 2-byte codes, and on PostgreSQL their columns in size order.

The setting status, effective setting and policy status rows are the three largest tables (29, 10 and 5 rows a
device at 20 policies). A setting status row was 80 bytes (88 for Not applicable), an effective row ~98, a policy
status row 120: the status, intent or channel as ``varchar`` (4-15 bytes) sat between 8-byte columns, and
PostgreSQL aligns each 8-byte column to 8 bytes, so the rows carried padding as well. Now

- the setting and policy statuses, the intent and the channel are ``smallint`` codes (console.compact: Python
  still sees the text; the codes follow the texts' sort order, so ``ORDER BY`` is unchanged);
- a setting status row's device and policy are 4-byte ids (console.compact.NarrowForeignKey);
- the columns are stored 8-byte ones first.

A setting status row is 64 bytes (72 with an error code), an effective row 80, a policy status row 104.

PostgreSQL cannot reorder columns in place: each table is copied into a new one with the new layout (one pass,
its indexes built once afterwards, its constraints and identity sequence carried over), the old one dropped and
the new one renamed, inside the migration's transaction. Reversing copies them back into the old layout. SQLite
rebuilds the tables for the new column types (Django's alter_field) and the texts become their codes; its
column order does not matter to its size, and it stores an integer by its value whatever the column's type.

Three operations, so that each data step sees the model state it needs: going forward the last one packs the
tables with the coded fields' state (a partial index's condition compiles to the codes); going back the first one
unpacks them with the text fields' state.
"""

import django.db.models.deletion
from django.db import migrations, models

import console.compact

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


CHANNEL_CHOICES = [("mde", "Microsoft Defender for Endpoint"), ("intune", "Microsoft Intune")]
CHANNEL_CODES = {"intune": 1, "mde": 2}
# model -> ([(coded field, its codes, the text field's max_length, choices, default)], the packed and the unpacked
# layouts). A layout is [(column, type, expression over the other layout's table)], in storage order.
TABLES = {
    "DeviceSettingStatus": (
        [("status", STATUS_CODES, 16, STATUS_CHOICES, None)],
        [
            ("device_id", "integer NOT NULL", "device_id"),
            ("policy_id", "integer NOT NULL", "policy_id"),
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
        [("intent", INTENT_CODES, 8, INTENT_CHOICES, "none")],
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
    "DevicePolicyStatus": (
        [
            ("status", STATUS_CODES, 16, STATUS_CHOICES, None),
            ("channel", CHANNEL_CODES, 10, CHANNEL_CHOICES, "mde"),
        ],
        [
            ("id", "bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY", "id"),
            ("message", "bigint", "message"),
            ("last_reported_at", "timestamp with time zone", "last_reported_at"),
            ("device_id", "bigint NOT NULL", "device_id"),
            ("policy_id", "bigint NOT NULL", "policy_id"),
            ("succeeded_count", "integer NOT NULL", "succeeded_count"),
            ("error_count", "integer NOT NULL", "error_count"),
            ("conflict_count", "integer NOT NULL", "conflict_count"),
            ("not_applicable_count", "integer NOT NULL", "not_applicable_count"),
            ("pending_count", "integer NOT NULL", "pending_count"),
            ("status", "smallint NOT NULL", _code_of("status", STATUS_CODES) + "::smallint"),
            ("channel", "smallint NOT NULL", _code_of("channel", CHANNEL_CODES) + "::smallint"),
            ("device_name", "varchar(255) NOT NULL", "device_name"),
        ],
        [
            ("id", "bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY", "id"),
            ("status", "varchar(16) NOT NULL", _text_of("status", STATUS_CODES)),
            ("channel", "varchar(10) NOT NULL", _text_of("channel", CHANNEL_CODES)),
            ("succeeded_count", "integer NOT NULL", "succeeded_count"),
            ("error_count", "integer NOT NULL", "error_count"),
            ("conflict_count", "integer NOT NULL", "conflict_count"),
            ("not_applicable_count", "integer NOT NULL", "not_applicable_count"),
            ("pending_count", "integer NOT NULL", "pending_count"),
            ("message", "bigint", "message"),
            ("last_reported_at", "timestamp with time zone", "last_reported_at"),
            ("device_id", "bigint NOT NULL", "device_id"),
            ("policy_id", "bigint NOT NULL", "policy_id"),
            ("device_name", "varchar(255) NOT NULL", "device_name"),
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
            "ORDER BY contype = 'f', conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(f"CREATE TABLE {qn(new)} ({', '.join(f'{qn(c)} {kind}' for c, kind, _ in layout)})")
        cursor.execute(
            f"INSERT INTO {qn(new)} ({', '.join(qn(c) for c, _, _ in layout)}) OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join(expression for _, _, expression in layout)} FROM {qn(table)}"
        )
        cursor.execute(f"DROP TABLE {qn(table)}")
        cursor.execute(f"ALTER TABLE {qn(new)} RENAME TO {qn(table)}")
        for name, definition in constraints:
            cursor.execute(f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(name)} {definition}")
        if any(column == "id" for column, _, _ in layout):
            # the identity's sequence: named after its table, and going on from the highest id
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            cursor.execute(f"ALTER SEQUENCE {cursor.fetchone()[0]} RENAME TO {qn(table + '_id_seq')}")
            cursor.execute(
                f"SELECT setval(%s, coalesce(max(id), 0) + 1, false) FROM {qn(table)}", [table + "_id_seq"]
            )
    for index in model._meta.indexes:
        schema_editor.execute(index.create_sql(model, schema_editor))
    schema_editor.execute(f"ANALYZE {qn(table)}")


def _fields(name: str, codes, max_length: int, choices, default):
    extra = {} if default is None else {"default": default}
    text = models.CharField(max_length=max_length, choices=choices, **extra)
    coded = console.compact.CodedChoiceField(choices=choices, codes=codes, **extra)
    for field in (text, coded):
        field.set_attributes_from_name(name)
    return text, coded


def pack(apps, schema_editor):
    """Forward, with the coded fields' state."""
    for model_name, (coded_fields, packed, _) in TABLES.items():
        model = apps.get_model("reports", model_name)
        if schema_editor.connection.vendor == "postgresql":
            _rewrite(schema_editor, model, packed)
            continue
        for name, codes, max_length, choices, default in coded_fields:
            text, _ = _fields(name, codes, max_length, choices, default)
            text.model = model
            schema_editor.alter_field(model, text, model._meta.get_field(name))  # a '5' stored becomes 5
            table, column = schema_editor.quote_name(model._meta.db_table), schema_editor.quote_name(name)
            schema_editor.execute(f"UPDATE {table} SET {column} = {_code_of(column, codes)}")


def unpack(apps, schema_editor):
    """Backward, with the text fields' state."""
    for model_name, (coded_fields, _, unpacked) in TABLES.items():
        model = apps.get_model("reports", model_name)
        if schema_editor.connection.vendor == "postgresql":
            _rewrite(schema_editor, model, unpacked)
            continue
        for name, codes, max_length, choices, default in coded_fields:
            _, coded = _fields(name, codes, max_length, choices, default)
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
                    name="device",
                    field=console.compact.NarrowForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="setting_statuses",
                        to="devices.device",
                    ),
                ),
                migrations.AlterField(
                    model_name="devicesettingstatus",
                    name="policy",
                    field=console.compact.NarrowForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="setting_statuses",
                        to="policies.policy",
                    ),
                ),
                migrations.AlterField(
                    model_name="devicesettingstatus",
                    name="status",
                    field=console.compact.CodedChoiceField(choices=STATUS_CHOICES, codes=STATUS_CODES),
                ),
                migrations.AlterField(
                    model_name="devicepolicystatus",
                    name="status",
                    field=console.compact.CodedChoiceField(choices=STATUS_CHOICES, codes=STATUS_CODES),
                ),
                migrations.AlterField(
                    model_name="devicepolicystatus",
                    name="channel",
                    field=console.compact.CodedChoiceField(
                        choices=CHANNEL_CHOICES, codes=CHANNEL_CODES, default="mde"
                    ),
                ),
                migrations.AlterField(
                    model_name="deviceeffectivesetting",
                    name="intent",
                    field=console.compact.CodedChoiceField(
                        choices=INTENT_CHOICES, codes=INTENT_CODES, default="none"
                    ),
                ),
            ],
        ),
        migrations.RunPython(pack, migrations.RunPython.noop, elidable=False),
    ]
