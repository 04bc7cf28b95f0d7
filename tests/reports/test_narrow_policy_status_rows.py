"""Policy status rows keep their device and policy in 4 bytes and their setting counts in 2 (migration reports
0017; issue 17: storage ≤ 8 KB a device), and the "devices of a policy" b-trees end with the device, which is
unique within a policy, instead of the row's 8-byte id."""

from __future__ import annotations

import pytest
from django.db import connection

from reports.ingest import recount, stored_counts
from reports.models import DevicePolicyStatus
from tests.checkins import fleet as f
from tests.helpers import migrate_to

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row layout")


def _raw(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


@needs_postgres
@pytest.mark.django_db
def test_a_policy_status_row_is_88_bytes_and_its_b_trees_end_with_the_device():
    g = f.group("G")
    device = f.device("PC-0001", groups=[g])
    f.policy("A", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    f.checkin(device)
    types = dict(
        _raw(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'reports_devicepolicystatus'::regclass AND attnum > 0 AND NOT attisdropped"
        )
    )
    assert types["device_id"] == types["policy_id"] == "integer"
    counts = ("succeeded_count", "error_count", "conflict_count", "not_applicable_count", "pending_count")
    assert {types[c] for c in counts} == {"smallint"}
    row = DevicePolicyStatus.objects.get(device=device)
    assert row.setting_total == 2 and row.succeeded_count + row.error_count == 2
    ((size,),) = _raw("SELECT pg_column_size(t.*) FROM reports_devicepolicystatus t")
    assert (
        size == 24 + 24 + 8 + 14 + 8
    )  # header, id/message/time, the ids, counts and codes, "PC-0001": 78 -> 80
    definitions = dict(
        _raw("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'reports_devicepolicystatus'")
    )
    assert definitions["dps_policy_name_idx"].endswith("(policy_id, device_name, device_id)")
    assert definitions["dps_policy_status_name_idx"].endswith("(policy_id, status, device_name, device_id)")
    assert definitions["dps_policy_reported_idx"].endswith("(policy_id, last_reported_at)")
    assert recount() == stored_counts()


BEFORE = [("reports", "0016_status_rows_packed")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_narrows_the_rows_and_widens_them_back():
    device, policy = f.device("PC-1"), f.policy("A", {f.PUA: 1})
    executor = migrate_to(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("reports", "DevicePolicyStatus")
    counts = {"succeeded_count": 300, "error_count": 2, "conflict_count": 1, "not_applicable_count": 0,
              "pending_count": 7}  # fmt: skip
    before = old.objects.create(
        device_id=device.pk, policy_id=policy.pk, status="error", device_name="PC-1", **counts
    )

    migrate_to()
    row = DevicePolicyStatus.objects.get()
    assert (row.pk, row.device_id, row.policy_id, row.status) == (before.pk, device.pk, policy.pk, "error")
    assert {name: getattr(row, name) for name in counts} == counts
    assert DevicePolicyStatus.objects.filter(policy=policy).order_by("device_name", "device_id").get() == row

    migrate_to(BEFORE)
    back = old.objects.get()
    assert (back.pk, back.device_id, back.status) == (before.pk, device.pk, "error")
    assert {name: getattr(back, name) for name in counts} == counts
    migrate_to()
