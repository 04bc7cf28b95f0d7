"""Status rows are identified by their key: (device, policy, setting key) and (device, setting key, entry) are
Django's primary keys (reports 0012) and no surrogate id is stored. On PostgreSQL no b-tree of the key is kept
(reports 0015): a device's rows are found through a deduplicated b-tree ((device, policy) for the setting rows,
(device) for the effective rows), and they stay one per key because their writers hold the device's row lock."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from console.interned import store_texts, text_key
from devices.checkins import claim_devices, run_checkins
from devices.models import Device
from reports.ingest import SETTING_COLUMNS, duplicate_keys, insert_rows, recount, stored_counts
from reports.models import STATUS_CODES, DeviceEffectiveSetting, DeviceSettingStatus
from reports.pending import initialise_device
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

BEFORE = [("reports", "0011_stored_text_moves_to_console")]


def _setting_row(device, policy, key):
    """A SETTING_COLUMNS tuple as reports.ingest writes it: the setting key and the value as their keys."""
    store_texts([key, "1"])
    return (device.pk, policy.pk, text_key(key), text_key("1"), STATUS_CODES["succeeded"], None, None, "[]")


needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's layout")


@needs_postgres
def test_on_postgresql_a_devices_rows_are_found_through_a_plain_btree_and_no_btree_of_the_key():
    def layout(table):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", [table]
            )
            columns = {name for (name,) in cursor.fetchall()}
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
            return columns, dict(cursor.fetchall())

    for table, index, columns in [
        ("reports_devicesettingstatus", "dss_device_policy_idx", "device_id, policy_id"),
        ("reports_deviceeffectivesetting", "des_device_idx", "device_id"),
    ]:
        stored, found = layout(table)
        assert "id" not in stored  # no surrogate id (reports 0012)
        assert f"{table}_pkey" not in found
        assert found[index] == f"CREATE INDEX {index} ON public.{table} USING btree ({columns})"
        assert [name for name, sql in found.items() if "(device_id" in sql] == [index]
        assert not [name for name, sql in found.items() if "UNIQUE" in sql]


@needs_postgres
def test_a_second_row_for_a_key_is_reported_by_duplicate_keys():
    """No b-tree refuses it on PostgreSQL (the writers' lock does, below); the check finds one a bug let in."""
    device, other = f.device("PC-1"), f.device("PC-2")
    policy = f.policy("A", {f.PUA: 1})
    other_policy = f.policy("B", {f.PUA: 1})
    insert_rows(DeviceSettingStatus, SETTING_COLUMNS, [_setting_row(device, policy, f.PUA)])
    # Any part that differs makes another row, not a duplicate.
    insert_rows(
        DeviceSettingStatus,
        SETTING_COLUMNS,
        [
            _setting_row(device, policy, f.IPS),
            _setting_row(device, other_policy, f.PUA),
            _setting_row(other, policy, f.PUA),
        ],
    )
    assert DeviceSettingStatus.objects.count() == 4
    row = DeviceSettingStatus.objects.get(pk=(device.pk, policy.pk, f.IPS))
    assert (row.device_id, row.policy_id, row.setting_key) == (device.pk, policy.pk, f.IPS)
    assert duplicate_keys() == {"devicesettingstatus": [], "deviceeffectivesetting": []}

    now = timezone.now()
    entry = {"device": device, "setting_key": f.EXCLUDED_PATHS, "configured_by": "intune", "changed_at": now}
    DeviceEffectiveSetting.objects.bulk_create(
        [DeviceEffectiveSetting(entry=name, **entry) for name in ("C:\\a", "", "C:\\b")]
    )
    assert DeviceEffectiveSetting.objects.count() == 3
    assert duplicate_keys() == {"devicesettingstatus": [], "deviceeffectivesetting": []}

    insert_rows(DeviceSettingStatus, SETTING_COLUMNS, [_setting_row(device, policy, f.PUA)])
    DeviceEffectiveSetting.objects.bulk_create([DeviceEffectiveSetting(entry="C:\\a", **entry)])
    assert duplicate_keys() == {
        "devicesettingstatus": [(device.pk, policy.pk, f.PUA, 2)],
        "deviceeffectivesetting": [(device.pk, f.EXCLUDED_PATHS, "C:\\a", 2)],
    }


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_device_at_once_leave_one_row_per_key():
    """A device's first check-in and its initialisation as a newly managed device, both waiting on the device's
    row lock at the same time: whichever writes second reads the first's rows after the lock and adds none twice."""
    group = f.group("All")
    device = f.device("PC-1", groups=[group])
    f.policy("Baseline", {f.PUA: 1, f.REALTIME: 1}, include=[group])
    f.policy("Cloud", {f.CLOUD: 1}, include=[group])
    ids, lease = claim_devices([device.pk])
    errors: list[BaseException] = []

    def run(job):
        try:
            job()
        except BaseException as exc:  # asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    jobs = [
        lambda: run_checkins(ids, kind="scheduled", lease=lease, fault_rate=0.0),
        lambda: initialise_device(device.pk),
    ]
    with transaction.atomic():
        list(Device.objects.select_for_update().filter(pk=device.pk))  # both will queue behind this lock
        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while _waiting_for_a_lock() < 2:
            assert time.monotonic() < deadline, "the writers did not both reach the device's lock"
            time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)

    keys = list(DeviceSettingStatus.objects.values_list("device_id", "policy_id", "setting_key"))
    assert len(keys) == len(set(keys)) == 3
    assert duplicate_keys() == {"devicesettingstatus": [], "deviceeffectivesetting": []}
    assert recount() == stored_counts()


def _waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:  # the statistics are read once a transaction unless cleared
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


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
