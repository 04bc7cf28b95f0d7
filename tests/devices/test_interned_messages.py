"""A device's enrollment message and its onboarding events' messages are stored once (console.interned, issue 17:
storage per device): the rows hold the 8-byte key of the text, the pages and the API read the text, and no text
reads as "" as before."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from console.interned import text_key
from console.models import StoredText
from devices import services
from devices.models import Device, OnboardingEvent
from tests.devices.device_factories import make_device, set_tenant

pytestmark = pytest.mark.django_db


def _raw(table: str, column: str, pk: int):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_onboarding_stores_each_message_once_and_the_rows_hold_its_key():
    set_tenant()
    device = make_device(join_type="workgroup")
    assert Device.objects.get(pk=device.pk).enrollment_message == ""  # no text yet: NULL, read as ""
    assert _raw("devices_device", "enrollment_message", device.pk) is None

    with CaptureQueriesContext(connection) as queries:
        services.reevaluate_device(device)

    device = Device.objects.get(pk=device.pk)
    assert device.enrollment_message.startswith("Managed by MDE")
    assert _raw("devices_device", "enrollment_message", device.pk) == text_key(device.enrollment_message)
    events = list(OnboardingEvent.objects.filter(device=device))
    assert len(events) == 4 and all(e.message for e in events)
    assert [_raw("devices_onboardingevent", "message", e.pk) for e in events] == [
        text_key(e.message) for e in events
    ]
    stored = dict(StoredText.objects.values_list("key", "text"))
    assert all(stored[text_key(e.message)] == e.message for e in events)
    # The device's and the timeline's texts in one INSERT, not one (and a SELECT) a row.
    inserts = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "console_storedtext"')
    ]
    assert len(inserts) == 1, inserts


def test_a_saved_message_is_stored_and_filtered_by_its_text():
    set_tenant()
    device = make_device(display_name="PC-MSG")
    device.enrollment_message = "PowerShell runs in ConstrainedLanguage mode on this device."
    device.save(update_fields=["enrollment_message"])

    assert Device.objects.filter(enrollment_message__icontains="constrainedlanguage").get() == device
    assert Device.objects.filter(
        enrollment_message="PowerShell runs in ConstrainedLanguage mode on this device."
    ).exists()


BEFORE = [("devices", "0012_device_table_fillfactor")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_the_messages_out_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    old_device = old_apps.get_model("devices", "Device")
    old_event = old_apps.get_model("devices", "OnboardingEvent")
    texts = ["Managed by MDE: managementType MicrosoftSense.", "", "Échec ✓ – tenant 8f2c3a1e"]
    devices = [
        old_device.objects.create(display_name=f"M-{i}", enrollment_message=t) for i, t in enumerate(texts)
    ]
    for device, text in zip(devices, texts, strict=True):
        old_event.objects.create(device=device, step="Survey", outcome="ok", message=text[::-1])

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert [Device.objects.get(pk=d.pk).enrollment_message for d in devices] == texts
    assert [_raw("devices_device", "enrollment_message", d.pk) for d in devices] == [
        text_key(t) for t in texts
    ]
    assert [e.message for e in OnboardingEvent.objects.order_by("device_id")] == [t[::-1] for t in texts]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(BEFORE)
    assert [old_device.objects.get(pk=d.pk).enrollment_message for d in devices] == texts
    assert [e.message for e in old_event.objects.order_by("device_id")] == [t[::-1] for t in texts]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
