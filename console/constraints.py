"""A unique constraint that stores 4 bytes an entry on PostgreSQL instead of the whole key.

The status tables are the biggest in the database (a million devices × ~35 setting rows). Their uniqueness over
(device, policy, setting key) was a b-tree of the full key: ~145 bytes an entry, 5 KB per device, more than a
third of the table. No query needs that b-tree's order beyond its first column (a device's rows), and a unique
b-tree cannot deduplicate. So on PostgreSQL the constraint is an exclusion constraint over a hash index of the
key (``EXCLUDE USING hash (ARRAY[…] WITH =)``: a hash index keeps a 4-byte hash code an entry and rechecks
equality on the row), and a device's rows are found through a plain b-tree on the device column, which
PostgreSQL deduplicates to one posting list a device. A duplicate still fails the same way (SQLSTATE class 23,
Django's ``IntegrityError``). Other databases get the ordinary unique index.

Measured on the 1,000,000-device bench database (4,056,580 setting status rows inserted in two statements into
fresh copies of the table): unique b-tree 17.0 s and 1,852 MB; this constraint and the device b-tree 26.3 s and
1,350 MB (the hash index 153 MB against the b-tree's 694); no uniqueness at all 14.3 s and 1,197 MB. The check
costs ~2.5 µs a row, ~0.1 ms a first check-in of ~47 rows. Dropping uniqueness, as the foreign keys of these
tables were dropped, would be faster still, but a duplicate row would then double-count a report without any
error; the check is kept.

An exclusion constraint cannot be the arbiter of ``INSERT … ON CONFLICT … DO UPDATE``: use this only where rows
are written by delete + insert (``reports.ingest``), never upserted.

Since reports 0012 neither status table uses it: once the setting key was stored as an 8-byte key
(console.interned), a b-tree of the three key columns as the primary key took less than this constraint, the
device b-tree and the surrogate id's b-tree together. The class stays for the migrations that made and removed it.
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
