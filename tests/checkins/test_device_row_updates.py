"""A check-in's writes to the device row stay on its page: the devices table keeps half of each page free
(migration devices 0012), so claiming a lease is a HOT update that touches none of the table's indexes."""

from __future__ import annotations

import pytest
from django.db import connection

from devices import checkins
from devices.models import Device
from tests.checkins import fleet as f

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _updates() -> tuple[int, int]:
    """(updates, HOT updates) of the devices table in this transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relid = %s::regclass",
            [Device._meta.db_table],
        )
        return cursor.fetchone()


def test_claiming_a_lease_rewrites_each_device_row_in_place():
    if connection.vendor != "postgresql":
        pytest.skip("fillfactor and HOT updates are PostgreSQL's")
    message = "Managed by MDE: managementType MicrosoftSense, label MDEManaged. " * 3  # a row of real size
    devices = [f.device(f"PC-{i:03}", enrollment_message=message) for i in range(120)]
    before = _updates()

    ids, _ = checkins.claim_due(len(devices))

    updates, hot = (after - b for after, b in zip(_updates(), before, strict=True))
    assert len(ids) == len(devices) == updates
    assert hot == updates, f"{updates - hot} of {updates} lease updates wrote new index entries"
