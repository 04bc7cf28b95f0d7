"""The simulated agent, talking to the service only through the device channel, produces every status."""

from __future__ import annotations

import pytest

from devices import agent
from devices.checkins import simulate_restart
from devices.models import Device
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _state(device) -> agent.AgentState:
    return agent.AgentState.from_dict(Device.objects.get(pk=device.pk).agent_state)


def test_tamper_protection_refuses_a_policy_that_turns_off_real_time_protection():
    g = f.group("Workstations")
    d = f.device("PC-001", groups=[g], tamper=True)
    f.policy("Disable RTP", {f.REALTIME: 0, f.PUA: 1}, include=[g])

    f.checkin(d)

    rows = f.setting_rows(d)
    refused = rows[("Disable RTP", f.REALTIME)]
    assert refused.status == "error"
    assert refused.error_code == agent.TAMPER_PROTECTION_ERROR
    assert refused.error_code_hex == "0x87D1FDE8"
    assert "Tamper Protection" in refused.message
    assert refused.value == 1  # the value still in effect on the device
    assert rows[("Disable RTP", f.PUA)].status == "succeeded"
    assert f.statuses(d) == {"Disable RTP": "error"}
    assert _state(d).preferences["DisableRealtimeMonitoring"] is False


def test_with_tamper_protection_off_the_same_policy_applies():
    g = f.group("Lab")
    d = f.device("LAB-001", groups=[g], tamper=False)
    f.policy("Disable RTP", {f.REALTIME: 0}, include=[g])

    f.checkin(d)

    assert f.setting_rows(d)[("Disable RTP", f.REALTIME)].status == "succeeded"
    assert f.statuses(d) == {"Disable RTP": "succeeded"}
    assert _state(d).preferences["DisableRealtimeMonitoring"] is True


def test_turning_tamper_protection_off_on_the_device_lets_the_next_check_in_succeed():
    g = f.group("Workstations")
    d = f.device("PC-002", groups=[g], tamper=True)
    f.policy("Disable behaviour monitoring", {f.BEHAVIOR: 0}, include=[g])
    f.checkin(d)
    assert f.statuses(d) == {"Disable behaviour monitoring": "error"}

    Device.objects.filter(pk=d.pk).update(tamper_protection=False)
    f.make_due(d)
    f.checkin(d)

    assert f.statuses(d) == {"Disable behaviour monitoring": "succeeded"}


def test_restart_bound_settings_stay_pending_until_the_device_restarts():
    g = f.group("Workstations")
    d = f.device("PC-003", groups=[g])
    f.policy("Local admin merge", {f.LOCALADMINMERGE: 1}, include=[g])

    f.checkin(d)
    row = f.setting_rows(d)[("Local admin merge", f.LOCALADMINMERGE)]
    assert row.status == "pending"
    assert row.message == agent.RESTART_REQUIRED_MESSAGE
    assert f.statuses(d) == {"Local admin merge": "pending"}

    f.make_due(d)
    f.checkin(d)  # no restart yet: still pending
    assert f.statuses(d) == {"Local admin merge": "pending"}

    assert simulate_restart([d.pk]) == 1
    f.make_due(d)
    f.checkin(d)
    assert f.setting_rows(d)[("Local admin merge", f.LOCALADMINMERGE)].status == "succeeded"
    assert f.statuses(d) == {"Local admin merge": "succeeded"}


def test_every_status_reaches_the_report_and_policies_roll_up_worst_status_wins():
    g = f.group("Everything")
    d = f.device("PC-004", groups=[g], tamper=True)
    f.policy("Baseline", {f.PUA: 1, f.SCRIPT_SCANNING: 1}, include=[g])
    f.policy("Tamper", {f.BEHAVIOR: 0, f.SCRIPT_SCANNING: 1}, include=[g])
    f.policy("PUA audit", {f.PUA: 2}, include=[g])
    f.policy("Deprecated IPS", {f.IPS: 1}, include=[g])
    f.policy("Restart", {f.LOCALADMINMERGE: 1}, include=[g])

    f.checkin(d)

    rows = f.setting_rows(d)
    assert rows[("Baseline", f.SCRIPT_SCANNING)].status == "succeeded"
    assert rows[("Tamper", f.SCRIPT_SCANNING)].status == "succeeded"  # same value from two policies
    assert rows[("Tamper", f.BEHAVIOR)].status == "error"
    assert rows[("Baseline", f.PUA)].status == "conflict"
    assert rows[("PUA audit", f.PUA)].status == "conflict"
    assert rows[("Deprecated IPS", f.IPS)].status == "not_applicable"
    assert "isn't supported" in rows[("Deprecated IPS", f.IPS)].message
    assert rows[("Restart", f.LOCALADMINMERGE)].status == "pending"
    assert f.statuses(d) == {
        "Baseline": "conflict",  # conflict beats succeeded
        "Tamper": "error",  # error beats succeeded
        "PUA audit": "conflict",
        "Deprecated IPS": "not_applicable",
        "Restart": "pending",
    }
    assert {r.status for r in rows.values()} == {
        "succeeded",
        "error",
        "conflict",
        "not_applicable",
        "pending",
    }


def test_a_conflict_row_names_the_other_policies_and_keeps_each_policys_own_value():
    g = f.group("Conflicted")
    d = f.device("PC-005", groups=[g])
    a = f.policy("PUA block", {f.PUA: 1}, include=[g])
    b = f.policy("PUA audit", {f.PUA: 2}, include=[g])

    f.checkin(d)

    rows = f.setting_rows(d)
    assert rows[("PUA block", f.PUA)].conflict_policy_ids == [b.pk]
    assert rows[("PUA audit", f.PUA)].conflict_policy_ids == [a.pk]
    assert rows[("PUA block", f.PUA)].value == 1
    assert rows[("PUA audit", f.PUA)].value == 2
    # nothing was applied for a conflicting setting: the device keeps its default
    assert _state(d).preferences["PUAProtection"] == agent.default_preferences()["PUAProtection"]


def test_merged_exclusions_map_back_to_every_policy_that_configures_them():
    g = f.group("Merge")
    d = f.device("PC-006", groups=[g])
    f.policy("Excl A", {f.EXCLUDED_PATHS: ["C:\\Data"]}, profile=f.AV_EXCLUSIONS, include=[g])
    f.policy("Excl B", {f.EXCLUDED_PATHS: ["D:\\Logs"]}, profile=f.AV_EXCLUSIONS, include=[g])

    f.checkin(d)

    rows = f.setting_rows(d)
    for name in ("Excl A", "Excl B"):
        assert rows[(name, f.EXCLUDED_PATHS)].status == "succeeded"
        assert rows[(name, f.EXCLUDED_PATHS)].value == ["C:\\Data", "D:\\Logs"]
        assert rows[(name, f.EXCLUDED_PATHS)].conflict_policy_ids == []
    assert _state(d).preferences["ExclusionPath"] == ["C:\\Data", "D:\\Logs"]


def test_windows_security_experience_is_not_applicable_for_mde_devices_but_applies_to_intune_devices():
    from policies.catalog import get_catalog

    key = next(s.id for s in get_catalog().profile(f.WSE).settings if s.type == "choice" and s.options)
    value = get_catalog().setting(key).options[0].value
    g = f.group("Mixed")
    mde = f.device("PC-MDE", groups=[g])
    intune = f.device("PC-INTUNE", groups=[g], intune=True)
    f.policy("WSE", {key: value}, profile=f.WSE, include=[g])

    f.checkin(mde, intune)

    assert f.statuses(mde) == {"WSE": "not_applicable"}
    assert "only applies to devices enrolled in Intune" in f.setting_rows(mde)[("WSE", key)].message
    assert f.statuses(intune) == {"WSE": "succeeded"}


def test_an_intune_enrolled_device_checks_in_through_the_intune_channel_and_honours_assignment_filters():
    from policies.models import AssignmentFilter
    from reports.models import DevicePolicyStatus

    only_win11 = AssignmentFilter.objects.create(
        name="Win 11", rule='(device.osVersion -startsWith "10.0.22")'
    )
    g = f.group("Filtered")
    mde_win10 = f.device("MDE-W10", groups=[g], os_version="10.0.19045")
    intune_win10 = f.device("INT-W10", groups=[g], intune=True, os_version="10.0.19045")
    intune_win11 = f.device("INT-W11", groups=[g], intune=True, os_version="10.0.22631")
    f.policy("Win 11 only", {f.PUA: 1}, include=[g], filter=only_win11, filter_mode="include")

    f.checkin(mde_win10, intune_win10, intune_win11)

    assert f.statuses(mde_win10) == {"Win 11 only": "succeeded"}  # MDE devices ignore filters (the seed)
    assert f.statuses(intune_win10) == {}  # filtered out
    assert f.statuses(intune_win11) == {"Win 11 only": "succeeded"}
    assert DevicePolicyStatus.objects.get(device=intune_win11).channel == "intune"
    assert DevicePolicyStatus.objects.get(device=mde_win10).channel == "mde"


def test_a_policy_for_another_platform_is_not_applicable():
    g = f.group("Linux fleet")
    d = f.device("web-01", groups=[g], os="linux")
    f.policy("Windows AV", {f.PUA: 1}, include=[g])

    f.checkin(d)

    assert f.statuses(d) == {"Windows AV": "not_applicable"}
    assert "Linux" in f.setting_rows(d)[("Windows AV", f.PUA)].message


def test_an_excluded_group_wins_over_an_included_one():
    inc, exc = f.group("Included"), f.group("Excluded")
    d = f.device("PC-007", groups=[inc, exc])
    f.policy("AV", {f.PUA: 1}, include=[inc], exclude=[exc])

    f.checkin(d)

    assert f.statuses(d) == {}


def test_the_get_mp_preference_listing_shows_what_was_applied():
    g = f.group("Listing")
    d = f.device("PC-008", groups=[g])
    f.policy("AV", {f.PUA: 1}, include=[g])
    f.policy("Excl", {f.EXCLUDED_EXTENSIONS: ["log", "tmp"]}, profile=f.AV_EXCLUSIONS, include=[g])

    f.checkin(d)

    text = agent.format_mp_preference(_state(d))
    assert "PUAProtection" in text
    assert any(line.startswith("PUAProtection") and line.endswith(": 1") for line in text.splitlines())
    assert any(line.startswith("ExclusionExtension") and "{log, tmp}" in line for line in text.splitlines())


def test_the_demo_fault_rate_fails_settings_that_tamper_protection_does_not_guard():
    g = f.group("Faulty")
    d = f.device("PC-009", groups=[g])
    f.policy("AV", {f.PUA: 1, f.REALTIME: 1}, include=[g])

    f.checkin(d, fault_rate=1.0)

    rows = f.setting_rows(d)
    assert rows[("AV", f.PUA)].status == "error"
    assert rows[("AV", f.PUA)].error_code == agent.GENERIC_ERROR
    assert rows[("AV", f.REALTIME)].status == "succeeded"  # tamper-protected settings aren't faulted


def test_with_no_fault_rate_set_nothing_fails(settings):
    settings.AGENT_FAULT_RATE = 0.0
    g = f.group("Clean")
    devices = [f.device(f"PC-1{i:02d}", groups=[g]) for i in range(10)]
    f.policy("AV", {f.PUA: 1, f.SCRIPT_SCANNING: 1}, include=[g])

    from devices.checkins import claim_devices, run_checkins

    ids, lease = claim_devices([d.pk for d in devices])
    run_checkins(ids, lease=lease)

    assert all(f.statuses(d) == {"AV": "succeeded"} for d in devices)


def test_a_device_that_lost_management_stops_checking_in_and_its_rows_go():
    from reports.ingest import recount, stored_counts

    g = f.group("Leaving")
    d = f.device("PC-010", groups=[g])
    f.policy("AV", {f.PUA: 1}, include=[g])
    f.checkin(d)
    assert f.statuses(d)

    Device.objects.filter(pk=d.pk).update(managed_by="none", management_type="")
    f.make_due(d)
    run = f.checkin(d)

    assert run.retired == 1
    assert f.statuses(d) == {}
    assert Device.objects.get(pk=d.pk).next_checkin_at is None
    assert recount() == stored_counts()
