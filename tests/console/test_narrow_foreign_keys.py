"""A 4-byte foreign key (console.compact.NarrowForeignKey) joins its 8-byte target as a plain foreign key does.

Django's PostgreSQL backend casts one side of a join whose two columns have different types. With the narrow
column's type as the field's type, a status row joined to its device compared the row's device_id with
``devices_device.id::integer``: the cast hid the devices' primary key from the planner, so every such join (View
report's page with its devices, Graph reports sorted by device name) read the whole devices table. The
column's type is the narrow one; the field's type, which joins compare, stays its target's."""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction

from devices.models import Device
from reports.models import DevicePolicyStatus, DeviceSettingStatus
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _world():
    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(3)]
    f.policy("A", {f.PUA: 1}, include=[g])
    f.checkin(*devices)
    return devices


JOINS = {
    "setting rows to their device": lambda: DeviceSettingStatus.objects.select_related("device").filter(
        device__display_name="PC-1"
    ),
    "policy rows to their device": lambda: DevicePolicyStatus.objects.select_related("device").filter(
        device__display_name="PC-1"
    ),
    "devices to their policy rows": lambda: Device.objects.filter(policy_statuses__status="succeeded"),
    "devices to their memberships": lambda: Device.objects.filter(memberships__group__name="G"),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_a_join_through_a_narrow_key_compares_the_columns_as_they_are(name):
    _world()
    sql = str(JOINS[name]().query)
    assert not re.search(r"\)::(integer|bigint)|CAST\(", sql), sql
    assert JOINS[name]().exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
def test_a_status_row_finds_its_device_by_the_devices_primary_key():
    _world()
    rows = DeviceSettingStatus.objects.select_related("device").filter(setting_key=f.PUA)
    sql, params = rows.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        for switch in ("seqscan", "hashjoin", "mergejoin", "bitmapscan"):  # a nested loop: a lookup a row
            cursor.execute(f"SET LOCAL enable_{switch} = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using devices_device_pkey on devices_device" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's catalog")
def test_the_columns_stay_4_bytes():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE "
            "(table_name, column_name) IN (('reports_devicesettingstatus', 'device_id'), "
            "('reports_devicesettingstatus', 'policy_id'), ('reports_devicepolicystatus', 'device_id'), "
            "('devices_groupmember', 'group_id'), ('devices_groupmember', 'device_id'))"
        )
        assert {row[2] for row in cursor.fetchall()} == {"integer"}
