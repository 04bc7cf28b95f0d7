"""A unique constraint that stores 4 bytes an entry on PostgreSQL instead of the whole key.

The status tables are the biggest in the database (a million devices × ~35 setting rows). Their uniqueness over
(device, policy, setting key) was a b-tree of the full key: ~145 bytes an entry, 5 KB per device, more than a
third of the table. No query needs that b-tree's order beyond its first column (a device's rows), and a unique
b-tree cannot deduplicate. So on PostgreSQL the constraint is an exclusion constraint over a hash index of the
key (``EXCLUDE USING hash (ARRAY[…] WITH =)``: a hash index keeps a 4-byte hash code an entry and rechecks
equality on the row), and a device's rows are found through a plain b-tree on the device column, which
PostgreSQL deduplicates to one posting list a device. A duplicate still fails the same way (SQLSTATE class 23,
Django's ``IntegrityError``). Other databases get the ordinary unique index.

An exclusion constraint cannot be the arbiter of ``INSERT … ON CONFLICT … DO UPDATE``: use this only where rows
are written by delete + insert (``reports.ingest``), never upserted.
"""

from __future__ import annotations

from django.db import models


class HashUniqueConstraint(models.UniqueConstraint):
    """``UniqueConstraint(fields=…)`` enforced on PostgreSQL by ``EXCLUDE USING hash`` (see the module)."""

    def __init__(self, *, fields, name, violation_error_message=None, violation_error_code=None):
        super().__init__(
            fields=fields,
            name=name,
            violation_error_message=violation_error_message,
            violation_error_code=violation_error_code,
        )

    @staticmethod
    def _hashed(schema_editor) -> bool:
        return schema_editor.connection.vendor == "postgresql"

    def _exclude_sql(self, model, schema_editor) -> str:
        qn = schema_editor.quote_name
        # An array keeps the parts apart (no separator can be confused with a value); all NOT NULL columns.
        columns = [f"{qn(model._meta.get_field(name).column)}::text" for name in self.fields]
        return f"CONSTRAINT {qn(self.name)} EXCLUDE USING hash ((ARRAY[{', '.join(columns)}]) WITH =)"

    def constraint_sql(self, model, schema_editor):
        if not self._hashed(schema_editor):
            return super().constraint_sql(model, schema_editor)
        return self._exclude_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        if not self._hashed(schema_editor):
            return super().create_sql(model, schema_editor)
        table = schema_editor.quote_name(model._meta.db_table)
        return f"ALTER TABLE {table} ADD {self._exclude_sql(model, schema_editor)}"

    def remove_sql(self, model, schema_editor):
        if not self._hashed(schema_editor):
            return super().remove_sql(model, schema_editor)
        qn = schema_editor.quote_name
        return f"ALTER TABLE {qn(model._meta.db_table)} DROP CONSTRAINT {qn(self.name)}"
