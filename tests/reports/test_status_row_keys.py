"""Status rows are identified by their key: (device, policy, setting key) and (device, setting key, entry) are the
primary keys (reports 0012), so a second row for the same key is refused and no surrogate id is stored."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from console.interned import store_texts, text_key
from reports.ingest import SETTING_COLUMNS, insert_rows
from reports.models import DeviceEffectiveSetting, DeviceSettingStatus
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

BEFORE = [("reports", "0011_stored_text_moves_to_console")]


def _setting_row(device, policy, key):
    """A SETTING_COLUMNS tuple as reports.ingest writes it: the setting key and the value as their keys."""
    store_texts([key, "1"])
    return (device.pk, policy.pk, text_key(key), text_key("1"), "succeeded", None, None, "[]")


def test_a_second_setting_row_for_the_same_device_policy_and_setting_is_refused():
    device = f.device("PC-1")
    policy = f.policy("A", {f.PUA: 1})
    insert_rows(DeviceSettingStatus, SETTING_COLUMNS, [_setting_row(device, policy, f.PUA)])

    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(DeviceSettingStatus, SETTING_COLUMNS, [_setting_row(device, policy, f.PUA)])
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceSettingStatus.objects.create(device=device, policy=policy, setting_key=f.PUA, status="error")

    # Any part that differs makes another row.
    other_device = f.device("PC-2")
    other_policy = f.policy("B", {f.PUA: 1})
    insert_rows(
        DeviceSettingStatus,
        SETTING_COLUMNS,
        [
            _setting_row(device, policy, f.IPS),
            _setting_row(device, other_policy, f.PUA),
            _setting_row(other_device, policy, f.PUA),
        ],
    )
    assert DeviceSettingStatus.objects.count() == 4
    row = DeviceSettingStatus.objects.get(pk=(device.pk, policy.pk, f.IPS))
    assert (row.device_id, row.policy_id, row.setting_key) == (device.pk, policy.pk, f.IPS)


def test_a_second_effective_entry_for_the_same_device_setting_and_entry_is_refused():
    device = f.device("PC-1")
    now = timezone.now()

    def entry(name):
        return DeviceEffectiveSetting(
            device=device, setting_key=f.EXCLUDED_PATHS, entry=name, configured_by="intune", changed_at=now
        )

    DeviceEffectiveSetting.objects.bulk_create([entry("C:\\a"), entry("")])
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceEffectiveSetting.objects.bulk_create([entry("C:\\a")])
    DeviceEffectiveSetting.objects.bulk_create([entry("C:\\b")])
    assert DeviceEffectiveSetting.objects.count() == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's catalog")
def test_on_postgresql_the_key_is_the_only_btree_that_starts_with_the_device():
    def layout(table):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", [table]
            )
            columns = {name for (name,) in cursor.fetchall()}
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
            indexes = dict(cursor.fetchall())
        return columns, indexes

    for table, key in [
        ("reports_devicesettingstatus", "device_id, policy_id, setting_key"),
        ("reports_deviceeffectivesetting", "device_id, setting_key, entry"),
    ]:
        columns, indexes = layout(table)
        assert "id" not in columns
        assert indexes[f"{table}_pkey"].endswith(f"USING btree ({key})")
        assert [name for name, sql in indexes.items() if "(device_id" in sql] == [f"{table}_pkey"]


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target or executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_row_both_ways():
    _migrate(BEFORE)
    try:
        old_apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
        old_setting = old_apps.get_model("reports", "DeviceSettingStatus")
        old_effective = old_apps.get_model("reports", "DeviceEffectiveSetting")
        device, other = f.device("PC-1"), f.device("PC-2")
        policy = f.policy("A", {f.PUA: 1, f.IPS: 1})
        store_texts([f.PUA, f.IPS, "1", "2", "Conflicts with B"])
        now = timezone.now().replace(microsecond=0)
        settings = [
            (device.pk, policy.pk, f.PUA, "1", "succeeded", None, "[]"),
            (device.pk, policy.pk, f.IPS, "2", "conflict", None, "[7]"),
            (other.pk, policy.pk, f.PUA, None, "error", -2147024894, "[]"),
        ]
        for did, pid, key, value, status, code, conflicts in settings:
            old_setting.objects.create(
                device_id=did,
                policy_id=pid,
                setting_key=key,
                value=int(value) if value else None,
                status=status,
                error_code=code,
                message_ref_id=text_key("Conflicts with B") if status == "conflict" else None,
                conflict_policy_ids=[7] if conflicts == "[7]" else [],
            )
        for entry in ("", "C:\\a", "C:\\b"):
            old_effective.objects.create(
                device_id=device.pk,
                setting_key=f.EXCLUDED_PATHS,
                entry=entry,
                value=[entry],
                configured_by="intune",
                changed_at=now,
            )
        store_texts([f.EXCLUDED_PATHS])

        def current():
            rows = DeviceSettingStatus.objects.all()
            return (
                sorted(
                    (r.device_id, r.policy_id, r.setting_key, r.value, r.status, r.error_code, r.message)
                    for r in rows
                ),
                list(
                    DeviceEffectiveSetting.objects.order_by("entry").values_list(
                        "entry", "value", "changed_at"
                    )
                ),
            )

        _migrate(None)
        after = current()
        assert after == (
            sorted(
                [
                    (device.pk, policy.pk, f.PUA, 1, "succeeded", None, ""),
                    (device.pk, policy.pk, f.IPS, 2, "conflict", None, "Conflicts with B"),
                    (other.pk, policy.pk, f.PUA, None, "error", -2147024894, ""),
                ]
            ),
            [("", [""], now), ("C:\\a", ["C:\\a"], now), ("C:\\b", ["C:\\b"], now)],
        )
        assert DeviceSettingStatus.objects.get(pk=(device.pk, policy.pk, f.IPS)).conflict_policy_ids == [7]

        _migrate(BEFORE)
        assert old_setting.objects.count() == 3 and old_effective.objects.count() == 3
        assert sorted(old_setting.objects.values_list("id", flat=True)) == [1, 2, 3]  # new ids, one a row
        _migrate(None)
        assert current() == after
    finally:
        _migrate(None)


def test_rows_are_found_and_changed_by_their_keys():
    from reports.ingest import with_keys

    device, other = f.device("PC-1"), f.device("PC-2")
    policy = f.policy("A", {f.PUA: 1})
    rows = [_setting_row(d, policy, key) for d in (device, other) for key in (f.PUA, f.IPS)]
    insert_rows(DeviceSettingStatus, SETTING_COLUMNS, rows)
    wanted = [(device.pk, policy.pk, f.IPS), (other.pk, policy.pk, f.PUA), (other.pk, policy.pk + 1, f.PUA)]

    assert with_keys(DeviceSettingStatus.objects.all(), wanted).update(status="pending") == 2
    assert sorted(
        DeviceSettingStatus.objects.filter(status="pending").values_list("device_id", "setting_key")
    ) == sorted([(device.pk, f.IPS), (other.pk, f.PUA)])

    now = timezone.now()
    DeviceEffectiveSetting.objects.bulk_create(
        DeviceEffectiveSetting(
            device=device, setting_key=f.EXCLUDED_PATHS, entry=entry, configured_by="intune", changed_at=now
        )
        for entry in ("", "C:\\Données", "C:\\b")
    )
    gone = [(device.pk, f.EXCLUDED_PATHS, "C:\\Données"), (device.pk, f.EXCLUDED_PATHS, "")]
    assert with_keys(DeviceEffectiveSetting.objects.all(), gone).delete()[0] == 2
    assert list(DeviceEffectiveSetting.objects.values_list("entry", flat=True)) == ["C:\\b"]
