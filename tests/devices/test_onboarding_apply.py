"""devices.onboarding.apply and services.reevaluate_device: writing the decision, idempotently."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from console.models import AuditEvent
from devices import credentials, onboarding, services
from devices.models import DeviceCredential, GroupMember, OnboardingEvent
from devices.signals import management_changed, membership_changed
from devices.tasks import onboard_device
from tests.devices.device_factories import make_device, make_group, set_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def signals():
    seen = {"management": [], "membership": []}

    def on_management(sender, device, managed, **kwargs):
        seen["management"].append((device.pk, managed, kwargs.get("credential")))

    def on_membership(sender, group, device_ids, **kwargs):
        seen["membership"].append((group.name, set(device_ids)))

    management_changed.connect(on_management)
    membership_changed.connect(on_membership)
    yield seen
    management_changed.disconnect(on_management)
    membership_changed.disconnect(on_membership)


def test_onboarding_a_device_manages_it_with_credential_schedule_timeline_signal_and_audit(signals):
    set_tenant()
    device = make_device(join_type="workgroup")
    before = timezone.now()
    applied = services.reevaluate_device(device)

    device.refresh_from_db()
    assert applied.changed and applied.started
    assert device.managed_by == "mde" and device.management_type == "MicrosoftSense"
    assert device.label_list == ["MDEJoined", "MDEManaged"]
    assert device.enrollment_status == "Success"
    assert before <= device.next_checkin_at <= timezone.now() + timedelta(minutes=90)
    assert device.enrolled_at is not None
    assert credentials.authenticate(applied.credential) == device
    assert DeviceCredential.objects.filter(device=device, revoked_at__isnull=True).count() == 1
    assert list(OnboardingEvent.objects.filter(device=device).values_list("step", flat=True)) == [
        onboarding.STEP_SURVEY,
        onboarding.STEP_ENABLE,
        onboarding.STEP_TRUST,
        onboarding.STEP_MANAGED,
    ]
    assert signals["management"] == [(device.pk, True, applied.credential)]
    event = AuditEvent.objects.get(action="device.management.started")
    assert event.object_id == str(device.pk)
    assert event.after["managed_by"] == "mde" and event.before["managed_by"] == "none"


def test_applying_the_same_outcome_again_changes_nothing(signals):
    set_tenant()
    device = make_device(join_type="domain_joined")
    services.reevaluate_device(device)
    device.refresh_from_db()
    snapshot = (device.updated_at, device.next_checkin_at, device.system_labels, device.trust)
    counts = (OnboardingEvent.objects.count(), AuditEvent.objects.count(), DeviceCredential.objects.count())

    again = services.reevaluate_device(device)
    outcome = onboarding.evaluate(device, set_tenant())
    third = onboarding.apply(device, outcome)

    device.refresh_from_db()
    assert not again.changed and not third.changed
    assert (device.updated_at, device.next_checkin_at, device.system_labels, device.trust) == snapshot
    assert device.trust == "hybrid" and device.join_type == "hybrid_joined"
    assert (
        OnboardingEvent.objects.count(),
        AuditEvent.objects.count(),
        DeviceCredential.objects.count(),
    ) == counts
    assert len(signals["management"]) == 1


def test_losing_management_revokes_clears_and_keeps_mdejoined(signals):
    set_tenant()
    device = make_device(join_type="workgroup")
    token = services.reevaluate_device(device).credential
    set_tenant(windows_client_enabled=False)

    applied = services.reevaluate_device(device)

    device.refresh_from_db()
    assert applied.stopped
    assert device.managed_by == "none" and device.management_type == ""
    assert device.label_list == ["MDEJoined"]
    assert device.next_checkin_at is None
    # it was enrolled, so it left the enforcement scope (code 2 would say "never been enrolled")
    assert device.enrollment_status == onboarding.LEFT_SCOPE and device.enrollment_status_code is None
    assert credentials.authenticate(token) is None
    assert not DeviceCredential.objects.filter(device=device, revoked_at__isnull=True).exists()
    last = OnboardingEvent.objects.filter(device=device).order_by("-id").first()
    assert last.step == onboarding.STEP_STOPPED
    assert signals["management"][-1] == (device.pk, False, None)
    assert AuditEvent.objects.filter(action="device.management.stopped", object_id=str(device.pk)).exists()


def test_a_new_failure_status_is_written_and_audited_without_a_management_signal(signals):
    set_tenant(allow_mde_enforcement=False)
    device = make_device()
    services.reevaluate_device(device)
    set_tenant(allow_mde_enforcement=True, windows_client_enabled=False)
    services.reevaluate_device(device)
    device.refresh_from_db()
    assert device.enrollment_status_code == 2
    assert AuditEvent.objects.filter(action="device.onboarding.status").count() == 2
    assert signals["management"] == []


def test_dynamic_groups_follow_onboarding(signals):
    set_tenant()
    group = make_group("All MDE managed devices", '(device.managementType -eq "MicrosoftSense")')
    device = make_device()
    services.reevaluate_device(device)
    group.refresh_from_db()
    assert group.member_count == 1
    assert GroupMember.objects.filter(group=group, device=device).exists()
    assert ("All MDE managed devices", {device.pk}) in signals["membership"]

    set_tenant(windows_client_enabled=False)
    services.reevaluate_device(device)
    group.refresh_from_db()
    assert group.member_count == 0 and not GroupMember.objects.filter(group=group).exists()


def test_the_onboarding_task_runs_the_four_steps_for_one_device():
    set_tenant()
    device = make_device(join_type="entra_joined")
    onboard_device(device.pk)
    device.refresh_from_db()
    assert device.is_mde_managed and device.trust == "existing"
    onboard_device(999_999)  # a device deleted meanwhile is simply skipped


def test_an_intune_enrolled_device_gets_no_mde_credential_and_keeps_the_intune_cadence(signals):
    set_tenant()
    device = make_device(intune_enrolled=True, join_type="entra_joined")
    applied = services.reevaluate_device(device)
    device.refresh_from_db()
    assert applied.changed and not applied.started
    assert device.managed_by == "intune" and not device.is_mde_managed
    assert not DeviceCredential.objects.filter(device=device).exists()
    assert signals["management"] == []
    # The same policy reaches it through Intune on its own schedule, which onboarding leaves alone.
    scheduled = device.next_checkin_at
    assert scheduled is not None
    set_tenant(windows_client_enabled=False)
    services.reevaluate_device(device)
    device.refresh_from_db()
    assert device.next_checkin_at == scheduled


def test_a_device_with_no_channel_is_not_scheduled():
    set_tenant(windows_client_enabled=False)
    device = make_device(configmgr_client=True)
    services.reevaluate_device(device)
    device.refresh_from_db()
    assert device.managed_by == "configmgr" and device.next_checkin_at is None
