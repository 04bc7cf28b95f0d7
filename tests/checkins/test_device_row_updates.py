"""A check-in's writes to the device row stay on its page: the devices table keeps half of each page free
(migration devices 0012), so claiming a lease is a HOT update that touches none of the table's indexes."""

from __future__ import annotations

import pytest
from django.db import connection

from devices import checkins
from devices.models import Device
from tests.checkins import fleet as f
from tests.helpers import recorded_statements

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


def _statements(batch: int) -> list[tuple[str, list]]:
    """The statements (with their parameters) of a first check-in of ``batch`` devices in one group with one
    policy."""
    g = f.group(f"G{batch}")
    devices = [f.device(f"B{batch}-{i:03}", groups=[g]) for i in range(batch)]
    f.policy(f"AV {batch}", {f.PUA: 1}, include=[g])
    with recorded_statements() as seen:
        f.checkin(*devices)
    return seen


def _device_updates(batch: int) -> list[tuple[str, list]]:
    return [
        (sql, p) for sql, p in _statements(batch) if sql.startswith(f'UPDATE "{Device._meta.db_table}" AS d')
    ]


def test_a_batch_writes_its_device_rows_in_one_statement_whatever_its_size():
    """Per-device values go as one array a column: a VALUES list (six parameters a device) was converted by
    psycopg on the client for every batch, too long for its statement cache."""
    if connection.vendor != "postgresql":
        pytest.skip("the unnest statement is PostgreSQL's")
    small, large = _device_updates(3), _device_updates(40)

    assert len(small) == len(large) == 1
    assert small[0][0] == large[0][0]
    assert len(small[0][1]) == len(large[0][1]) == 9
    written = Device.objects.filter(display_name__startswith="B40-")
    assert written.count() == 40
    for device in written:
        assert device.desired_fingerprint and device.agent_state and device.effective_digest
        assert device.last_checkin_at and device.next_checkin_at > device.last_checkin_at
        assert device.checkin_lease_until is None


def test_a_batch_reads_its_devices_and_their_rows_with_the_ids_as_one_array():
    """The batch's lookups by device (its devices, their sources, their status and effective rows, the lease)
    take the ids as one array parameter (``__any``): psycopg parses statements of over 50 parameters again each
    time, and these ran once a batch with 500 ids each."""
    if connection.vendor != "postgresql":
        pytest.skip("other databases get IN lists")
    reads = [(sql, p) for sql, p in _statements(120) if sql.startswith("SELECT")]

    assert reads
    assert max(len(p) for _, p in reads) <= 50, max(reads, key=lambda r: len(r[1]))[0][:200]
