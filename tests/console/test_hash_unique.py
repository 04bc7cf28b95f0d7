"""Status rows stay unique per (device, policy, setting) and (device, setting, entry) with the hash-kept key."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from console.constraints import HashUniqueConstraint
from console.interned import store_texts, text_key
from reports.ingest import SETTING_COLUMNS, insert_rows
from reports.models import DeviceEffectiveSetting, DeviceSettingStatus
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


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
def test_on_postgresql_the_keys_are_kept_as_hash_codes_and_a_device_is_found_by_a_btree():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conname, c.contype, am.amname
            FROM pg_constraint c JOIN pg_class i ON i.oid = c.conindid JOIN pg_am am ON am.oid = i.relam
            WHERE c.conname IN ('unique_device_policy_setting_status', 'unique_device_effective_entry')
            """
        )
        kept = {name: (kind, method) for name, kind, method in cursor.fetchall()}
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN ('dss_device_idx', 'des_device_idx')"
        )
        device_indexes = dict(cursor.fetchall())
    assert kept == {
        "unique_device_policy_setting_status": ("x", "hash"),
        "unique_device_effective_entry": ("x", "hash"),
    }
    assert set(device_indexes) == {"dss_device_idx", "des_device_idx"}
    assert all("btree (device_id)" in definition for definition in device_indexes.values())


def test_the_constraint_can_be_dropped_and_made_again():
    """What the migration does, both ways: a removed key lets a duplicate in, the key made again refuses it."""
    constraint = next(
        c for c in DeviceSettingStatus._meta.constraints if c.name == "unique_device_policy_setting_status"
    )
    assert isinstance(constraint, HashUniqueConstraint)
    device = f.device("PC-1")
    policy = f.policy("A", {f.PUA: 1})
    row = _setting_row(device, policy, f.PUA)
    insert_rows(DeviceSettingStatus, SETTING_COLUMNS, [row])

    with connection.schema_editor() as editor:
        editor.remove_constraint(DeviceSettingStatus, constraint)
    with transaction.atomic():
        insert_rows(DeviceSettingStatus, SETTING_COLUMNS, [row])
        transaction.set_rollback(True)  # the duplicate goes again
    with connection.schema_editor() as editor:
        editor.add_constraint(DeviceSettingStatus, constraint)
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(DeviceSettingStatus, SETTING_COLUMNS, [row])
