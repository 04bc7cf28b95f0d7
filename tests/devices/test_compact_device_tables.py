"""The device-side tables at a million devices (issue 17: storage ≤ 8 KB a device): an onboarding event stores its
step once and its outcome and device narrow, memberships their ids in 4 bytes, a credential's key one b-tree,
the device row no index nobody reads and digests of 32 hex digits. Python reads the same texts as before."""

from __future__ import annotations

import hashlib

import pytest
from django.db import IntegrityError, connection, transaction

from console.interned import text_key
from devices import services
from devices.models import OUTCOME_CODES, Device, DeviceCredential, GroupMember, OnboardingEvent
from reports.ingest import DevicePlan, short_digest
from tests.checkins import fleet as f
from tests.devices.device_factories import make_device, set_tenant
from tests.helpers import migrate_to

pytestmark = pytest.mark.django_db
needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's catalog")


def _raw(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def _layout(table: str) -> list[tuple[str, str]]:
    return _raw(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    )


def _onboarded():
    set_tenant()
    device = make_device(join_type="workgroup")
    services.reevaluate_device(device)
    return device


def test_an_onboarding_event_stores_its_step_once_and_its_outcome_as_a_code():
    device = _onboarded()
    events = list(OnboardingEvent.objects.filter(device=device).order_by("id"))
    assert events and all(e.step and e.outcome in OUTCOME_CODES for e in events)
    raw = {
        pk: (step, outcome)
        for pk, step, outcome in _raw(
            "SELECT id, step, outcome FROM devices_onboardingevent WHERE device_id = %s", [device.pk]
        )
    }
    assert {e.pk: (text_key(e.step), OUTCOME_CODES[e.outcome]) for e in events} == raw
    assert events[0].get_outcome_display() in {"Completed", "Failed", "Skipped", "Information"}
    # read, filtered and shown by their texts
    first = events[0]
    assert OnboardingEvent.objects.filter(step=first.step, outcome=first.outcome, device=device).exists()


def test_the_device_page_shows_the_onboarding_steps(ga_client):
    from django.urls import reverse

    device = _onboarded()
    html = ga_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    for event in OnboardingEvent.objects.filter(device=device):
        assert event.step in html and event.get_outcome_display() in html


@needs_postgres
def test_on_postgresql_an_onboarding_event_is_a_64_byte_row():
    device = _onboarded()
    assert _layout("devices_onboardingevent") == [
        ("id", "bigint"),
        ("at", "timestamp with time zone"),
        ("message", "bigint"),
        ("step", "bigint"),
        ("device_id", "integer"),
        ("outcome", "smallint"),
    ]
    sizes = {size for (size,) in _raw("SELECT pg_column_size(e.*) FROM devices_onboardingevent e")}
    assert sizes == {62}, sizes  # 64 once aligned (96 with the step's text and 8-byte ids)
    assert device.onboarding_events.count() >= 3


@needs_postgres
def test_memberships_hold_4_byte_ids_and_a_credential_key_one_b_tree():
    device = _onboarded()
    group = f.group("G", [device])
    assert dict(_layout("devices_groupmember"))["device_id"] == "integer"
    assert dict(_layout("devices_groupmember"))["group_id"] == "integer"
    assert GroupMember.objects.get(group=group).device == device
    key_indexes = _raw(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'devices_devicecredential' AND indexdef LIKE '%%key_id%%'"
    )
    assert len(key_indexes) == 1 and "UNIQUE" in key_indexes[0][0], key_indexes
    device_indexes = " ".join(
        row[0] for row in _raw("SELECT indexdef FROM pg_indexes WHERE tablename = 'devices_device'")
    )
    assert "management_type" not in device_indexes and "enrollment_status_code" not in device_indexes


def test_a_credential_key_is_still_unique():
    device = _onboarded()
    key = DeviceCredential.objects.filter(device=device).values_list("key_id", flat=True).first()
    assert key
    with pytest.raises(IntegrityError), transaction.atomic():
        DeviceCredential.objects.create(device=device, key_id=key, secret_hash="x")


def test_a_device_keeps_32_hex_digits_of_its_digests():
    plan = DevicePlan(1, "mde", {}, {})
    assert len(plan.digest) == 32 and int(plan.digest, 16) >= 0
    assert short_digest("x") == hashlib.sha256(b"x").hexdigest()[:32]


def test_a_device_whose_stored_digest_was_cut_to_32_digits_rewrites_nothing():
    import importlib

    from django.apps import apps

    from reports.models import DeviceSettingStatus

    g = f.group("G")
    device = f.device("PC-1", groups=[g])
    f.policy("A", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    f.checkin(device)
    stored = Device.objects.get(pk=device.pk).desired_fingerprint
    assert len(stored) == 32
    # as a device row stored it before: all 64 digits, of which the check-in now computes the first 32
    Device.objects.filter(pk=device.pk).update(desired_fingerprint=stored + "0" * 32)
    importlib.import_module("devices.migrations.0015_shorter_digests").shorten(apps, None)
    assert Device.objects.get(pk=device.pk).desired_fingerprint == stored
    rows = sorted(DeviceSettingStatus.objects.filter(device=device).values_list("setting_key", "status"))
    f.make_due(device)
    run = f.checkin(device)
    assert run.changed == 0, run
    assert (
        sorted(DeviceSettingStatus.objects.filter(device=device).values_list("setting_key", "status")) == rows
    )


BEFORE_ONBOARDING = [("devices", "0016_unused_device_indexes")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_compacts_onboarding_events_and_back():
    executor = migrate_to(BEFORE_ONBOARDING)
    old_apps = executor.loader.project_state(BEFORE_ONBOARDING).apps
    old_device = old_apps.get_model("devices", "Device")
    old_event = old_apps.get_model("devices", "OnboardingEvent")
    device = old_device.objects.create(display_name="OB-1")
    steps = [("Survey for an Intune presence", "ok"), ("Étape ✓ – 8f2c", "failed"), ("Skip", "skipped"),
             ("Note", "info")]  # fmt: skip
    before = [old_event.objects.create(device=device, step=s, outcome=o, message="m").pk for s, o in steps]

    migrate_to()
    events = list(OnboardingEvent.objects.filter(device_id=device.pk).order_by("id"))
    assert [(e.pk, e.step, e.outcome, e.message) for e in events] == [
        (pk, s, o, "m") for pk, (s, o) in zip(before, steps, strict=True)
    ]
    later = OnboardingEvent.objects.create(device_id=device.pk, step="After", outcome="ok")
    assert later.pk > max(before)  # the identity goes on after the rows it carried over
    later.delete()

    migrate_to(BEFORE_ONBOARDING)
    back = list(old_event.objects.filter(device_id=device.pk).order_by("id").values_list("step", "outcome"))
    assert back == steps
    migrate_to()


BEFORE_DIGESTS = [("devices", "0014_agent_state_stored_once")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_first_32_digits_of_stored_digests():
    executor = migrate_to(BEFORE_DIGESTS)
    old_device = executor.loader.project_state(BEFORE_DIGESTS).apps.get_model("devices", "Device")
    full = hashlib.sha256(b"plan").hexdigest()
    device = old_device.objects.create(display_name="D-1", desired_fingerprint=full, effective_digest="")
    other = old_device.objects.create(display_name="D-2", desired_fingerprint="", effective_digest=full)
    migrate_to()
    assert Device.objects.get(pk=device.pk).desired_fingerprint == full[:32]
    assert Device.objects.get(pk=device.pk).effective_digest == ""
    assert Device.objects.get(pk=other.pk).effective_digest == full[:32]
