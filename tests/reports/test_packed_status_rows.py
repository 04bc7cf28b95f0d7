"""Status rows store their statuses as 2-byte codes and, on PostgreSQL, their columns in size order (migration
reports 0016, console.compact; issue 17: storage per device). Python still reads, filters, sorts and writes the
texts."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count
from django.utils import timezone

from console.compact import CodedChoiceField
from reports.ingest import ReportedSetting, ingest, recount, stored_counts
from reports.models import (
    CHANNEL_CODES,
    INTENT_CODES,
    STATUS_CODES,
    DeviceEffectiveSetting,
    DevicePolicyStatus,
    DeviceSettingStatus,
)
from tests.checkins import fleet as f
from tests.reports.test_status_messages import _plan

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row layout")


def _column(table: str, column: str, where: str = "", params=()):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} {where}", list(params))
        return [row[0] for row in cursor.fetchall()]


def _world():
    g = f.group("G")
    device = f.device("PC-1", groups=[g])
    f.policy("A", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    reports = {
        f.PUA: ReportedSetting("succeeded", 1, None, "Applied"),
        f.REALTIME: ReportedSetting("error", 0, 0x87D1FDE8 - 2**32, "Remediation failed"),
    }
    ingest([_plan(device, reports)], timezone.now())
    return device


@pytest.mark.django_db
def test_a_check_in_stores_status_codes_and_python_reads_the_texts():
    device = _world()
    rows = DeviceSettingStatus.objects.filter(device=device)
    assert dict(rows.values_list("setting_key", "status")) == {f.PUA: "succeeded", f.REALTIME: "error"}
    assert sorted(_column("reports_devicesettingstatus", "status")) == sorted(
        [STATUS_CODES["succeeded"], STATUS_CODES["error"]]
    )
    policy_row = DevicePolicyStatus.objects.get(device=device)
    assert (policy_row.status, policy_row.channel) == ("error", "mde")
    assert policy_row.get_status_display() == "Error"
    assert _column("reports_devicepolicystatus", "status") == [STATUS_CODES["error"]]
    assert _column("reports_devicepolicystatus", "channel") == [CHANNEL_CODES["mde"]]
    assert recount() == stored_counts()


@pytest.mark.django_db
def test_filters_sorting_grouping_and_updates_go_by_the_text():
    device = _world()
    rows = DeviceSettingStatus.objects.filter(device=device)
    assert rows.filter(status="error").get().setting_key == f.REALTIME
    assert rows.filter(status__in=["succeeded", "pending"]).get().setting_key == f.PUA
    assert rows.exclude(status="error").count() == 1
    # the codes follow the texts' order, so sorting and comparing by the column is sorting by the text
    assert list(rows.order_by("status").values_list("status", flat=True)) == ["error", "succeeded"]
    assert list(rows.order_by("-status").values_list("status", flat=True)) == ["succeeded", "error"]
    assert rows.filter(status__gt="pending").get().status == "succeeded"
    grouped = {r["status"]: r["n"] for r in rows.values("status").annotate(n=Count("*"))}
    assert grouped == {"error": 1, "succeeded": 1}
    assert rows.filter(status="error").update(status="pending") == 1
    assert sorted(rows.values_list("status", flat=True)) == ["pending", "succeeded"]


@pytest.mark.django_db
def test_a_status_that_has_no_code_is_refused_with_its_name():
    _world()
    with pytest.raises(ValidationError, match="'bogus' is not one of"):
        list(DeviceSettingStatus.objects.filter(status="bogus"))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE reports_devicesettingstatus SET status = 42")
    with pytest.raises(ValueError, match="DeviceSettingStatus.status: no choice has the stored code 42"):
        list(DeviceSettingStatus.objects.values_list("status", flat=True))


def test_codes_must_be_distinct_follow_the_texts_order_and_cover_the_choices():
    choices = [("a", "A"), ("b", "B")]
    assert CodedChoiceField(choices=choices, codes={"a": 1, "b": 2}).codes == {"a": 1, "b": 2}
    for codes in ({"a": 2, "b": 1}, {"a": 1, "b": 1}, {"a": 1}, {}):
        with pytest.raises(ValueError, match="code"):
            CodedChoiceField(choices=choices, codes=codes)


@needs_postgres
@pytest.mark.django_db
def test_on_postgresql_the_columns_are_stored_in_size_order():
    def layout(table):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                [table],
            )
            return cursor.fetchall()

    assert layout("reports_devicesettingstatus") == [
        ("device_id", "integer"),
        ("policy_id", "integer"),
        ("setting_key", "bigint"),
        ("value", "bigint"),
        ("message_key", "bigint"),
        ("error_code", "integer"),
        ("status", "smallint"),
        ("conflict_policy_ids", "jsonb"),
    ]
    assert [c for c, _ in layout("reports_deviceeffectivesetting")] == [
        "device_id",
        "setting_key",
        "value",
        "intended_value",
        "changed_at",
        "intent",
        "entry",
        "configured_by",
        "other_attempts",
    ]
    policy = layout("reports_devicepolicystatus")
    assert [c for c, _ in policy][:5] == ["id", "message", "last_reported_at", "device_id", "policy_id"]
    assert dict(policy)["status"] == dict(policy)["channel"] == "smallint"

    device = _world()
    sizes = _column(
        "reports_devicesettingstatus t",
        "pg_column_size(t.*)",
        "WHERE device_id = %s ORDER BY status",
        [device.pk],
    )
    assert sizes == [67, 63]  # with an error code, without: 72- and 64-byte rows once aligned
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef('des_overridden_idx'::regclass)")
        assert f"intent = {INTENT_CODES['differs']}" in cursor.fetchone()[0]


BEFORE = [("reports", "0015_status_rows_found_by_device")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_packs_the_rows_and_unpacks_them_back():
    device, policy = f.device("PC-1"), f.policy("A", {f.PUA: 1})  # other apps' tables are not migrated
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    old_setting = old_apps.get_model("reports", "DeviceSettingStatus")
    for index, status in enumerate(STATUS_CODES):
        old_setting.objects.create(
            device_id=device.pk, policy_id=policy.pk, setting_key=f"key_{index}", status=status, value=index
        )
    old_apps.get_model("reports", "DeviceEffectiveSetting").objects.create(
        device_id=device.pk,
        setting_key="key_0",
        value=5,
        configured_by="gpo",
        intent="differs",
        changed_at=timezone.now(),
    )
    old_policy = old_apps.get_model("reports", "DevicePolicyStatus").objects.create(
        device_id=device.pk, policy_id=policy.pk, status="conflict", channel="intune", device_name="PC-1"
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    settings = DeviceSettingStatus.objects.all()
    assert sorted((r.setting_key, r.status, r.value) for r in settings) == [
        (f"key_{i}", status, i) for i, status in enumerate(STATUS_CODES)
    ]
    assert sorted(_column("reports_devicesettingstatus", "status")) == sorted(STATUS_CODES.values())
    effective = DeviceEffectiveSetting.objects.get()
    assert (effective.intent, effective.configured_by, effective.value) == ("differs", "gpo", 5)
    row = DevicePolicyStatus.objects.get()
    assert (row.pk, row.status, row.channel, row.device_name) == (old_policy.pk, "conflict", "intune", "PC-1")
    # the identity goes on after the rows it carried over
    DevicePolicyStatus.objects.filter(pk=row.pk).delete()
    again = DevicePolicyStatus.objects.create(device_id=device.pk, policy_id=policy.pk, status="pending")
    assert again.pk > old_policy.pk

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(BEFORE)
    back = executor.loader.project_state(BEFORE).apps
    assert sorted(
        (r.setting_key, r.status) for r in back.get_model("reports", "DeviceSettingStatus").objects.all()
    ) == [(f"key_{i}", status) for i, status in enumerate(STATUS_CODES)]
    assert back.get_model("reports", "DeviceEffectiveSetting").objects.get().intent == "differs"
    assert back.get_model("reports", "DevicePolicyStatus").objects.get().status == "pending"

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
