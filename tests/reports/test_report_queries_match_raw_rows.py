"""Property: after random check-ins, policy edits and Pending marking, every report query answers exactly what a
recount of the raw status rows says (the aggregate-vs-recount property itself is tests/reports/
test_ingest_aggregates.py; this one covers what the pages and the API read)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.models import Device
from reports import queries
from reports.ingest import mark_pending
from reports.models import DevicePolicyStatus, DeviceSettingStatus
from reports.queries import DeviceFilters
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

CHOICES = {f.PUA: [0, 1, 2], f.REALTIME: [0, 1], f.BEHAVIOR: [0, 1], f.CLOUD: [0, 1]}

step = st.one_of(
    st.tuples(st.just("checkin"), st.sets(st.integers(0, 5), min_size=1), st.sampled_from([0.0, 0.5, 1.0])),
    st.tuples(
        st.just("edit"),
        st.integers(0, 2),
        st.dictionaries(st.sampled_from(sorted(CHOICES)), st.integers(0, 2), min_size=1, max_size=3),
    ),
    st.tuples(st.just("pending"), st.sets(st.integers(0, 5)), st.sets(st.integers(0, 2))),
)


@pytest.fixture
def world(db):
    ga, gb = f.group("A"), f.group("B")
    devices = [
        f.device(f"PC-{i}", os="windows_server" if i == 4 else "windows", groups=[ga] if i % 2 else [ga, gb])
        for i in range(6)
    ]
    policies = [
        f.policy("P0", {f.PUA: 1, f.REALTIME: 1}, include=[ga]),
        f.policy("P1", {f.PUA: 2, f.BEHAVIOR: 0}, include=[gb]),
        f.policy("P2", {f.REALTIME: 0, f.CLOUD: 1}, include=[ga, gb]),
    ]
    return devices, policies


def _check_every_report(devices, policies) -> None:
    for policy in policies:
        rows = list(DevicePolicyStatus.objects.filter(policy=policy).select_related("device"))
        # Monitor donut
        expected = queries.empty_counts()
        expected.update(Counter(r.status for r in rows))
        assert queries.policy_status_counts(policy) == expected
        # View report: totals and rows for each status, OS and setting filter
        for status in queries.STATUS_ORDER:
            wanted = {r.device_id for r in rows if r.status == status}
            filters = DeviceFilters(status=status)
            assert queries.policy_device_total(policy, filters) == len(wanted)
            page, total = queries.policy_device_rows(policy, filters, per_page=100)
            assert total == len(wanted) and {r.device_id for r in page} == wanted
        for os in ("windows", "windows_server"):
            wanted = {r.device_id for r in rows if r.device.os == os}
            page, total = queries.policy_device_rows(policy, DeviceFilters(os=os), per_page=100)
            assert total == len(wanted) and {r.device_id for r in page} == wanted
        settings_rows = list(DeviceSettingStatus.objects.filter(policy=policy))
        by_key = {s.key: s for s in queries.setting_status_counts(policy)}
        for key in {r.setting_key for r in settings_rows} | set(policy.values):
            # Per setting status counts, and each count's link (View report filtered by setting + status)
            recount = Counter(r.status for r in settings_rows if r.setting_key == key)
            reported = {r.device_id for r in settings_rows if r.setting_key == key}
            unreported = {r.device_id for r in rows} - reported if key in policy.values else set()
            if unreported:  # targeted devices without a row for the setting are Pending for it
                recount["pending"] += len(unreported)
            assert {s: n for s, n in by_key[key].counts.items() if n} == dict(recount)
            for status in recount:
                wanted = {r.device_id for r in settings_rows if r.setting_key == key and r.status == status}
                wanted |= unreported if status == "pending" else set()
                page, total = queries.policy_device_rows(
                    policy, DeviceFilters(setting=key, setting_status=status), per_page=100
                )
                assert total == len(wanted) and {r.device_id for r in page} == wanted
    # Drill-in: per-setting rows and the other policies that manage the same setting
    for device in devices:
        for policy in policies:
            mine = {
                r.setting_key: r for r in DeviceSettingStatus.objects.filter(device=device, policy=policy)
            }
            shown = {r.key: r for r in queries.device_setting_rows(device, policy)}
            assert set(shown) == set(mine)
            for key, row in shown.items():
                assert row.status == mine[key].status
                others = set(
                    DeviceSettingStatus.objects.filter(device=device, setting_key=key)
                    .exclude(policy=policy)
                    .values_list("policy_id", flat=True)
                )
                named = set(mine[key].conflict_policy_ids or [])
                assert {o.policy.pk for o in row.others} == others | named
                assert {o.policy.pk for o in row.others if o.conflicting} == named
                assert {
                    o.policy.pk for o in queries.other_policies_for_setting(device, key, policy)
                } == others | named
    # Overview
    problem = set(
        DevicePolicyStatus.objects.filter(status__in=["error", "conflict"]).values_list(
            "device_id", flat=True
        )
    )
    assert queries.problem_device_count() == len(problem)
    with_problems = {
        pid
        for pid, counts in queries.all_policy_status_counts().items()
        if counts["error"] or counts["conflict"]
    }
    assert queries.problem_device_count(with_problems) == len(problem)  # the overview's form
    assert {r.device_id for r in queries.problem_rows_queryset()} == problem
    pairs = Counter(DevicePolicyStatus.objects.values_list("status", flat=True))
    assert queries.problem_pair_counts() == {"error": pairs["error"], "conflict": pairs["conflict"]}
    by_os = Counter(Device.objects.filter(managed_by="mde").values_list("os", flat=True))
    assert {k: v for k, v in queries.mde_devices_by_os().items() if v} == dict(by_os)
    groups, not_evaluated = queries.enrollment_breakdown()
    by_status = Counter(Device.objects.values_list("enrollment_status", flat=True))
    assert {g.status: g.count for g in groups if g.count} == {s: n for s, n in by_status.items() if s}
    assert not_evaluated == by_status[""]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=6))
def test_every_report_query_equals_a_recount_of_the_raw_rows(world, steps):
    devices, policies = world
    for action, *args in steps:
        if action == "checkin":
            indexes, fault = args
            chosen = [devices[i] for i in sorted(indexes)]
            f.make_due(*chosen)
            f.checkin(*chosen, fault_rate=fault)
        elif action == "edit":
            index, changes = args
            policy = policies[index]
            policy.values = {k: CHOICES[k][v % len(CHOICES[k])] for k, v in changes.items()}
            policy.save()
        elif action == "pending":
            indexes, policy_indexes = args
            mark_pending([devices[i].pk for i in indexes], [policies[i].pk for i in policy_indexes])
        _check_every_report(devices, policies)
