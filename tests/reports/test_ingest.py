"""Status ingest: rows per (device, policy, setting), worst-status-wins roll-up, only the difference written."""

from __future__ import annotations

import pytest
from django.utils import timezone

from devices import channel
from policies import engine
from reports.ingest import ReportedSetting, ingest, plan_device, recount, stored_counts
from reports.models import (
    DevicePolicyStatus,
    DeviceSettingStatus,
    PolicySettingStatusCount,
    PolicyStatusCount,
)
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _resolve(device):
    device = channel.load_device(device.pk)
    context = channel.current_context()
    resolution, _, _ = context.resolve(device)
    return resolution, context


def _ok(value):
    return ReportedSetting("succeeded", value, None, "Applied")


def test_a_plan_maps_a_merged_setting_back_to_every_policy_that_configures_it():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    a = f.policy("A", {f.EXCLUDED_PATHS: ["C:\\a"]}, profile=f.AV_EXCLUSIONS, include=[g])
    b = f.policy("B", {f.EXCLUDED_PATHS: ["C:\\b"]}, profile=f.AV_EXCLUSIONS, include=[g])
    resolution, context = _resolve(d)

    plan = plan_device(d.pk, "mde", resolution, {f.EXCLUDED_PATHS: _ok(["C:\\a", "C:\\b"])}, context.values)

    assert set(plan.settings) == {(a.pk, f.EXCLUDED_PATHS), (b.pk, f.EXCLUDED_PATHS)}
    assert {row.status for row in plan.settings.values()} == {"succeeded"}
    assert plan.policies[a.pk].counts == (1, 0, 0, 0, 0)


def test_without_a_report_applied_settings_are_pending_and_conflicts_and_not_applicable_are_known():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    a = f.policy("A", {f.PUA: 1, f.IPS: 1, f.REALTIME: 1}, include=[g])
    b = f.policy("B", {f.PUA: 2}, include=[g])
    resolution, context = _resolve(d)

    plan = plan_device(d.pk, "mde", resolution, None, context.values)

    assert plan.settings[(a.pk, f.REALTIME)].status == "pending"
    assert plan.settings[(a.pk, f.IPS)].status == "not_applicable"
    assert plan.settings[(a.pk, f.PUA)].status == "conflict"
    assert plan.settings[(a.pk, f.PUA)].conflict_policy_ids == (b.pk,)
    assert plan.policies[a.pk].status == "conflict"  # worst of conflict, pending, not applicable
    assert plan.policies[b.pk].status == "conflict"
    assert plan.result == "conflict"


def test_the_roll_up_is_worst_status_wins():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    a = f.policy("A", {f.PUA: 1, f.REALTIME: 1, f.IPS: 1}, include=[g])
    resolution, context = _resolve(d)
    reports = {f.PUA: _ok(1), f.REALTIME: ReportedSetting("error", 1, -2016281112, "Tamper")}

    plan = plan_device(d.pk, "mde", resolution, reports, context.values)

    assert plan.policies[a.pk].status == "error"
    assert plan.policies[a.pk].counts == (1, 1, 0, 1, 0)
    assert plan.policies[a.pk].status == engine.worst_status(["succeeded", "error", "not_applicable"])


def test_ingest_writes_only_the_rows_that_changed_and_moves_the_counts_by_deltas():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    a = f.policy("A", {f.PUA: 1, f.REALTIME: 1, f.SCRIPT_SCANNING: 1}, include=[g])
    resolution, context = _resolve(d)
    reports = {f.PUA: _ok(1), f.REALTIME: _ok(1), f.SCRIPT_SCANNING: _ok(1)}
    first = ingest([plan_device(d.pk, "mde", resolution, reports, context.values)], timezone.now())
    assert first.settings_changed[d.pk] == 3 and first.policies_changed[d.pk] == 1
    untouched = set(DeviceSettingStatus.objects.exclude(setting_key=f.PUA).values_list("pk", flat=True))

    reports[f.PUA] = ReportedSetting("error", 0, -2147467259, "Unspecified error")
    second = ingest([plan_device(d.pk, "mde", resolution, reports, context.values)], timezone.now())

    assert second.settings_changed[d.pk] == 1  # one setting rewritten
    assert second.policies_changed[d.pk] == 1  # its policy's roll-up changed
    assert untouched <= set(DeviceSettingStatus.objects.values_list("pk", flat=True))
    assert DevicePolicyStatus.objects.get(device=d, policy=a).status == "error"
    assert dict(PolicyStatusCount.objects.filter(policy=a, count__gt=0).values_list("status", "count")) == {
        "error": 1
    }
    assert PolicySettingStatusCount.objects.get(policy=a, setting_key=f.PUA, status="error").count == 1
    assert PolicySettingStatusCount.objects.get(policy=a, setting_key=f.PUA, status="succeeded").count == 0
    assert recount() == stored_counts()


def test_ingesting_the_same_plan_again_writes_nothing(django_assert_max_num_queries):
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("A", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    resolution, context = _resolve(d)
    plan = plan_device(d.pk, "mde", resolution, {f.PUA: _ok(1), f.REALTIME: _ok(1)}, context.values)
    ingest([plan], timezone.now())
    rows = list(DeviceSettingStatus.objects.order_by("pk").values())

    again = ingest([plan_device(d.pk, "mde", resolution, {f.PUA: _ok(1), f.REALTIME: _ok(1)}, context.values)],
                   timezone.now())  # fmt: skip

    assert again.rows_written == 0
    assert list(DeviceSettingStatus.objects.order_by("pk").values()) == rows


def test_a_policy_that_no_longer_targets_the_device_loses_its_rows_and_counts():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    a = f.policy("A", {f.PUA: 1}, include=[g])
    f.checkin(d)
    a.assignments.all().delete()
    f.make_due(d)

    f.checkin(d)

    assert not DevicePolicyStatus.objects.filter(policy=a).exists()
    assert not PolicyStatusCount.objects.filter(policy=a, count__gt=0).exists()
    assert recount() == stored_counts()
