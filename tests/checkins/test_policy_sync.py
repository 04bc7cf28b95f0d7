"""Policy sync: only for devices successfully managed by MDE; an immediate check-in on the "sync" queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEvent
from devices import checkins
from devices.models import Device
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def test_policy_sync_marks_the_device_audits_and_queues_on_the_sync_queue(
    sent_tasks, django_capture_on_commit_callbacks
):
    from console.celery import app

    d = f.device("PC-1", due=False)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = checkins.request_policy_sync([d])

    assert [x.pk for x in outcome.queued] == [d.pk] and not outcome.refused
    assert Device.objects.get(pk=d.pk).sync_requested_at is not None
    assert sent_tasks == [("devices.checkins.policy_sync", [[d.pk], sent_tasks[0][1][1]], {})]
    assert app.amqp.router.route({}, "devices.checkins.policy_sync")["queue"].name == "sync"
    event = AuditEvent.objects.get(action="Policy sync requested")
    assert event.object_id == str(d.pk) and event.after["sync_requested_at"]


def test_policy_sync_is_refused_for_an_intune_enrolled_device(sent_tasks, django_capture_on_commit_callbacks):
    d = f.device("INT-1", intune=True)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = checkins.request_policy_sync([d])

    assert not outcome.queued
    ((device, reason),) = outcome.refused
    assert (
        "enrolled in Intune" in reason
        and "only available for devices that are successfully managed" in reason
    )
    assert Device.objects.get(pk=d.pk).sync_requested_at is None
    assert sent_tasks == []
    assert not AuditEvent.objects.filter(action="Policy sync requested").exists()


def test_policy_sync_is_refused_for_a_device_not_managed_by_mde(sent_tasks):
    d = f.device("PC-X", mde=False)
    outcome = checkins.request_policy_sync([d])
    assert not outcome.queued
    assert "isn't successfully managed by Microsoft Defender for Endpoint" in outcome.refused[0][1]


def test_the_sync_task_checks_the_device_in_and_clears_the_request():
    from reports.models import CheckinRecord

    g = f.group("G")
    d = f.device("PC-1", groups=[g], due=False)
    f.policy("AV", {f.PUA: 1}, include=[g])
    checkins.request_policy_sync([d])

    checkins.policy_sync.run([d.pk], timezone.now().isoformat())

    fresh = Device.objects.get(pk=d.pk)
    assert fresh.sync_requested_at is None
    assert fresh.checkin_lease_until is None
    assert f.statuses(d) == {"AV": "succeeded"}
    record = CheckinRecord.objects.get(device=d)
    assert record.kind == "sync" and record.result == "succeeded"


def test_a_sync_with_nothing_to_change_is_still_recorded_in_the_history():
    from reports.models import CheckinRecord

    g = f.group("G")
    d = f.device("PC-1", groups=[g], due=False)
    f.policy("AV", {f.PUA: 1}, include=[g])
    for _ in range(2):
        checkins.request_policy_sync([d])
        checkins.policy_sync.run([d.pk], timezone.now().isoformat())

    latest = CheckinRecord.objects.filter(device=d).first()
    assert CheckinRecord.objects.filter(device=d, kind="sync").count() == 2
    assert latest.message == "No changes"
    assert Device.objects.get(pk=d.pk).sync_requested_at is None


def test_a_device_busy_checking_in_is_retried_shortly(sent_tasks):
    d = f.device("PC-1")
    Device.objects.filter(pk=d.pk).update(
        checkin_lease_until=timezone.now() + timedelta(minutes=5), sync_requested_at=timezone.now()
    )

    checkins.policy_sync.run([d.pk], "2026-01-01T00:00:00+00:00")

    assert sent_tasks == [
        ("devices.checkins.policy_sync", [[d.pk], "2026-01-01T00:00:00+00:00", 1], {"countdown": 2})
    ]


def test_a_sync_message_for_a_device_already_synced_does_nothing():
    """A redelivered message, or one whose sync the scheduler already recovered, doesn't check in again."""
    from reports.models import CheckinRecord

    g = f.group("G")
    d = f.device("PC-1", groups=[g], due=False)
    f.policy("AV", {f.PUA: 1}, include=[g])
    checkins.request_policy_sync([d])
    stamp = timezone.now().isoformat()
    checkins.policy_sync.run([d.pk], stamp)
    checkins.policy_sync.run([d.pk], stamp)

    assert CheckinRecord.objects.filter(device=d, kind="sync").count() == 1


def test_a_sync_requested_during_a_check_in_is_kept_for_the_next_one():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("AV", {f.PUA: 1}, include=[g])
    ids, lease = checkins.claim_devices([d.pk])
    Device.objects.filter(pk=d.pk).update(sync_requested_at=timezone.now() + timedelta(seconds=30))

    checkins.run_checkins(ids, lease=lease)

    assert Device.objects.get(pk=d.pk).sync_requested_at is not None


# ---- views -----------------------------------------------------------------------------------------------


def test_the_device_sync_button_requests_a_sync_and_returns_the_panel_over_htmx(esm_client, sent_tasks):
    d = f.device("PC-1", due=False)
    response = esm_client.post(reverse("checkins:device_sync", args=[d.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'data-sync-state="requested"' in response.text
    assert "Sync requested" in response.text
    assert 'hx-trigger="every 1s"' in response.text
    assert Device.objects.get(pk=d.pk).sync_requested_at is not None


def test_the_device_sync_button_without_javascript_redirects_back(esm_client, sent_tasks):
    d = f.device("PC-1", due=False)
    response = esm_client.post(reverse("checkins:device_sync", args=[d.pk]), {"next": "/devices/"})
    assert response.status_code == 302 and response["Location"] == "/devices/"


def test_a_forged_sync_for_an_intune_device_changes_nothing(esm_client, sent_tasks):
    d = f.device("INT-1", intune=True)
    response = esm_client.post(reverse("checkins:device_sync", args=[d.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "enrolled in Intune" in response.text
    assert Device.objects.get(pk=d.pk).sync_requested_at is None
    assert sent_tasks == []


def test_a_reader_cannot_request_a_policy_sync(reader_client, sent_tasks):
    d = f.device("PC-1")
    assert reader_client.post(reverse("checkins:device_sync", args=[d.pk])).status_code == 403
    assert reader_client.post(reverse("checkins:bulk_sync"), {"device_ids": [d.pk]}).status_code == 403
    assert Device.objects.get(pk=d.pk).sync_requested_at is None


def test_sync_of_an_unknown_device_is_404(esm_client):
    assert esm_client.post(reverse("checkins:device_sync", args=[999999])).status_code == 404


def test_bulk_sync_syncs_mde_devices_and_says_which_were_skipped(esm_client, sent_tasks):
    a, b = f.device("PC-A"), f.device("PC-B")
    intune = f.device("INT-C", intune=True)

    response = esm_client.post(
        reverse("checkins:bulk_sync"),
        {"device_ids": [a.pk, b.pk, intune.pk], "next": "/devices/"},
        follow=True,
    )

    text = response.content.decode()
    assert "Policy sync requested for 2 devices." in text
    assert "1 device skipped (INT-C)" in text
    assert set(Device.objects.filter(sync_requested_at__isnull=False).values_list("pk", flat=True)) == {
        a.pk,
        b.pk,
    }


def test_bulk_sync_refuses_forged_ids_and_changes_nothing(esm_client, sent_tasks):
    a = f.device("PC-A")
    assert esm_client.post(reverse("checkins:bulk_sync"), {"device_ids": ["1; drop"]}).status_code == 400
    assert esm_client.post(reverse("checkins:bulk_sync"), {"device_ids": [a.pk, 987654]}).status_code == 400
    assert not Device.objects.filter(sync_requested_at__isnull=False).exists()
    assert sent_tasks == []


def test_group_sync_syncs_every_member_managed_by_mde(
    esm_client, sent_tasks, django_capture_on_commit_callbacks
):
    members = [f.device(f"PC-{i}") for i in range(3)] + [f.device("INT-1", intune=True)]
    g = f.group("Finance", members)

    with django_capture_on_commit_callbacks(execute=True):
        response = esm_client.post(reverse("checkins:group_sync", args=[g.pk]))

    assert response.status_code == 302
    assert Device.objects.filter(sync_requested_at__isnull=False).count() == 3
    queued = {pk for name, args, _ in sent_tasks for pk in args[0]}
    assert queued == {d.pk for d in members[:3]}


def test_sync_views_refuse_get(esm_client):
    d = f.device("PC-1")
    assert esm_client.get(reverse("checkins:device_sync", args=[d.pk])).status_code == 405


def test_the_all_devices_list_offers_policy_sync_for_its_ticked_devices(esm_client, sent_tasks):
    a = f.device("PC-A")
    page = esm_client.get(reverse("devices:list")).content.decode()
    assert f'formaction="{reverse("checkins:bulk_sync")}"' in page
    # The list's bulk form names its checkboxes "pk"; the sync action takes them as they are.
    response = esm_client.post(
        reverse("checkins:bulk_sync"), {"pk": [a.pk], "next": "/devices/"}, follow=True
    )
    assert "Policy sync requested for 1 device" in response.content.decode()
    assert Device.objects.get(pk=a.pk).sync_requested_at is not None


def test_a_group_page_offers_policy_sync_for_its_members(esm_client):
    from devices.models import Group

    group = Group.objects.create(name="Pilot")
    page = esm_client.get(reverse("devices:group_detail", args=[group.pk])).content.decode()
    assert reverse("checkins:group_sync", args=[group.pk]) in page
