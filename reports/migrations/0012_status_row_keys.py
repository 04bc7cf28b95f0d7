"""A setting status row is identified by (device, policy, setting key), an effective setting row by (device, setting
key, entry): those are now their primary keys. The surrogate ``id`` goes, with its b-tree, the hash-unique
constraint on the same columns and the device b-tree.

One b-tree keeps the rows unique and finds a device's rows (its first column). Measured on a 100,000-device bench
database: setting status rows (2.9 M) with their indexes 494 MB -> 372 MB (heap 287 -> 242 MB: 8 bytes of id a row;
indexes 207 -> 130 MB); effective setting rows (1.0 M) 199 MB -> 162 MB.

The table is copied, not altered: dropping a column leaves its bytes in every row until the table is rewritten, and
SQLite cannot change a primary key in place. The rows go into the new table in key order (the b-tree fills its
pages), and the secondary index is built after they are in. Backwards, the rows get new ids.
"""

from django.db import migrations, models

TABLE = "reports_devicesettingstatus"


class RebuildTable(migrations.operations.base.Operation):
    """Change a model's state with ``state_operations`` and rebuild its table in the new shape: the rows are copied
    from the old table (the columns both have) in ``order_by`` order. Backwards, the same the other way."""

    reversible = True

    def __init__(self, model_name, state_operations, order_by):
        self.model_name = model_name
        self.state_operations = state_operations
        self.order_by = order_by

    def state_forwards(self, app_label, state):
        for operation in self.state_operations:
            operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        old = from_state.apps.get_model(app_label, self.model_name)
        self._copy(schema_editor, old, to_state.apps.get_model(app_label, self.model_name))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        old = from_state.apps.get_model(app_label, self.model_name)
        self._copy(schema_editor, old, to_state.apps.get_model(app_label, self.model_name))

    def describe(self):
        return f"Rebuild the table of {self.model_name} in its new shape"

    def _copy(self, schema_editor, old, new):
        qn = schema_editor.quote_name
        table = old._meta.db_table
        moved = f"{table}__old"
        if (
            schema_editor.connection.vendor == "postgresql"
        ):  # names are database-wide: the new table's key takes it
            schema_editor.execute(f"ALTER TABLE {qn(table)} DROP CONSTRAINT {qn(table + '_pkey')}")
        schema_editor.alter_db_table(old, table, moved)
        schema_editor.create_model(
            new
        )  # its indexes are deferred to the migration's end: built once the rows are in
        old_columns = {f.column for f in old._meta.concrete_fields}
        columns = ", ".join(qn(f.column) for f in new._meta.concrete_fields if f.column in old_columns)
        order = ", ".join(qn(c) for c in self.order_by)
        schema_editor.execute(
            f"INSERT INTO {qn(table)} ({columns}) SELECT {columns} FROM {qn(moved)} ORDER BY {order}"
        )
        # With its indexes, before the new table's deferred indexes take their names.
        schema_editor.execute(f"DROP TABLE {qn(moved)}")


def keyed_by(model_name, fields, *, constraint, index):
    """``model_name`` loses its id, hash-unique ``constraint`` and device ``index``: ``fields`` become its key."""
    return RebuildTable(
        model_name,
        state_operations=[
            migrations.RemoveConstraint(model_name=model_name, name=constraint),
            migrations.RemoveIndex(model_name=model_name, name=index),
            migrations.RemoveField(model_name=model_name, name="id"),
            migrations.AddField(
                model_name=model_name,
                name="pk",
                field=models.CompositePrimaryKey(
                    *fields, blank=True, editable=False, primary_key=True, serialize=False
                ),
            ),
        ],
        order_by=tuple(f"{name}_id" if name in ("device", "policy") else name for name in fields),
    )


class Migration(migrations.Migration):
    dependencies = [("reports", "0011_stored_text_moves_to_console")]

    operations = [
        keyed_by(
            "devicesettingstatus",
            ("device", "policy", "setting_key"),
            constraint="unique_device_policy_setting_status",
            index="dss_device_idx",
        ),
        keyed_by(
            "deviceeffectivesetting",
            ("device", "setting_key", "entry"),
            constraint="unique_device_effective_entry",
            index="des_device_idx",
        ),
    ]
