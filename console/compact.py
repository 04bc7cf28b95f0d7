"""Narrow columns for the tables with tens of millions of rows.

- :class:`CodedChoiceField`: a choice stored as a small integer code; Python sees the choice's text, the database
  two bytes.
- :class:`NarrowForeignKey`: a foreign key to a ``bigint`` primary key stored as a 4-byte ``integer``.

A setting status row holds its status ("succeeded", "not_applicable", …) once per device, policy and setting:
tens of millions of times. As ``varchar`` that is 10-15 bytes, and it sat between the row's 8-byte columns, so
PostgreSQL padded around it too. As a ``smallint`` code it is 2 bytes, and with the row's columns in size order
(migration reports 0016) a row is 72 bytes instead of 80-88.

- Python reads and writes the text: ``status="succeeded"``, ``status__in=[…]``, ``.values("status")``, an
  ``update(status=…)`` and a model's attribute are all the choice's text; only the column holds the code.
- The codes are fixed by the field's ``codes`` (never renumber: stored rows hold them) and follow the texts'
  sort order, so ``ORDER BY`` the column gives the texts' order, as the ``varchar`` did.
- Raw SQL and COPY write ``codes[text]`` themselves (:meth:`CodedChoiceField.code_of`).

The setting status rows' device and policy are ``NarrowForeignKey``: with 4-byte ids a row's fixed columns fit
40 bytes and the row is 64 bytes, not 72 (PostgreSQL pads each row to a multiple of 8). The ids they hold come
from ``bigint`` sequences, so the database refuses a row for an id above 2,147,483,647 ("integer out of
range"): a tenant would need that many devices or policies created over its lifetime, two hundred times the
10,000,000 devices the README sizes for; widening the column back is one ``ALTER COLUMN … TYPE bigint``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core import exceptions
from django.db import models


class CodedChoiceField(models.SmallIntegerField):
    """A ``TextChoices`` value stored as its code in ``codes`` ({text: code}). See the module."""

    description = "Choice stored as a small integer code"

    def __init__(self, *args, codes: Mapping[str, int] | None = None, **kwargs):
        if not codes:
            raise ValueError("CodedChoiceField needs codes: {choice text: small integer}")
        codes = {str(text): int(code) for text, code in codes.items()}  # TextChoices members as plain text
        order = sorted(codes)
        if [codes[text] for text in order] != sorted(codes.values()) or len(set(codes.values())) != len(
            codes
        ):
            raise ValueError("CodedChoiceField codes must be distinct and follow the texts' sort order")
        self.codes = dict(codes)
        self.texts = {code: text for text, code in self.codes.items()}
        super().__init__(*args, **kwargs)
        unknown = {str(value) for value, _ in self.flatchoices} - set(self.codes)
        if unknown:
            raise ValueError(f"CodedChoiceField has no code for the choices {sorted(unknown)}")

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["codes"] = dict(sorted(self.codes.items()))
        return name, path, args, kwargs

    def code_of(self, value: Any) -> int | None:
        """The code stored for ``value`` (a choice's text); None stays None."""
        if value is None:
            return None
        try:
            return self.codes[value]
        except (KeyError, TypeError):
            raise exceptions.ValidationError(
                f"{value!r} is not one of {sorted(self.codes)}", code="invalid_choice"
            ) from None

    @property
    def validators(self):
        return []  # the integer range validators would compare the text with numbers; choices are validated

    # Python -> database
    def get_prep_value(self, value):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return self.code_of(value)

    def to_python(self, value):
        if isinstance(value, int) and not isinstance(value, bool) and value in self.texts:
            return self.texts[value]
        return value

    # database -> Python
    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        try:
            return self.texts[value]
        except KeyError:
            raise ValueError(
                f"{self.model.__name__}.{self.name}: no choice has the stored code {value!r}"
            ) from None

    def get_lookup(self, lookup_name):
        if lookup_name in ("exact", "in", "isnull", "gt", "gte", "lt", "lte", "range"):
            return super().get_lookup(
                lookup_name
            )  # codes compare as their texts do (keyset paging by status)
        return None  # a text match (icontains, …) would mean nothing on a code

    def formfield(self, **kwargs):
        return models.CharField(choices=self.choices).formfield(**kwargs)


class NarrowForeignKey(models.ForeignKey):
    """A foreign key stored as ``integer`` whatever its target's primary key type (see the module).

    Only the column is narrow (``db_parameters``, which the schema editor creates and alters columns from): the
    field's type (``db_type``) stays its target's, because Django's PostgreSQL backend casts one side of a join
    whose fields' types differ, and ``devices_device.id::integer`` (or ``device_id::bigint`` the other way)
    hides that side's b-tree from the planner: every status row joined to its device read the whole devices
    table. PostgreSQL compares ``integer`` with ``bigint`` as they are, through either column's index.
    """

    description = "Foreign key stored as a 4-byte integer"

    def db_parameters(self, connection):
        """The column's (raw SQL that names its type, such as arrays of keys, reads it here)."""
        return {**super().db_parameters(connection), "type": models.IntegerField().db_type(connection)}


def retype_columns(schema_editor, table: str, types: Mapping[str, str]) -> None:
    """PostgreSQL, for migrations: give the columns their new types (``{column: SQL type}``) in one ALTER TABLE,
    so the table and its indexes are rewritten once, not once a column. A column keeps its place in the row. The
    table's foreign keys are dropped around it and added back as they were (PostgreSQL would otherwise check
    each one again for every column changed)."""
    qn = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            [table],
        )
        foreign_keys = cursor.fetchall()
    for name, _ in foreign_keys:
        schema_editor.execute(f"ALTER TABLE {qn(table)} DROP CONSTRAINT {qn(name)}")
    changes = ", ".join(f"ALTER COLUMN {qn(column)} TYPE {kind}" for column, kind in types.items())
    schema_editor.execute(f"ALTER TABLE {qn(table)} {changes}")
    for name, definition in foreign_keys:
        schema_editor.execute(f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(name)} {definition}")


__all__ = ["CodedChoiceField", "NarrowForeignKey", "retype_columns"]
