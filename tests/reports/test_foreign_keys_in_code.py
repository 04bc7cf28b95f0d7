"""The rows a check-in writes carry no database-level foreign keys (reports 0018); the code keeps them whole."""

from __future__ import annotations

import pytest
from django.db import connection

from devices import channel
from devices.checkins import claim_devices, run_checkins
from devices.models import Device
from reports.ingest import recount, recount_effective, stored_counts
from reports.models import (
    DeviceEffectiveSetting,
    DevicePolicyStatus,
    DeviceSettingStatus,
)
from tests.checkins import fleet as f
from tests.helpers import stored_effective_counts

pytestmark = pytest.mark.django_db


def _foreign_keys(model) -> list[str]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return sorted(name for name, c in found.items() if c["foreign_key"])


@pytest.fixture
def checked_in():
    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(3)]
    f.policy("AV", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    f.checkin(*devices)
    return devices


def test_the_tables_a_check_in_writes_have_no_database_foreign_keys():
    for model in (DeviceSettingStatus, DevicePolicyStatus, DeviceEffectiveSetting):
        assert _foreign_keys(model) == [], model.__name__


def test_deleting_a_device_removes_its_status_and_effective_rows_and_counts_them_out(checked_in):
    gone, *kept = checked_in
    assert DeviceEffectiveSetting.objects.filter(device_id=gone.pk).exists()

    Device.objects.get(pk=gone.pk).delete()

    for model in (DeviceSettingStatus, DevicePolicyStatus, DeviceEffectiveSetting):
        assert not model.objects.filter(device_id=gone.pk).exists(), model.__name__
        assert model.objects.filter(device_id__in=[d.pk for d in kept]).exists(), model.__name__
    assert recount() == stored_counts()
    assert recount_effective() == stored_effective_counts()


def test_a_device_deleted_during_its_check_in_gets_no_rows(monkeypatch):
    g = f.group("G")
    doomed, other = f.device("PC-1", groups=[g]), f.device("PC-2", groups=[g])
    f.policy("AV", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    real = channel.parse_report

    def parse_then_delete(device, payload, context):
        plan = real(device, payload, context)
        if device.pk == doomed.pk:  # its report is ready; the admin deletes it before the batch commits
            Device.objects.filter(pk=doomed.pk).delete()
        return plan

    monkeypatch.setattr(channel, "parse_report", parse_then_delete)
    ids, lease = claim_devices([doomed.pk, other.pk])

    run = run_checkins(ids, lease=lease, fault_rate=0.0)

    assert run.finished_ids == [other.pk]
    assert run.lost == 1
    for model in (DeviceSettingStatus, DevicePolicyStatus, DeviceEffectiveSetting):
        assert not model.objects.filter(device_id=doomed.pk).exists(), model.__name__
        assert model.objects.filter(device_id=other.pk).exists(), model.__name__
    assert recount() == stored_counts()
    assert recount_effective() == stored_effective_counts()
