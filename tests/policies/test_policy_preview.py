"""The impact preview: devices by channel, not applicable, conflicts and merges, all decided by the engine."""

from __future__ import annotations

import pytest

from devices.models import Device, GroupMember
from policies import engine, preview, services
from policies.catalog import get_catalog
from policies.models import AssignmentFilter
from tests.policies.conftest import AV, AV_EXCLUSIONS, WSE

pytestmark = pytest.mark.django_db

D = "device_vendor_msft_policy_config_defender_"
REALTIME = D + "allowrealtimemonitoring"
PATHS = D + "excludedpaths"


def candidate(profile=AV, values=None, include=(), exclude=(), filter_id=None, filter_mode="", policy_id=0):
    return preview.policy_input(
        policy_id=policy_id,
        name="New policy",
        profile=profile,
        platform="windows",
        values=values or {REALTIME: 1},
        include=[g.pk for g in include],
        exclude=[g.pk for g in exclude],
        filter_id=filter_id,
        filter_mode=filter_mode,
    )


def test_an_unassigned_policy_reaches_no_device(fleet):
    result = preview.impact(candidate())
    assert not result.assigned and result.receive_total == 0


def test_devices_are_split_by_channel_and_the_rest_is_not_applicable_by_scope(fleet):
    result = preview.impact(candidate(include=[fleet.workstations]))
    assert result.in_groups == 5
    assert result.receive == {"mde": 3, "intune": 1}
    assert [(kind, n) for kind, _, n in result.not_applicable] == [("scope", 1)]
    assert "Configuration Manager" in result.not_applicable[0][1]
    outcomes = {row.name: row.outcome for row in result.devices}
    assert outcomes == {
        "WS-001": "receives",
        "WS-002": "receives",
        "WS-003": "receives",
        "WS-INTUNE-1": "receives",
        "WS-CM-1": "not_applicable",
    }


def test_other_platforms_are_not_applicable_and_excluded_groups_are_not_targeted(fleet):
    result = preview.impact(candidate(include=[fleet.all_mde], exclude=[fleet.sql]))
    assert result.in_groups == 7 and result.excluded == 2
    assert result.receive == {"mde": 4}
    assert [(kind, n) for kind, _, n in result.not_applicable] == [("platform", 1)]  # the Mac
    assert "runs macOS" in result.not_applicable[0][1]
    assert result.not_targeted[0][1] == 2 and "excluded" in result.not_targeted[0][0]


def test_it_names_the_settings_that_conflict_with_which_policies_on_which_devices(fleet):
    baseline = services.create_policy(
        AV, "windows", "AV baseline", "", {REALTIME: 1}, {"include": [fleet.all_mde.pk]}
    )
    result = preview.impact(candidate(values={REALTIME: 0}, include=[fleet.sql]))
    assert len(result.conflicts) == 1
    conflict = result.conflicts[0]
    assert conflict.setting_key == REALTIME and conflict.display_name == "Allow Realtime Monitoring"
    assert [(p.name, p.policy_id) for p in conflict.policies] == [("AV baseline", str(baseline.policy_id))]
    assert (conflict.device_count, conflict.devices) == (2, ["SQL-01", "SQL-02"])
    assert {row.outcome for row in result.devices} == {"conflict"}
    # The same value is no conflict.
    assert preview.impact(candidate(values={REALTIME: 1}, include=[fleet.sql])).conflicts == []


def test_it_shows_which_exclusion_lists_merge_instead_of_conflicting(fleet):
    services.create_policy(
        AV_EXCLUSIONS,
        "windows",
        "Build exclusions",
        "",
        {PATHS: ["C:\\Build"]},
        {"include": [fleet.build.pk]},
    )
    result = preview.impact(candidate(AV_EXCLUSIONS, {PATHS: ["D:\\SQLData"]}, include=[fleet.sql]))
    assert result.conflicts == []
    assert len(result.merges) == 1
    merge = result.merges[0]
    assert (merge.display_name, [p.name for p in merge.policies], merge.devices) == (
        "Excluded Paths",
        ["Build exclusions"],
        ["SQL-02"],
    )


def test_editing_a_saved_policy_replaces_its_saved_self(fleet):
    policy = services.create_policy(AV, "windows", "AV", "", {REALTIME: 1}, {"include": [fleet.sql.pk]})
    edited = candidate(values={REALTIME: 0}, include=[fleet.sql], policy_id=policy.pk)
    assert preview.impact(edited).conflicts == []  # no conflict with its own old values


def test_mde_devices_ignore_assignment_filters_and_intune_devices_honour_them(fleet):
    never = AssignmentFilter.objects.create(name="Never", rule='(device.deviceName -eq "nothing")')
    result = preview.impact(
        candidate(include=[fleet.workstations], filter_id=never.pk, filter_mode="include")
    )
    assert result.filter_ignored == 3
    assert result.receive == {"mde": 3}  # the Intune device doesn't match the filter
    assert result.excluded == 1 and "doesn't match assignment filter 'Never'" in result.not_targeted[0][0]


def test_an_intune_only_profile_is_not_applicable_on_mde_devices(fleet):
    values = {"device_vendor_msft_policy_config_windowsdefendersecuritycenter_companyname": "Contoso"}
    result = preview.impact(candidate(WSE, values, include=[fleet.workstations]))
    assert result.receive == {"intune": 1}
    reasons = {reason: n for _, reason, n in result.not_applicable}
    assert any("only applies to devices enrolled in Intune" in r and n == 3 for r, n in reasons.items())


def test_unsupported_settings_are_listed_for_the_devices_that_skip_them(fleet):
    values = {REALTIME: 1, D + "allowintrusionpreventionsystem": 1}
    result = preview.impact(candidate(values=values, include=[fleet.workstations]))
    assert [(name, n) for name, _, n in result.skipped_settings] == [
        ("[Deprecated] Allow Intrusion Prevention System", 3)
    ]


def test_chunked_and_grouped_reading_gives_the_engines_own_answer(fleet, monkeypatch):
    """Same counts as engine.preview over every device, one by one, with tiny chunks."""
    monkeypatch.setattr(preview, "CHUNK", 2)
    for i in range(12):
        device = fleet.device(
            f"EXTRA-{i:02d}", "windows" if i % 3 else "windows_server", ["mde", "intune", "none"][i % 3]
        )
        GroupMember.objects.create(group=fleet.all_mde if i % 2 else fleet.workstations, device=device)
    services.create_policy(AV, "windows", "Other", "", {REALTIME: 0}, {"include": [fleet.workstations.pk]})
    cand = candidate(values={REALTIME: 1}, include=[fleet.all_mde, fleet.workstations], exclude=[fleet.pilot])
    result = preview.impact(cand)

    others = preview.saved_policy_inputs()
    memberships: dict[int, set[int]] = {}
    for device_id, group_id in GroupMember.objects.values_list("device_id", "group_id"):
        memberships.setdefault(device_id, set()).add(group_id)
    in_groups = [d for d in Device.objects.all() if memberships.get(d.pk, set()) & set(cand.include_groups)]
    facts = preview.device_facts(in_groups, memberships, {})
    direct = engine.preview(facts, [cand, *others], get_catalog())
    mine = direct.policies[0]
    assert result.in_groups == len(in_groups)
    assert result.receive == {k: v for k, v in mine.applies.items() if v}
    assert result.not_applicable_total == sum(mine.not_applicable.values())
    assert [c.device_count for c in result.conflicts] == [
        len(c.device_ids) for c in direct.conflicts if 0 in c.policy_ids
    ]
    assert result.device_classes < len(in_groups)


def test_filters_on_shared_properties_are_evaluated_per_device_too(fleet):
    """A filter that reads no per-device property is evaluated once per distinct device shape; same answers."""
    win11 = AssignmentFilter.objects.create(name="Win11", rule='(device.osVersion -startsWith "10.0.22")')
    other = fleet.device("WS-INTUNE-OLD", channel="intune")
    other.os_version = "10.0.19045.4291"
    other.save()
    GroupMember.objects.create(group=fleet.workstations, device=other)
    result = preview.impact(
        candidate(include=[fleet.workstations], filter_id=win11.pk, filter_mode="exclude")
    )
    outcomes = {row.name: row.outcome for row in result.devices}
    assert outcomes["WS-INTUNE-1"] == "excluded"  # Windows 11 on Intune: filtered out
    assert outcomes["WS-INTUNE-OLD"] == "receives"  # Windows 10 on Intune: not matched, so kept
    assert outcomes["WS-001"] == "receives" and result.filter_ignored == 3  # MDE devices ignore the filter
