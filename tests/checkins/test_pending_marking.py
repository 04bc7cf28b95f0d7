"""A policy, assignment, membership or management change marks the affected devices Pending at once."""

from __future__ import annotations

import pytest

from devices import credentials
from devices.models import Device, GroupMember
from devices.signals import management_changed, membership_changed
from policies.models import PolicyAssignment
from policies.signals import policy_changed
from reports.ingest import recount, stored_counts
from reports.models import DevicePolicyStatus, DeviceSettingStatus, PolicyGeneration, PolicyStatusCount
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _counts(policy) -> dict:
    return {c.status: c.count for c in PolicyStatusCount.objects.filter(policy=policy) if c.count}


def test_editing_a_policy_marks_its_devices_pending_until_they_check_in(
    eager_celery, django_capture_on_commit_callbacks
):
    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(3)]
    p = f.policy("AV", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    f.checkin(*devices)
    assert _counts(p) == {"succeeded": 3}

    p.values = {f.PUA: 2, f.REALTIME: 1}
    p.save()
    with django_capture_on_commit_callbacks(execute=True):
        policy_changed.send(sender=type(p), policy=p, kind="updated", device_ids=None)

    assert {f.statuses(d)["AV"] for d in devices} == {"pending"}
    assert set(DeviceSettingStatus.objects.filter(policy=p).values_list("status", flat=True)) == {"pending"}
    assert _counts(p) == {"pending": 3}
    assert DevicePolicyStatus.objects.filter(policy=p).first().pending_count == 2
    assert recount() == stored_counts()

    f.make_due(*devices)
    f.checkin(*devices)
    assert _counts(p) == {"succeeded": 3}
    assert f.setting_rows(devices[0])[("AV", f.PUA)].value == 2
    assert recount() == stored_counts()


def test_assigning_a_policy_to_another_group_adds_pending_rows_for_its_devices(
    eager_celery, django_capture_on_commit_callbacks
):
    a, b = f.group("A"), f.group("B")
    old = f.device("PC-A", groups=[a])
    new = f.device("PC-B", groups=[b])
    server = f.device("web-01", groups=[b], os="linux")
    p = f.policy("AV", {f.PUA: 1}, include=[a])
    f.checkin(old)

    PolicyAssignment.objects.create(policy=p, group=b, intent="include")
    with django_capture_on_commit_callbacks(execute=True):
        policy_changed.send(sender=type(p), policy=p, kind="assigned", device_ids=None)

    assert f.statuses(new) == {"AV": "pending"}
    assert f.statuses(server) == {"AV": "not_applicable"}  # a Windows policy on a Linux device
    assert f.statuses(old) == {"AV": "pending"}
    assert _counts(p) == {"pending": 2, "not_applicable": 1}
    assert Device.objects.get(pk=new.pk).desired_fingerprint == ""
    assert recount() == stored_counts()


def test_deleting_a_policy_marks_the_policies_it_conflicted_with_pending(
    eager_celery, django_capture_on_commit_callbacks
):
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("PUA block", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    gone = f.policy("PUA audit", {f.PUA: 2}, include=[g])
    f.checkin(d)
    assert f.statuses(d) == {"PUA block": "conflict", "PUA audit": "conflict"}

    pk = gone.pk
    gone.delete()
    gone.pk = pk
    with django_capture_on_commit_callbacks(execute=True):
        policy_changed.send(sender=type(gone), policy=gone, kind="deleted", device_ids={d.pk})

    assert f.statuses(d) == {"PUA block": "pending"}
    rows = f.setting_rows(d)
    assert rows[("PUA block", f.PUA)].status == "pending"
    assert rows[("PUA block", f.REALTIME)].status == "succeeded"  # not shared with the deleted policy
    assert recount() == stored_counts()

    f.make_due(d)
    f.checkin(d)
    assert f.statuses(d) == {"PUA block": "succeeded"}


def test_a_membership_change_marks_the_devices_pending_for_the_groups_policies(
    eager_celery, django_capture_on_commit_callbacks
):
    g = f.group("G")
    member = f.device("PC-1", groups=[g])
    joiner = f.device("PC-2")
    p = f.policy("AV", {f.PUA: 1}, include=[g])
    f.checkin(member, joiner)
    assert f.statuses(joiner) == {}

    GroupMember.objects.create(group=g, device=joiner)
    with django_capture_on_commit_callbacks(execute=True):
        membership_changed.send(sender=type(g), group=g, device_ids={joiner.pk})

    assert f.statuses(joiner) == {"AV": "pending"}
    assert f.statuses(member) == {"AV": "succeeded"}  # not affected
    assert _counts(p) == {"succeeded": 1, "pending": 1}
    assert recount() == stored_counts()


def test_losing_management_revokes_the_credential_and_removes_rows_and_counts(
    eager_celery, django_capture_on_commit_callbacks
):
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    other = f.device("PC-2", groups=[g])
    p = f.policy("AV", {f.PUA: 1}, include=[g])
    token = credentials.issue(d)
    f.checkin(d, other)

    Device.objects.filter(pk=d.pk).update(managed_by="none", management_type="")
    d.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        management_changed.send(sender=Device, device=d, managed=False)

    assert credentials.authenticate(token) is None
    assert not DevicePolicyStatus.objects.filter(device=d).exists()
    assert not DeviceSettingStatus.objects.filter(device=d).exists()
    assert Device.objects.get(pk=d.pk).next_checkin_at is None
    assert _counts(p) == {"succeeded": 1}
    assert recount() == stored_counts()


def test_gaining_management_schedules_the_device_and_shows_its_policies_pending(
    eager_celery, django_capture_on_commit_callbacks
):
    g = f.group("G")
    d = f.device("PC-1", groups=[g], due=False)
    f.policy("AV", {f.PUA: 1, f.IPS: 1}, include=[g])

    with django_capture_on_commit_callbacks(execute=True):
        management_changed.send(sender=Device, device=d, managed=True, credential="x")

    assert Device.objects.get(pk=d.pk).next_checkin_at is not None
    assert f.statuses(d) == {"AV": "pending"}
    rows = f.setting_rows(d)
    assert rows[("AV", f.PUA)].status == "pending"
    assert rows[("AV", f.IPS)].status == "not_applicable"
    assert recount() == stored_counts()


def test_deleting_a_device_takes_it_out_of_the_counts():
    g = f.group("G")
    d, other = f.device("PC-1", groups=[g]), f.device("PC-2", groups=[g])
    p = f.policy("AV", {f.PUA: 1}, include=[g])
    f.checkin(d, other)

    Device.objects.get(pk=d.pk).delete()

    assert _counts(p) == {"succeeded": 1}
    assert recount() == stored_counts()


def test_every_change_to_what_check_ins_resolve_against_replaces_the_generation_token():
    from policies.models import AssignmentFilter

    def token():
        return PolicyGeneration.objects.filter(pk=1).values_list("token", flat=True).first()

    g = f.group("G")
    seen = {token()}
    p = f.policy("AV", {f.PUA: 1}, include=[g])
    seen.add(token())
    PolicyAssignment.objects.filter(policy=p).update(intent="exclude")
    policy_changed.send(sender=type(p), policy=p, kind="assigned", device_ids=None)
    seen.add(token())
    AssignmentFilter.objects.create(name="F", rule='(device.deviceName -startsWith "W")')
    seen.add(token())
    f.tenant().save()
    seen.add(token())
    assert len(seen) == 5


def test_a_late_pending_task_leaves_devices_that_checked_in_after_the_change_alone():
    from django.utils import timezone

    from reports.pending import mark_policy_pending

    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    p = f.policy("AV", {f.PUA: 1}, include=[g])
    changed_at = timezone.now().isoformat()
    f.checkin(d)  # the check-in after the change already shows its effect

    mark_policy_pending.run(p.pk, [], [], changed_at)

    assert f.statuses(d) == {"AV": "succeeded"}
    assert recount() == stored_counts()
