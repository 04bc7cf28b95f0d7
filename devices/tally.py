"""Exact fleet counts without reading the fleet: devices per (managed by, OS, MDE enrollment status).

The Endpoint security overview shows devices managed by MDE per OS and devices per enrollment status. At a million
devices the GROUP BY behind them reads a million index entries (about 160 ms), so on PostgreSQL the counts are kept
as they change, by triggers on ``devices_device`` (migration devices 0010):

- every INSERT and DELETE statement adds to ``DeviceCountDelta`` one row per (managed_by, os, enrollment_status)
  whose count it moved, with the signed change (statement triggers over the statement's transition tables: a bulk
  insert of 1,000 devices adds a handful of rows, not 1,000); an UPDATE that moves a device from one key to
  another adds -1 and +1 (a row trigger whose WHEN clause leaves every other update, a check-in's, untouched);
- the table is insert-only, so check-ins that commit side by side never wait on (or deadlock over) a shared
  counter row, which an ``UPDATE … SET n = n + 1`` counter would make them do;
- a count is the sum of its rows; :func:`compact` (beat, every minute) folds the rows into one per key, in one
  statement, so the sum reads a few dozen rows. A concurrent compaction or check-in never double-counts: the
  DELETE … RETURNING removes exactly the rows it re-inserts as sums.

Every path that writes devices is covered because the database does it: the ORM, ``QuerySet.update``, COPY,
cascades, raw SQL. TRUNCATE empties the counts too. Other databases (SQLite: the embedded stack, small fleets)
count with the GROUP BY, as a scoped viewer's overview always does.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.db.models import Count, Sum

from .models import Device, DeviceCountDelta

log = logging.getLogger(__name__)

KEY = ("managed_by", "os", "enrollment_status")

_DELTA = "devices_devicecountdelta"
_DEVICE = "devices_device"
_COLS = "managed_by, os, enrollment_status"

# Start (or repair) from the rows: the table then holds one row per key. Run under a lock that keeps devices
# from changing meanwhile (the migration's transaction, or rebuild()).
REBUILD_SQL = [
    f"DELETE FROM {_DELTA}",
    f"INSERT INTO {_DELTA} ({_COLS}, delta) SELECT {_COLS}, count(*) FROM {_DEVICE} GROUP BY {_COLS}",
]

COMPACT_SQL = f"""
    WITH folded AS (DELETE FROM {_DELTA} RETURNING {_COLS}, delta)
    INSERT INTO {_DELTA} ({_COLS}, delta)
    SELECT {_COLS}, sum(delta) FROM folded GROUP BY {_COLS} HAVING sum(delta) <> 0
"""


def kept() -> bool:
    """Whether the database keeps the counts (PostgreSQL)."""
    return connection.vendor == "postgresql"


def fleet_counts() -> dict[tuple[str, str, str], int]:
    """{(managed_by, os, enrollment_status): devices} over the whole fleet, keys with no device left out."""
    if not kept():
        return counted()
    rows = DeviceCountDelta.objects.values_list(*KEY).annotate(n=Sum("delta")).order_by()
    return {(managed_by, os, status): n for managed_by, os, status, n in rows if n}


def counted() -> dict[tuple[str, str, str], int]:
    """The same counts read from the devices themselves (checks and repair)."""
    rows = Device.objects.values_list(*KEY).annotate(n=Count("*")).order_by()
    return {(managed_by, os, status): n for managed_by, os, status, n in rows}


def compact() -> tuple[int, int]:
    """Fold the delta rows into one per key: (rows before, rows after). No-op on other databases."""
    if not kept():
        return 0, 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {_DELTA}")
        before = cursor.fetchone()[0]
        cursor.execute(COMPACT_SQL)
        cursor.execute(f"SELECT count(*) FROM {_DELTA}")
        after = cursor.fetchone()[0]
    return before, after


def rebuild() -> None:
    """Repair: recount from the devices (holding off writers of devices meanwhile)."""
    if not kept():
        return
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {_DEVICE} IN SHARE MODE")
        for statement in REBUILD_SQL:
            cursor.execute(statement)
