"""A policy status row's message and an effective row's values are stored once (reports 0013 and 0014, issue 17:
storage per device): the rows hold 8-byte keys of texts in console.StoredText, and read back as before."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from console.interned import text_key
from console.models import StoredText
from reports.ingest import PENDING_MESSAGE, insert_missing_policy_rows
from reports.models import DeviceEffectiveSetting, DevicePolicyStatus
from tests.checkins import fleet as f

BEFORE = [("reports", "0012_status_row_keys")]
VALUES = [None, 1, "C:\\Temp", ["C:\\a", "C:\\b"], {"rule": 2}, False]


def _raw(table, column, where):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {where}")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_policy_rows_hold_the_key_of_their_message_and_read_back_its_text():
    g = f.group("Workstations")
    d = f.device("PC-001", groups=[g])
    policy = f.policy("AV baseline", {f.REALTIME: 1, f.PUA: 1}, include=[g])
    f.checkin(d)
    later = f.policy("Later", {f.IPS: 1})
    now = timezone.now()
    row = (d.pk, later.pk, "pending", "mde", 0, 0, 0, 0, 0, PENDING_MESSAGE, now, d.display_name)
    assert insert_missing_policy_rows([row]) == [(d.pk, later.pk, "pending")]

    done = DevicePolicyStatus.objects.get(device=d, policy=policy)
    waiting = DevicePolicyStatus.objects.get(device=d, policy=later)
    assert (done.status, done.message) == ("succeeded", "The policy applies.")
    assert waiting.message == PENDING_MESSAGE
    assert _raw("reports_devicepolicystatus", "message", f"id = {done.pk}") == [
        text_key("The policy applies.")
    ]
    assert _raw("reports_devicepolicystatus", "message", f"id = {waiting.pk}") == [text_key(PENDING_MESSAGE)]
    assert StoredText.objects.get(key=text_key(PENDING_MESSAGE)).text == PENDING_MESSAGE
    assert list(DevicePolicyStatus.objects.filter(message=PENDING_MESSAGE)) == [waiting]


@pytest.mark.django_db
def test_an_effective_row_holds_the_keys_of_its_value_and_intended_value():
    d = f.device("PC-001")
    DeviceEffectiveSetting.objects.create(
        device=d, setting_key=f.PUA, value=1, intended_value=2, configured_by="mde", changed_at=timezone.now()
    )

    row = DeviceEffectiveSetting.objects.get(device=d)
    assert (row.value, row.intended_value) == (1, 2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT value, intended_value FROM reports_deviceeffectivesetting")
        value_key, intended_key = cursor.fetchone()
    assert isinstance(value_key, int) and isinstance(intended_key, int)
    assert StoredText.objects.get(key=value_key).text == "1"
    assert StoredText.objects.get(key=intended_key).text == "2"


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target or executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migrations_keep_every_message_and_value_both_ways():
    _migrate(BEFORE)
    try:
        old_apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
        old_policy_status = old_apps.get_model("reports", "DevicePolicyStatus")
        old_effective = old_apps.get_model("reports", "DeviceEffectiveSetting")
        devices = [f.device(f"PC-{i}") for i in range(3)]
        policy = f.policy("A", {f.PUA: 1})
        messages = ["", PENDING_MESSAGE, "Échec: 0x87D1FDE8 ✓"]
        for device, message in zip(devices, messages, strict=True):
            old_policy_status.objects.create(
                device_id=device.pk, policy_id=policy.pk, status="pending", message=message
            )
        now = timezone.now().replace(microsecond=0)
        for i, value in enumerate(VALUES):
            old_effective.objects.create(
                device_id=devices[0].pk,
                setting_key=f.PUA,
                entry=f"e{i}",
                value=value,
                intended_value=VALUES[-1 - i],
                configured_by="mde",
                changed_at=now,
            )

        def current():
            return (
                list(DevicePolicyStatus.objects.order_by("device_id").values_list("message", flat=True)),
                list(DeviceEffectiveSetting.objects.order_by("entry").values_list("value", "intended_value")),
            )

        expected = (messages, [(value, VALUES[-1 - i]) for i, value in enumerate(VALUES)])
        _migrate(None)
        assert current() == expected
        assert _raw("reports_devicepolicystatus", "message", "true").count(None) == 1  # "" is NULL
        assert all(
            isinstance(k, int) for k in _raw("reports_deviceeffectivesetting", "value", "value IS NOT NULL")
        )

        _migrate(BEFORE)
        assert (
            list(old_policy_status.objects.order_by("device_id").values_list("message", flat=True))
            == messages
        )
        assert [(r.value, r.intended_value) for r in old_effective.objects.order_by("entry")] == expected[1]
        _migrate(None)
        assert current() == expected
    finally:
        _migrate(None)
