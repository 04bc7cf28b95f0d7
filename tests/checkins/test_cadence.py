"""The check-in cadence by channel (devices/scheduling.py): MDE every 90 minutes, Intune MDM on Intune's own
refresh intervals, and one rule for every check-in: the next one is an interval after the one that finished."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from devices import checkins
from devices.models import Device
from tests.checkins import fleet as f


def _gap(device) -> timedelta:
    d = Device.objects.get(pk=device.pk)
    return d.next_checkin_at - d.last_checkin_at


@pytest.mark.django_db
def test_it_restarts_the_90_minute_cycle_after_a_policy_sync(sent_tasks, django_capture_on_commit_callbacks):
    d = f.device("PC-46", due=False)
    Device.objects.filter(pk=d.pk).update(next_checkin_at=timezone.now() + timedelta(minutes=46))

    with django_capture_on_commit_callbacks(execute=True):
        checkins.request_policy_sync([d])
    checkins.policy_sync.run(*sent_tasks[0][1])

    assert timedelta(minutes=81) <= _gap(d) <= timedelta(minutes=99)


@pytest.mark.django_db
def test_it_checks_in_an_intune_device_about_every_8_hours_after_enrollment_settles():
    d = f.device("INT-OLD", intune=True)
    Device.objects.filter(pk=d.pk).update(created_at=timezone.now() - timedelta(days=3))

    f.checkin(d)

    assert timedelta(hours=7.2) <= _gap(d) <= timedelta(hours=8.8)


@pytest.mark.django_db
def test_it_checks_in_a_freshly_enrolled_intune_device_every_3_minutes():
    d = f.device("INT-NEW", intune=True)

    f.checkin(d)

    assert timedelta(minutes=2.7) <= _gap(d) <= timedelta(minutes=3.3)


@pytest.mark.browser
def test_it_shows_which_cadence_a_device_follows(login, security_manager, live_server):
    mdm = f.device("CONTOSO-INT-0008", intune=True)
    Device.objects.filter(pk=mdm.pk).update(created_at=timezone.now() - timedelta(days=3))
    mde = f.device("CONTOSO-WS-0043")

    page = login(security_manager, reverse("checkins:device_panel", args=[mdm.pk]))
    cadence = page.locator('[data-testid="cadence"]')
    expect(cadence).to_have_text("Intune MDM regular refresh, about every 8 hours")
    expect(page.locator(f"#checkin-panel-{mdm.pk}")).not_to_contain_text("90 minutes")

    page.goto(live_server.url + reverse("checkins:device_panel", args=[mde.pk]))
    expect(cadence).to_have_text("Every 90 minutes (security settings management)")
