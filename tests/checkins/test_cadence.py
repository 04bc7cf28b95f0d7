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


def _settled_intune_device(name: str, groups=(), minutes_out: float = 300):
    d = f.device(name, intune=True, groups=groups, due=False)
    Device.objects.filter(pk=d.pk).update(
        created_at=timezone.now() - timedelta(days=3),
        last_checkin_at=timezone.now() - timedelta(hours=3),
        next_checkin_at=timezone.now() + timedelta(minutes=minutes_out),
    )
    return Device.objects.get(pk=d.pk)


@pytest.mark.django_db
def test_a_policy_change_notifies_intune_devices_which_check_in_within_5_minutes_while_mde_devices_keep_their_time():
    from reports.pending import mark_policy_pending

    g = f.group("Notified")
    mdm = _settled_intune_device("INT-NOTIFY", groups=[g])
    mde = f.device("MDE-KEEP", groups=[g], due=False)
    mde_next = timezone.now() + timedelta(minutes=60)
    Device.objects.filter(pk=mde.pk).update(next_checkin_at=mde_next)
    policy = f.policy("AV", {f.PUA: 1}, include=[g])
    changed_at = timezone.now()

    mark_policy_pending(policy.pk, [mdm.pk, mde.pk], [], changed_at.isoformat())

    mdm.refresh_from_db()
    assert changed_at <= mdm.next_checkin_at <= changed_at + timedelta(minutes=5)
    assert mdm.mdm_notified_at == changed_at
    assert Device.objects.get(pk=mde.pk).next_checkin_at == mde_next
    assert Device.objects.get(pk=mde.pk).mdm_notified_at is None


@pytest.mark.django_db
def test_a_notification_never_moves_a_check_in_that_is_already_sooner_later():
    from devices import scheduling

    soon = _settled_intune_device("INT-SOON", minutes_out=1)
    before = soon.next_checkin_at

    scheduling.notify_mdm([soon.pk], timezone.now() + timedelta(seconds=30))

    assert Device.objects.get(pk=soon.pk).next_checkin_at <= before


@pytest.mark.django_db
def test_after_the_notified_check_in_the_next_one_is_a_full_8_hour_interval_out_not_another_5_minutes():
    from devices import scheduling

    d = _settled_intune_device("INT-AFTER")
    scheduling.notify_mdm([d.pk], timezone.now() - timedelta(minutes=1))
    Device.objects.filter(pk=d.pk).update(next_checkin_at=timezone.now() - timedelta(seconds=1))

    f.checkin(d)

    assert timedelta(hours=7.2) <= _gap(d) <= timedelta(hours=8.8)


@pytest.mark.django_db
def test_the_device_page_says_a_notified_intune_device_checks_in_within_5_minutes_and_why(
    client, security_manager
):
    from devices import scheduling

    d = _settled_intune_device("INT-PAGE")
    scheduling.notify_mdm([d.pk], timezone.now())
    client.force_login(security_manager)

    page = client.get(reverse("checkins:device_panel", args=[d.pk])).content.decode()

    assert "notified of a policy change: checks in within about 5 minutes of the notification" in page
    assert "then back to regular refresh, about every 8 hours" in page
    assert 'data-testid="mdm-notified"' in page

    Device.objects.filter(pk=d.pk).update(last_checkin_at=timezone.now())  # the check-in that answered it
    page = client.get(reverse("checkins:device_panel", args=[d.pk])).content.decode()
    assert "Intune MDM regular refresh, about every 8 hours" in page
    assert "answered by the check-in that followed" in page


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
