"""Storage: every index earns its place. An index whose columns lead another index on the same table answers no
query the longer one cannot, and costs its bytes on every row (issue 17: GroupMember carried two of them)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db


def indexes() -> dict[str, list[tuple[str, tuple[str, ...], bool]]]:
    """table -> [(index name, its key columns in order, is it partial, on expressions or for LIKE)]."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname,
                   ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n),
                   x.indpred IS NOT NULL OR x.indexprs IS NOT NULL OR 0 = ANY (x.indkey::int2[])
                   OR EXISTS (SELECT 1 FROM unnest(x.indclass) AS c(oid) JOIN pg_opclass o ON o.oid = c.oid
                              WHERE o.opcname LIKE '%%pattern_ops')
            FROM pg_index x
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = current_schema() AND t.relkind = 'r'
            """
        )
        found: dict[str, list] = {}
        for table, index, columns, special in cursor.fetchall():
            found.setdefault(table, []).append((index, tuple(columns), special))
    return found


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's catalog")
def test_no_index_is_the_leading_part_of_another_on_the_same_table():
    """Our own tables; Django's many-to-many join tables and other packages' tables are theirs to keep."""
    ours = {
        model._meta.db_table
        for label in ("console", "devices", "policies", "reports")
        for model in apps.get_app_config(label).get_models()
    }
    redundant = []
    for table, found in indexes().items():
        if table not in ours:
            continue
        for name, columns, special in found:
            if special:
                continue
            for other, other_columns, other_special in found:
                if other == name or other_special or len(other_columns) <= len(columns):
                    continue
                if other_columns[: len(columns)] == columns:
                    redundant.append(f"{table}.{name} {columns} leads {other} {other_columns}")
    assert not redundant, "Redundant indexes (db_index=False on the foreign key?):\n" + "\n".join(redundant)
