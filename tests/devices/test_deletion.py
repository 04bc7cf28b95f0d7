"""Deleting a device propagates both ways, as the seed says ("Once a device is removed from either location, that
change will propagate to the other service"), and both are audit-logged."""

from __future__ import annotations

import pytest
from django.urls import reverse

from console.models import AuditEvent, Job
from devices import credentials, membership, services, tasks
from devices.models import Device, DeviceCredential, GroupMember, OnboardingEvent
from devices.signals import management_changed, membership_changed
from tests.devices.device_factories import make_device, make_group, set_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def managed():
    set_tenant()
    device = make_device(display_name="CONTOSO-WS-0100", join_type="workgroup")
    token = services.reevaluate_device(device).credential
    assigned = make_group("MDE pilot - Workstations")
    membership.add_members(assigned, [device.pk])
    dynamic = make_group("All MDE managed devices", '(device.managementType -eq "MicrosoftSense")')
    membership.recompute_group(dynamic)
    device.refresh_from_db()
    return device, token, assigned, dynamic


def test_deleting_in_intune_offboards_the_device_from_defender_security_management(ga_client, managed):
    device, token, assigned, dynamic = managed
    revoked_seen, management, membership_seen = [], [], []

    def on_management(sender, device, managed, **kwargs):
        management.append(managed)
        revoked_seen.append(
            not DeviceCredential.objects.filter(device=device, revoked_at__isnull=True).exists()
        )

    def on_membership(sender, group, device_ids, **kwargs):
        membership_seen.append((group.name, device_ids))

    management_changed.connect(on_management)
    membership_changed.connect(on_membership)
    try:
        ga_client.post(reverse("devices:delete", args=[device.pk]))
    finally:
        management_changed.disconnect(on_management)
        membership_changed.disconnect(on_membership)

    assert not Device.objects.filter(pk=device.pk).exists()
    assert credentials.authenticate(token) is None
    assert management == [False] and revoked_seen == [True]
    assert {name for name, _ in membership_seen} == {assigned.name, dynamic.name}
    assigned.refresh_from_db()
    dynamic.refresh_from_db()
    assert assigned.member_count == 0 and dynamic.member_count == 0
    assert not GroupMember.objects.exists()
    assert not OnboardingEvent.objects.exists() and not DeviceCredential.objects.exists()
    audit = AuditEvent.objects.get(action="device.delete")
    assert audit.object_repr == "CONTOSO-WS-0100" and audit.actor_name == "ga"
    assert audit.before["managed_by"] == "mde"
    assert audit.after["source_system"] == services.SOURCE_INTUNE_DELETE
    assert "offboarded" in audit.after["propagated_to"] and audit.after["credentials_revoked"] == 1


def test_a_read_only_operator_cannot_delete(reader_client, managed):
    device = managed[0]
    assert reader_client.post(reverse("devices:delete", args=[device.pk])).status_code == 403
    assert Device.objects.filter(pk=device.pk).exists()


def test_deleting_a_device_that_is_already_gone_is_a_404(ga_client):
    assert ga_client.post(reverse("devices:delete", args=[31337])).status_code == 404


def test_switching_a_platform_off_in_defender_propagates_to_intune(ga_client, managed, django_capture_on_commit_callbacks,
                                                                   monkeypatch):  # fmt: skip
    device, token, assigned, dynamic = managed
    monkeypatch.setattr(tasks.reevaluate_all, "delay", lambda job_id, **kw: None)
    tenant = set_tenant()
    data = {name: getattr(tenant, name) for name in services.DEFENDER_FIELDS}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    data.pop("windows_client_enabled")
    with django_capture_on_commit_callbacks(execute=True):
        ga_client.post(reverse("devices:enforcement_scope"), data)
    tasks.reevaluate_all(Job.objects.get().pk)

    device.refresh_from_db()
    dynamic.refresh_from_db()
    assigned.refresh_from_db()
    assert device.managed_by == "none" and device.management_type == ""
    assert device.label_list == ["MDEJoined"]
    assert credentials.authenticate(token) is None
    assert dynamic.member_count == 0 and assigned.member_count == 1  # assigned membership is the admin's
    audit = AuditEvent.objects.get(action="device.management.stopped")
    assert audit.after["source_system"] == services.SOURCE_ENFORCEMENT_SCOPE
    assert audit.actor_name == "ga"
