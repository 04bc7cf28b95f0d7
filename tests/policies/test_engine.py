"""Behaviour of the policy-resolution engine (pure: real catalog, no database)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.catalog import get_catalog
from policies.engine import (
    STATUS_APPLY,
    STATUS_CONFLICT,
    STATUS_NOT_APPLICABLE,
    STATUS_NOT_TARGETED,
    DeviceFacts,
    PolicyInput,
    Resolution,
    desired_fingerprint,
    preview,
    resolve,
    worst_status,
)

CATALOG = get_catalog()

# Profiles (exact names from setting-catalog.json)
AV = "Microsoft Defender Antivirus"
AV_EXCLUSIONS = "Microsoft Defender Antivirus exclusions"
WSE = "Windows Security Experience"
FIREWALL = "Microsoft Defender Firewall"
FIREWALL_RULES = "Microsoft Defender Firewall Rules"
EDR = "Endpoint detection and response"
ASR = "Attack Surface Reduction Rules"

# Settings (ids from setting-catalog.json)
CLOUD = "device_vendor_msft_policy_config_defender_allowcloudprotection"
REALTIME = "device_vendor_msft_policy_config_defender_allowrealtimemonitoring"
IPS = "device_vendor_msft_policy_config_defender_allowintrusionpreventionsystem"
LOCAL_ADMIN_MERGE = "device_vendor_msft_defender_configuration_disablelocaladminmerge"
TELEMETRY = "device_vendor_msft_windowsadvancedthreatprotection_configuration_telemetryreportingfrequency"
SAMPLE_SHARING = "device_vendor_msft_windowsadvancedthreatprotection_configuration_samplesharing"
PATHS = "device_vendor_msft_policy_config_defender_excludedpaths"
EXTENSIONS = "device_vendor_msft_policy_config_defender_excludedextensions"
PROCESSES = "device_vendor_msft_policy_config_defender_excludedprocesses"
ASR_ONLY_EXCLUSIONS = "device_vendor_msft_policy_config_defender_attacksurfacereductiononlyexclusions"
RULE_DRIVERS = "device_vendor_msft_policy_config_defender_attacksurfacereductionrules_blockabuseofexploitedvulnerablesigneddrivers"
RULE_DRIVERS_EXCLUSIONS = RULE_DRIVERS + "_perruleexclusions"
RULE_LSASS = (
    "device_vendor_msft_policy_config_defender_attacksurfacereductionrules"
    "_blockcredentialstealingfromwindowslocalsecurityauthoritysubsystem"
)
COMPANY = "device_vendor_msft_policy_config_windowsdefendersecuritycenter_companyname"
DOMAIN_FIREWALL = "vendor_msft_firewall_mdmstore_domainprofile_enablefirewall"
IPSEC_EXEMPT = "vendor_msft_firewall_mdmstore_global_ipsecexempt"
FW_RULES = "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}"
FW_NAME = FW_RULES + "_name"
FW_DIRECTION = FW_RULES + "_direction"
FW_ACTION = FW_RULES + "_action_type"
FW_PORTS = FW_RULES + "_localportranges"

ALL_IDS = [
    CLOUD,
    REALTIME,
    IPS,
    LOCAL_ADMIN_MERGE,
    TELEMETRY,
    SAMPLE_SHARING,
    PATHS,
    EXTENSIONS,
    PROCESSES,
    ASR_ONLY_EXCLUSIONS,
    RULE_DRIVERS,
    RULE_DRIVERS_EXCLUSIONS,
    RULE_LSASS,
    COMPANY,
    DOMAIN_FIREWALL,
    IPSEC_EXEMPT,
    FW_RULES,
    FW_NAME,
    FW_DIRECTION,
    FW_ACTION,
    FW_PORTS,
]


def asr(rule_id: str, label: str) -> str:
    """The catalog option value for an ASR rule mode ("Off", "Block", "Audit", "Warn")."""
    (value,) = [o.value for o in CATALOG.setting(rule_id).options if o.label == label]
    return value


def device(
    device_id: str = "dev-1",
    os: str = "windows",
    channel: str = "mde",
    groups: frozenset[int] | set[int] = frozenset({1}),
    filters: dict[int, bool] | None = None,
) -> DeviceFacts:
    return DeviceFacts(
        device_id=device_id,
        os=os,
        channel=channel,
        group_ids=frozenset(groups),
        filter_matches=filters or {},
    )


def policy(
    pid: int,
    values: dict[str, object],
    profile: str = AV,
    platform: str = "windows",
    include: frozenset[int] | set[int] = frozenset({1}),
    exclude: frozenset[int] | set[int] = frozenset(),
    filter_id: int | None = None,
    filter_mode: str | None = None,
    name: str | None = None,
) -> PolicyInput:
    return PolicyInput(
        id=pid,
        name=name or f"Policy {pid}",
        profile=profile,
        platform=platform,
        values=values,
        include_groups=frozenset(include),
        exclude_groups=frozenset(exclude),
        filter_id=filter_id,
        filter_mode=filter_mode,
    )


def fw_rule(name: str, direction: str = "in", action: str = "1", ports: list[str] | None = None) -> dict:
    rule: dict[str, object] = {FW_NAME: name, FW_DIRECTION: direction, FW_ACTION: action}
    if ports is not None:
        rule[FW_PORTS] = ports
    return rule


def run(dev: DeviceFacts, *policies: PolicyInput) -> Resolution:
    return resolve(dev, list(policies), CATALOG)


def profile_supports(profile: str, platform: str) -> bool:
    return platform in CATALOG.profile(profile).platforms


# ---------------------------------------------------------------------------------------------------------
# Test data sanity
# ---------------------------------------------------------------------------------------------------------


def test_every_setting_id_used_by_these_tests_exists_in_the_catalog():
    for setting_id in ALL_IDS:
        assert CATALOG.setting(setting_id).id == setting_id


# ---------------------------------------------------------------------------------------------------------
# Targeting
# ---------------------------------------------------------------------------------------------------------


def test_a_policy_targets_a_device_that_is_in_one_of_its_included_groups():
    result = run(device(groups={7, 9}), policy(1, {CLOUD: 1}, include={3, 9}))
    assert result.policies[1].targeted
    assert result.policies[1].status == STATUS_APPLY
    assert result.desired == {CLOUD: 1}


def test_a_device_in_an_excluded_group_is_not_targeted_even_when_it_is_also_included():
    result = run(device(groups={1, 2}), policy(1, {CLOUD: 1}, include={1}, exclude={2}))
    outcome = result.policies[1]
    assert not outcome.targeted
    assert outcome.status == STATUS_NOT_TARGETED
    assert "excluded" in outcome.reason
    assert result.desired == {}
    assert 1 not in result.per_policy_settings


def test_a_device_in_no_included_group_is_not_targeted():
    result = run(device(groups={5}), policy(1, {CLOUD: 1}, include={1}))
    assert not result.policies[1].targeted
    assert result.settings == {}
    assert result.desired == {}


def test_a_policy_with_no_included_groups_targets_nothing_even_with_exclusions():
    result = run(device(groups={1}), policy(1, {CLOUD: 1}, include=set(), exclude={2}))
    assert not result.policies[1].targeted
    assert "isn't assigned" in result.policies[1].reason


def test_an_untargeted_policy_never_causes_a_conflict():
    result = run(device(groups={1}), policy(1, {CLOUD: 1}), policy(2, {CLOUD: 0}, include={2}))
    assert result.settings[CLOUD].status == STATUS_APPLY
    assert result.settings[CLOUD].sources == (1,)
    assert result.desired == {CLOUD: 1}


# ---------------------------------------------------------------------------------------------------------
# Assignment filters
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, matches", [("include", False), ("exclude", True)])
def test_devices_managed_by_mde_ignore_assignment_filters(mode, matches):
    dev = device(channel="mde", filters={42: matches})
    result = run(dev, policy(1, {CLOUD: 1}, filter_id=42, filter_mode=mode))
    assert result.policies[1].targeted
    assert result.policies[1].filter_ignored
    assert result.desired == {CLOUD: 1}


def test_intune_devices_get_an_include_filtered_policy_only_when_they_match_the_filter():
    matching = run(
        device(channel="intune", filters={42: True}),
        policy(1, {CLOUD: 1}, filter_id=42, filter_mode="include"),
    )
    other = run(
        device(channel="intune", filters={42: False}),
        replace(policy(1, {CLOUD: 1}, filter_id=42, filter_mode="include"), filter_name="Windows 11 only"),
    )
    assert matching.policies[1].targeted and not matching.policies[1].filter_ignored
    assert matching.desired == {CLOUD: 1}
    assert not other.policies[1].targeted
    reason = other.policies[1].reason
    assert "assignment filter 'Windows 11 only'" in reason and "42" not in reason  # named, never by its id
    assert other.desired == {}


def test_intune_devices_matching_an_exclude_filter_are_not_targeted():
    excluded = run(
        device(channel="intune", filters={42: True}),
        policy(1, {CLOUD: 1}, filter_id=42, filter_mode="exclude"),
    )
    kept = run(
        device(channel="intune", filters={42: False}),
        policy(1, {CLOUD: 1}, filter_id=42, filter_mode="exclude"),
    )
    assert not excluded.policies[1].targeted
    assert kept.policies[1].targeted


def test_a_filter_missing_from_the_device_matches_counts_as_not_matching():
    dev = device(channel="intune", filters={})
    include = run(dev, policy(1, {CLOUD: 1}, filter_id=42, filter_mode="include"))
    exclude = run(dev, policy(1, {CLOUD: 1}, filter_id=42, filter_mode="exclude"))
    assert not include.policies[1].targeted
    assert exclude.policies[1].targeted


def test_group_exclusion_still_wins_for_mde_devices_that_ignore_filters():
    dev = device(channel="mde", groups={1, 2}, filters={42: True})
    result = run(dev, policy(1, {CLOUD: 1}, exclude={2}, filter_id=42, filter_mode="include"))
    assert not result.policies[1].targeted


def test_intune_chooses_the_filter_per_group_assignment_and_one_passing_assignment_is_enough():
    # Group 1 is assigned with "Windows 11 only" (include), group 2 with no filter.
    per_row = replace(
        policy(1, {CLOUD: 1}, include={1, 2}),
        include_filters={1: (42, "include")},
        filter_names={42: "Windows 11 only"},
    )
    in_filtered_group_only = run(device(channel="intune", groups={1}, filters={42: False}), per_row)
    in_both_groups = run(device(channel="intune", groups={1, 2}, filters={42: False}), per_row)
    in_unfiltered_group = run(device(channel="intune", groups={2}, filters={42: False}), per_row)

    assert not in_filtered_group_only.policies[1].targeted
    assert in_filtered_group_only.policies[1].reason == (
        "The device doesn't match assignment filter 'Windows 11 only', which this policy uses to include devices."
    )
    assert in_both_groups.policies[1].targeted  # the unfiltered assignment of group 2 reaches it
    assert in_unfiltered_group.policies[1].targeted and not in_unfiltered_group.policies[1].filter_ignored


def test_each_group_assignment_can_use_its_own_filter_and_mode():
    per_row = replace(
        policy(1, {CLOUD: 1}, include={1, 2}),
        include_filters={1: (42, "include"), 2: (43, "exclude")},
        filter_names={42: "Laptops", 43: "Kiosks"},
    )
    neither = run(device(channel="intune", groups={1, 2}, filters={42: False, 43: True}), per_row)
    through_group_2 = run(device(channel="intune", groups={1, 2}, filters={42: False, 43: False}), per_row)
    mde = run(device(channel="mde", groups={1, 2}, filters={42: False, 43: True}), per_row)

    assert not neither.policies[1].targeted
    assert "'Laptops'" in neither.policies[1].reason and "'Kiosks'" in neither.policies[1].reason
    assert through_group_2.policies[1].targeted
    assert mde.policies[1].targeted and mde.policies[1].filter_ignored  # MDE devices ignore every filter


def test_an_unknown_filter_mode_is_rejected():
    with pytest.raises(ValueError, match="filter mode"):
        run(device(), policy(1, {CLOUD: 1}, filter_id=1, filter_mode="sometimes"))


# ---------------------------------------------------------------------------------------------------------
# Management channel
# ---------------------------------------------------------------------------------------------------------


def test_when_configuration_manager_is_the_authority_every_targeted_policy_is_not_applicable():
    result = run(
        device(channel="configmgr"),
        policy(1, {CLOUD: 1}),
        policy(2, {PATHS: [r"C:\Temp"]}, profile=AV_EXCLUSIONS),
        policy(3, {CLOUD: 0}, include={9}),
    )
    for pid in (1, 2):
        outcome = result.policies[pid]
        assert outcome.targeted and not outcome.applicable
        assert outcome.status == STATUS_NOT_APPLICABLE
        assert "Configuration Manager" in outcome.reason
    assert result.policies[3].status == STATUS_NOT_TARGETED
    assert result.per_policy_settings == {
        1: {CLOUD: STATUS_NOT_APPLICABLE},
        2: {PATHS: STATUS_NOT_APPLICABLE},
    }
    assert result.settings[CLOUD].status == STATUS_NOT_APPLICABLE
    assert result.desired == {}


def test_unmanaged_devices_get_targeted_policies_as_not_applicable():
    result = run(device(channel="none"), policy(1, {CLOUD: 1}))
    assert result.policies[1].status == STATUS_NOT_APPLICABLE
    assert "isn't managed" in result.policies[1].reason
    assert result.desired == {}


def test_intune_devices_apply_settings_the_mde_channel_does_not_support():
    edr = policy(1, {TELEMETRY: "2", SAMPLE_SHARING: 1}, profile=EDR)
    av = policy(2, {IPS: 1}, profile=AV)
    result = run(device(channel="intune"), edr, av)
    assert result.desired == {TELEMETRY: "2", SAMPLE_SHARING: 1, IPS: 1}
    assert result.per_policy_settings[1] == {SAMPLE_SHARING: STATUS_APPLY, TELEMETRY: STATUS_APPLY}


def test_intune_devices_apply_the_windows_security_experience_profile():
    result = run(device(channel="intune"), policy(1, {COMPANY: "Contoso"}, profile=WSE))
    assert result.policies[1].status == STATUS_APPLY
    assert result.desired == {COMPANY: "Contoso"}


def test_mde_devices_do_not_process_the_windows_security_experience_profile():
    result = run(device(channel="mde"), policy(1, {COMPANY: "Contoso"}, profile=WSE))
    outcome = result.policies[1]
    assert outcome.status == STATUS_NOT_APPLICABLE
    assert "Windows Security Experience" in outcome.reason
    assert "Intune" in outcome.reason
    assert result.per_policy_settings[1] == {COMPANY: STATUS_NOT_APPLICABLE}
    assert result.desired == {}


def test_mde_devices_skip_expedite_telemetry_reporting_frequency_but_apply_the_rest_of_the_edr_policy():
    result = run(device(channel="mde"), policy(1, {TELEMETRY: "2", SAMPLE_SHARING: 1}, profile=EDR))
    assert result.per_policy_settings[1] == {SAMPLE_SHARING: STATUS_APPLY, TELEMETRY: STATUS_NOT_APPLICABLE}
    assert result.desired == {SAMPLE_SHARING: 1}
    telemetry = result.settings[TELEMETRY]
    assert telemetry.status == STATUS_NOT_APPLICABLE
    assert telemetry.sources == (1,)
    assert "isn't supported" in telemetry.reason and "Intune" in telemetry.reason
    assert result.policies[1].status == STATUS_APPLY


def test_mde_devices_skip_allow_intrusion_prevention_system():
    result = run(device(channel="mde"), policy(1, {IPS: 1, CLOUD: 1}))
    assert result.settings[IPS].status == STATUS_NOT_APPLICABLE
    assert result.desired == {CLOUD: 1}


def test_an_unsupported_setting_never_conflicts_on_mde_devices():
    result = run(device(channel="mde"), policy(1, {IPS: 1}), policy(2, {IPS: 0}))
    assert result.settings[IPS].status == STATUS_NOT_APPLICABLE
    assert result.settings[IPS].sources == (1, 2)
    assert result.policies[1].status == STATUS_NOT_APPLICABLE
    assert "None of the settings" in result.policies[1].reason


def test_unknown_channels_and_operating_systems_are_rejected():
    with pytest.raises(ValueError, match="channel"):
        run(device(channel="sccm"), policy(1, {CLOUD: 1}))
    with pytest.raises(ValueError, match="OS"):
        run(device(os="ios"), policy(1, {CLOUD: 1}))


# ---------------------------------------------------------------------------------------------------------
# Platform and profile
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("os", ["windows", "windows_server"])
def test_a_windows_policy_applies_to_windows_clients_and_servers(os):
    result = run(device(os=os), policy(1, {CLOUD: 1}))
    assert result.policies[1].status == STATUS_APPLY


@pytest.mark.parametrize("os", ["macos", "linux"])
def test_a_windows_policy_is_not_applicable_on_macos_and_linux(os):
    result = run(device(os=os), policy(1, {CLOUD: 1}))
    outcome = result.policies[1]
    assert outcome.status == STATUS_NOT_APPLICABLE
    assert "Windows" in outcome.reason and ("macOS" in outcome.reason or "Linux" in outcome.reason)
    assert result.desired == {}


@pytest.mark.parametrize("os", ["windows", "windows_server", "linux"])
def test_a_macos_policy_is_not_applicable_on_other_operating_systems(os):
    result = run(device(os=os), policy(1, {CLOUD: 1}, platform="macos"))
    assert result.policies[1].status == STATUS_NOT_APPLICABLE


def test_a_policy_whose_profile_is_not_offered_on_its_platform_is_not_applicable():
    assert not profile_supports(FIREWALL, "linux")
    result = run(device(os="linux"), policy(1, {DOMAIN_FIREWALL: "true"}, profile=FIREWALL, platform="linux"))
    assert result.policies[1].status == STATUS_NOT_APPLICABLE
    assert "isn't available" in result.policies[1].reason


LINUX_AV = "Microsoft Defender Antivirus (Linux)"
LINUX_AV_EXCLUSIONS = "Microsoft Defender Antivirus exclusions (Linux)"
LINUX_GLOBAL = "Microsoft Defender Global Exclusions (AV+EDR) (Linux)"
MAC_AV = "Microsoft Defender Antivirus (macOS)"
LX_CLOUD = "linux_mdatp_managed_cloudservice_enabled"
LX_EXCL = "linux_mdatp_managed_antivirusengine_exclusions"
LX_TTS = "linux_mdatp_managed_antivirusengine_threattypesettings"
MAC_HIDE_ICON = "com.apple.managedclient.preferences_hidestatusmenuicon"
MAC_TAMPER = "com.apple.managedclient.preferences_enforcementlevel_tamperprotection"


def lx_path(path: str) -> dict:
    return {
        LX_EXCL + "_item_$type": "excludedPath",
        LX_EXCL + "_item_path": path,
        LX_EXCL + "_item_isdirectory": True,
    }


def test_a_linux_antivirus_policy_applies_to_a_linux_device_and_not_to_windows_or_macos():
    linux_policy = policy(1, {LX_CLOUD: True}, profile=LINUX_AV, platform="linux")
    result = run(device(os="linux"), linux_policy)
    assert result.policies[1].status == STATUS_APPLY
    assert result.desired == {LX_CLOUD: True}
    for os in ("windows", "macos"):
        other = run(device(os=os), linux_policy)
        assert other.policies[1].status == STATUS_NOT_APPLICABLE and other.desired == {}
    # A Windows Antivirus policy no longer reaches Linux devices: each platform has its own profiles.
    assert run(device(os="linux"), policy(2, {CLOUD: 1}, platform="linux")).policies[2].status == (
        STATUS_NOT_APPLICABLE
    )


def test_linux_exclusions_from_the_antivirus_and_exclusions_profiles_merge_into_a_superset():
    result = run(
        device(os="linux"),
        policy(1, {LX_EXCL: [lx_path("/run"), lx_path("/opt/App")]}, profile=LINUX_AV, platform="linux"),
        policy(
            2,
            {LX_EXCL: [lx_path("/opt/app"), lx_path("/run")]},
            profile=LINUX_AV_EXCLUSIONS,
            platform="linux",
        ),
    )
    outcome = result.settings[LX_EXCL]
    assert outcome.status == STATUS_APPLY and outcome.merged and outcome.sources == (1, 2)
    # Case-sensitive file systems: /opt/App and /opt/app are two exclusions; /run once.
    assert [e[LX_EXCL + "_item_path"] for e in result.desired[LX_EXCL]] == ["/run", "/opt/App", "/opt/app"]


def test_linux_threat_type_settings_from_two_policies_conflict_when_they_differ():
    block = [{LX_TTS + "_item_key": "archive_bomb", LX_TTS + "_item_value": "block"}]
    audit = [{LX_TTS + "_item_key": "archive_bomb", LX_TTS + "_item_value": "audit"}]
    result = run(
        device(os="linux"),
        policy(1, {LX_TTS: block}, profile=LINUX_AV, platform="linux"),
        policy(2, {LX_TTS: audit}, profile=LINUX_AV, platform="linux"),
    )
    assert result.settings[LX_TTS].status == STATUS_CONFLICT
    assert LX_TTS not in result.desired


def test_a_macos_setting_without_microsoft_sense_is_not_applicable_on_the_mde_channel():
    mac_policy = policy(1, {MAC_HIDE_ICON: True, MAC_TAMPER: "block"}, profile=MAC_AV, platform="macos")
    result = run(device(os="macos"), mac_policy)
    assert result.settings[MAC_HIDE_ICON].status == STATUS_NOT_APPLICABLE
    assert (
        "isn't supported for devices managed by Microsoft Defender" in result.settings[MAC_HIDE_ICON].reason
    )
    assert result.desired == {MAC_TAMPER: "block"}
    # The same setting reaches a Mac enrolled in Intune (its catalog technologies include mdm).
    assert run(device(os="macos", channel="intune"), mac_policy).desired == {
        MAC_HIDE_ICON: True,
        MAC_TAMPER: "block",
    }


def test_a_policy_with_an_unknown_profile_is_not_applicable():
    result = run(device(), policy(1, {CLOUD: 1}, profile="No such profile"))
    assert result.policies[1].status == STATUS_NOT_APPLICABLE
    assert "unknown" in result.policies[1].reason


def test_a_setting_unknown_to_the_catalog_is_not_applicable_and_not_sent():
    result = run(device(), policy(1, {"made_up_setting": 1, CLOUD: 1}))
    assert result.settings["made_up_setting"].status == STATUS_NOT_APPLICABLE
    assert result.desired == {CLOUD: 1}


# ---------------------------------------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------------------------------------


def test_antivirus_exclusion_lists_merge_into_an_ordered_union_by_policy_id():
    later = policy(5, {PATHS: [r"D:\Build", r"C:\Temp"]}, profile=AV_EXCLUSIONS)
    earlier = policy(2, {PATHS: [r"C:\Temp", r"C:\Logs"]}, profile=AV_EXCLUSIONS)
    result = run(device(), later, earlier)
    outcome = result.settings[PATHS]
    assert outcome.status == STATUS_APPLY
    assert outcome.merged
    assert outcome.sources == (2, 5)
    assert outcome.value == [r"C:\Temp", r"C:\Logs", r"D:\Build"]
    assert result.desired[PATHS] == [r"C:\Temp", r"C:\Logs", r"D:\Build"]
    assert result.per_policy_settings == {2: {PATHS: STATUS_APPLY}, 5: {PATHS: STATUS_APPLY}}
    assert "Merged" in outcome.reason


@pytest.mark.parametrize(
    "key, first, second, expected",
    [
        (PATHS, [r"C:\Temp\App"], [r"c:\temp\app", r"C:\Other"], [r"C:\Temp\App", r"C:\Other"]),
        (EXTENSIONS, [".LOG"], [".log", ".tmp"], [".LOG", ".tmp"]),
        (PROCESSES, ["Build.exe"], ["BUILD.EXE", "msbuild.exe"], ["Build.exe", "msbuild.exe"]),
    ],
)
def test_exclusion_merge_dedupes_case_insensitively_keeping_the_first_spelling(key, first, second, expected):
    result = run(
        device(),
        policy(1, {key: first}, profile=AV_EXCLUSIONS),
        policy(2, {key: second}, profile=AV_EXCLUSIONS),
    )
    assert result.desired[key] == expected


def test_a_single_exclusion_policy_is_applied_as_is_and_not_marked_merged():
    result = run(device(), policy(1, {EXTENSIONS: [".iso", ".ISO", ".vhd"]}, profile=AV_EXCLUSIONS))
    assert result.desired[EXTENSIONS] == [".iso", ".vhd"]
    assert not result.settings[EXTENSIONS].merged


def test_asr_only_exclusions_merge_across_policies():
    result = run(
        device(),
        policy(1, {ASR_ONLY_EXCLUSIONS: [r"C:\Tools\a.exe"]}, profile=ASR),
        policy(2, {ASR_ONLY_EXCLUSIONS: [r"C:\Tools\b.exe"]}, profile=ASR),
    )
    assert result.desired[ASR_ONLY_EXCLUSIONS] == [r"C:\Tools\a.exe", r"C:\Tools\b.exe"]
    assert result.settings[ASR_ONLY_EXCLUSIONS].merged


def test_different_asr_rules_from_different_policies_combine():
    result = run(
        device(),
        policy(1, {RULE_DRIVERS: asr(RULE_DRIVERS, "Block")}, profile=ASR),
        policy(2, {RULE_LSASS: asr(RULE_LSASS, "Audit")}, profile=ASR),
    )
    assert result.desired == {RULE_DRIVERS: asr(RULE_DRIVERS, "Block"), RULE_LSASS: asr(RULE_LSASS, "Audit")}
    assert result.policies[1].status == result.policies[2].status == STATUS_APPLY


def test_the_same_asr_rule_in_the_same_mode_from_two_policies_applies():
    block = asr(RULE_DRIVERS, "Block")
    result = run(
        device(), policy(1, {RULE_DRIVERS: block}, profile=ASR), policy(2, {RULE_DRIVERS: block}, profile=ASR)
    )
    assert result.settings[RULE_DRIVERS].status == STATUS_APPLY
    assert result.settings[RULE_DRIVERS].sources == (1, 2)
    assert result.desired == {RULE_DRIVERS: block}


def test_the_same_asr_rule_in_different_modes_from_two_policies_is_a_conflict():
    result = run(
        device(),
        policy(
            1, {RULE_DRIVERS: asr(RULE_DRIVERS, "Block"), RULE_LSASS: asr(RULE_LSASS, "Block")}, profile=ASR
        ),
        policy(2, {RULE_DRIVERS: asr(RULE_DRIVERS, "Audit")}, profile=ASR, name="Audit rollout"),
    )
    outcome = result.settings[RULE_DRIVERS]
    assert outcome.status == STATUS_CONFLICT
    assert outcome.value is None
    assert outcome.conflicting_values == {1: asr(RULE_DRIVERS, "Block"), 2: asr(RULE_DRIVERS, "Audit")}
    assert (
        "'Audit rollout'" in outcome.reason and "(id " not in outcome.reason and "'Block'" in outcome.reason
    )
    assert RULE_DRIVERS not in result.desired
    assert result.desired == {RULE_LSASS: asr(RULE_LSASS, "Block")}


def test_asr_per_rule_exclusions_for_the_same_rule_union():
    block = asr(RULE_DRIVERS, "Block")
    result = run(
        device(),
        policy(1, {RULE_DRIVERS: block, RULE_DRIVERS_EXCLUSIONS: [r"C:\Drivers\a.sys"]}, profile=ASR),
        policy(
            2,
            {RULE_DRIVERS: block, RULE_DRIVERS_EXCLUSIONS: [r"c:\drivers\A.sys", r"C:\Drivers\b.sys"]},
            profile=ASR,
        ),
    )
    outcome = result.settings[RULE_DRIVERS_EXCLUSIONS]
    assert outcome.status == STATUS_APPLY and outcome.merged
    assert outcome.value == [r"C:\Drivers\a.sys", r"C:\Drivers\b.sys"]


def test_firewall_rules_from_several_policies_combine_by_name():
    result = run(
        device(),
        policy(2, {FW_RULES: [fw_rule("Allow RDP", ports=["3389"])]}, profile=FIREWALL_RULES),
        policy(
            1,
            {FW_RULES: [fw_rule("Allow SSH", ports=["22"]), fw_rule("Block Telnet", action="0")]},
            profile=FIREWALL_RULES,
        ),
    )
    outcome = result.settings[FW_RULES]
    assert outcome.status == STATUS_APPLY and outcome.merged
    assert [rule[FW_NAME] for rule in outcome.value] == ["Allow SSH", "Block Telnet", "Allow RDP"]
    assert result.desired[FW_RULES] == outcome.value


def test_identical_firewall_rules_with_the_same_name_in_any_case_are_applied_once():
    result = run(
        device(),
        policy(1, {FW_RULES: [fw_rule("Allow RDP", ports=["3389"])]}, profile=FIREWALL_RULES),
        policy(2, {FW_RULES: [fw_rule("allow rdp", ports=["3389"])]}, profile=FIREWALL_RULES),
    )
    outcome = result.settings[FW_RULES]
    assert outcome.status == STATUS_APPLY
    assert outcome.value == [fw_rule("Allow RDP", ports=["3389"])]
    assert outcome.sources == (1, 2)


def test_two_firewall_rules_with_the_same_name_but_different_definitions_conflict_naming_both_policies():
    result = run(
        device(),
        policy(
            1,
            {FW_RULES: [fw_rule("Allow RDP", ports=["3389"]), fw_rule("Allow SSH")]},
            profile=FIREWALL_RULES,
            name="Servers",
        ),
        policy(
            2, {FW_RULES: [fw_rule("ALLOW RDP", ports=["3390"])]}, profile=FIREWALL_RULES, name="Jump hosts"
        ),
        policy(3, {FW_RULES: [fw_rule("Allow HTTPS", ports=["443"])]}, profile=FIREWALL_RULES, name="Web"),
    )
    outcome = result.settings[FW_RULES]
    assert outcome.status == STATUS_CONFLICT
    assert outcome.conflicting_items == ("Allow RDP",)
    assert set(outcome.conflicting_values) == {1, 2}
    assert "'Servers'" in outcome.reason and "'Jump hosts'" in outcome.reason
    # The conflicting rule is not applied; the other rules still are.
    assert [rule[FW_NAME] for rule in result.desired[FW_RULES]] == ["Allow SSH", "Allow HTTPS"]
    assert result.per_policy_settings[1][FW_RULES] == STATUS_CONFLICT
    assert result.per_policy_settings[2][FW_RULES] == STATUS_CONFLICT
    assert result.per_policy_settings[3][FW_RULES] == STATUS_APPLY


# ---------------------------------------------------------------------------------------------------------
# Conflict
# ---------------------------------------------------------------------------------------------------------


def test_two_policies_setting_different_values_conflict_and_nothing_is_applied():
    result = run(device(), policy(1, {CLOUD: 1, REALTIME: 1}), policy(2, {CLOUD: 0}))
    outcome = result.settings[CLOUD]
    assert outcome.status == STATUS_CONFLICT
    assert outcome.value is None
    assert outcome.sources == (1, 2)
    assert outcome.conflicting_values == {1: 1, 2: 0}
    assert "Conflict" in outcome.reason
    assert result.desired == {REALTIME: 1}
    assert result.per_policy_settings == {
        1: {CLOUD: STATUS_CONFLICT, REALTIME: STATUS_APPLY},
        2: {CLOUD: STATUS_CONFLICT},
    }
    assert result.policies[1].status == STATUS_CONFLICT
    assert result.policies[2].status == STATUS_CONFLICT


def test_a_conflict_lists_every_configuring_policy_sorted_by_id_including_agreeing_ones():
    result = run(device(), policy(9, {CLOUD: 1}), policy(3, {CLOUD: 1}), policy(5, {CLOUD: 0}))
    outcome = result.settings[CLOUD]
    assert outcome.status == STATUS_CONFLICT
    assert outcome.sources == (3, 5, 9)
    assert list(outcome.conflicting_values) == [3, 5, 9]


def test_the_same_value_from_several_policies_is_not_a_conflict():
    result = run(device(), policy(1, {CLOUD: 1}), policy(2, {CLOUD: 1}), policy(3, {CLOUD: 1}))
    outcome = result.settings[CLOUD]
    assert outcome.status == STATUS_APPLY
    assert outcome.sources == (1, 2, 3)
    assert not outcome.merged
    assert result.desired == {CLOUD: 1}


def test_a_setting_shared_by_two_profiles_conflicts_across_policies_of_both_profiles():
    result = run(
        device(),
        policy(1, {LOCAL_ADMIN_MERGE: 0}, profile=AV),
        policy(2, {LOCAL_ADMIN_MERGE: 1}, profile=AV_EXCLUSIONS),
    )
    assert result.settings[LOCAL_ADMIN_MERGE].status == STATUS_CONFLICT


def test_a_non_merging_choice_collection_in_another_order_is_the_same_value():
    result = run(
        device(),
        policy(1, {IPSEC_EXEMPT: ["1", "2"]}, profile=FIREWALL),
        policy(2, {IPSEC_EXEMPT: ["2", "1"]}, profile=FIREWALL),
    )
    assert result.settings[IPSEC_EXEMPT].status == STATUS_APPLY
    assert result.desired[IPSEC_EXEMPT] == ["1", "2"]


def test_values_of_different_types_are_different_values():
    result = run(device(), policy(1, {CLOUD: 1}), policy(2, {CLOUD: "1"}))
    assert result.settings[CLOUD].status == STATUS_CONFLICT


def test_a_conflict_on_one_setting_does_not_block_the_other_settings_of_the_same_policies():
    result = run(device(), policy(1, {CLOUD: 1, REALTIME: 1}), policy(2, {CLOUD: 0, REALTIME: 1}))
    assert result.desired == {REALTIME: 1}


# ---------------------------------------------------------------------------------------------------------
# Statuses and roll-ups
# ---------------------------------------------------------------------------------------------------------


def test_worst_status_orders_error_conflict_pending_succeeded_not_applicable():
    assert worst_status(["succeeded", "not_applicable"]) == "succeeded"
    assert worst_status(["succeeded", "pending", "not_applicable"]) == "pending"
    assert worst_status(["pending", "conflict", "succeeded"]) == "conflict"
    assert worst_status(["conflict", "error", "pending"]) == "error"
    assert worst_status(["not_applicable"]) == "not_applicable"


def test_worst_status_counts_an_engine_apply_as_pending():
    assert worst_status(["apply", "succeeded"]) == "pending"


def test_worst_status_of_nothing_is_the_default():
    assert worst_status([]) == "not_applicable"
    assert worst_status([], default="pending") == "pending"


def test_worst_status_rejects_unknown_statuses():
    with pytest.raises(ValueError):
        worst_status(["succeeded", "great"])


def test_a_policy_without_settings_that_reaches_the_device_applies():
    result = run(device(), policy(1, {}))
    assert result.policies[1].status == STATUS_APPLY
    assert result.per_policy_settings == {1: {}}


def test_every_policy_given_has_an_outcome_and_only_targeted_ones_have_per_policy_settings():
    result = run(device(groups={1}), policy(1, {CLOUD: 1}), policy(2, {CLOUD: 1}, include={2}))
    assert set(result.policies) == {1, 2}
    assert set(result.per_policy_settings) == {1}


def test_duplicate_policy_ids_are_rejected():
    with pytest.raises(ValueError, match="twice"):
        run(device(), policy(1, {CLOUD: 1}), policy(1, {CLOUD: 0}))


# ---------------------------------------------------------------------------------------------------------
# Desired state and fingerprint
# ---------------------------------------------------------------------------------------------------------


def test_the_desired_fingerprint_is_stable_and_changes_when_a_value_changes():
    first = run(device(), policy(1, {CLOUD: 1, REALTIME: 1}))
    again = run(device(), policy(1, {REALTIME: 1, CLOUD: 1}))
    changed = run(device(), policy(1, {CLOUD: 0, REALTIME: 1}))
    assert desired_fingerprint(first) == desired_fingerprint(again)
    assert len(desired_fingerprint(first)) == 64
    assert desired_fingerprint(first) != desired_fingerprint(changed)


def test_the_desired_fingerprint_distinguishes_a_number_from_a_string():
    as_int = run(device(), policy(1, {CLOUD: 1}))
    as_str = run(device(), policy(1, {CLOUD: "1"}))
    assert desired_fingerprint(as_int) != desired_fingerprint(as_str)


def test_desired_values_do_not_change_when_the_caller_later_mutates_the_policy_values():
    values = {PATHS: [r"C:\Temp"]}
    result = run(device(), policy(1, values, profile=AV_EXCLUSIONS))
    values[PATHS].append(r"C:\Other")
    assert result.desired == {PATHS: [r"C:\Temp"]}


# ---------------------------------------------------------------------------------------------------------
# Impact preview
# ---------------------------------------------------------------------------------------------------------


def _preview_fixture():
    devices = [
        device("mde-1", channel="mde", groups={1}),
        device("mde-2", channel="mde", groups={1, 2}),
        device("intune-1", channel="intune", groups={1}, filters={7: False}),
        device("cm-1", channel="configmgr", groups={1}),
        device("mac-1", os="macos", channel="mde", groups={1}),
        device("other", channel="mde", groups={5}),
    ]
    policies = [
        policy(1, {CLOUD: 1, PATHS: [r"C:\A"], TELEMETRY: "2"}, name="Baseline"),
        policy(2, {CLOUD: 0}, include={2}, name="Cloud off"),
        policy(3, {PATHS: [r"C:\B"]}, profile=AV_EXCLUSIONS, include={1}, filter_id=7, filter_mode="include"),
    ]
    return devices, policies


def test_the_impact_preview_counts_devices_by_channel_and_policy_reach():
    devices, policies = _preview_fixture()
    impact = preview(devices, policies, CATALOG)
    assert impact.device_count == 6
    assert impact.devices_by_channel == {"mde": 4, "intune": 1, "configmgr": 1, "none": 0}
    baseline = impact.policies[1]
    assert baseline.targeted == {"mde": 3, "intune": 1, "configmgr": 1, "none": 0}
    assert baseline.applies == {"mde": 2, "intune": 1, "configmgr": 0, "none": 0}
    # The filter excludes the Intune device but MDE devices ignore it.
    filtered = impact.policies[3]
    assert filtered.targeted == {"mde": 3, "intune": 0, "configmgr": 1, "none": 0}
    assert filtered.filter_ignored_devices == 3
    assert set(impact.resolutions) == {d.device_id for d in devices}


def test_the_impact_preview_lists_not_applicable_reasons_with_their_devices():
    devices, policies = _preview_fixture()
    impact = preview(devices, policies, CATALOG)
    by_reason = impact.not_applicable
    configmgr = [ids for reason, ids in by_reason.items() if "Configuration Manager" in reason]
    assert configmgr == [("cm-1",)]
    macos = [ids for reason, ids in by_reason.items() if "macOS" in reason]
    assert macos == [("mac-1",)]
    telemetry = [ids for reason, ids in by_reason.items() if "isn't supported" in reason]
    assert telemetry == [("mde-1", "mde-2")]
    assert sum(impact.policies[1].not_applicable.values()) == 2


def test_the_impact_preview_lists_conflicts_with_their_policies_and_devices():
    devices, policies = _preview_fixture()
    impact = preview(devices, policies, CATALOG)
    assert [(c.setting_key, c.policy_ids, c.device_ids) for c in impact.conflicts] == [
        (CLOUD, (1, 2), ("mde-2",))
    ]
    assert impact.conflicts[0].display_name == CATALOG.setting(CLOUD).display_name.strip()
    assert impact.policies[2].conflict_devices == 1


def test_the_impact_preview_lists_merges_with_their_policies_and_devices():
    devices, policies = _preview_fixture()
    impact = preview(devices, policies, CATALOG)
    assert [(m.setting_key, m.policy_ids, m.device_ids) for m in impact.merges] == [
        (PATHS, (1, 3), ("mde-1", "mde-2"))
    ]


def test_the_impact_preview_does_not_depend_on_input_order():
    devices, policies = _preview_fixture()
    assert preview(devices, policies, CATALOG) == preview(devices[::-1], policies[::-1], CATALOG)


# ---------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------

PATH_POOL = [r"C:\Temp", r"c:\temp", r"C:\Logs", r"D:\Build", r"D:\build", r"E:\Data\x.db", r"C:\Tools"]
EXT_POOL = [".log", ".LOG", ".tmp", ".iso", ".vhdx"]
RULE_POOL = [
    fw_rule("Allow RDP", ports=["3389"]),
    fw_rule("Allow RDP", ports=["3390"]),
    fw_rule("allow ssh"),
    fw_rule("Block Telnet", action="0"),
]

# Mostly-reaching assignments, so that conflicts and merges actually occur.
INCLUDES = st.frozensets(st.integers(min_value=1, max_value=3), min_size=1, max_size=3)
EXCLUDES = st.sampled_from([frozenset(), frozenset(), frozenset(), frozenset({3})])


@st.composite
def policy_sets(draw, max_policies: int = 8) -> list[PolicyInput]:
    ids = draw(
        st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=max_policies, unique=True)
    )
    result = []
    for pid in ids:
        profile = draw(st.sampled_from([AV, AV_EXCLUSIONS, ASR, FIREWALL_RULES, EDR]))
        values: dict[str, object] = {}
        if profile == AV:
            values = draw(
                st.fixed_dictionaries(
                    {}, optional={CLOUD: st.sampled_from([0, 1]), IPS: st.sampled_from([0, 1])}
                )
            )
        elif profile == AV_EXCLUSIONS:
            values = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        PATHS: st.lists(st.sampled_from(PATH_POOL), unique=True, max_size=4),
                        EXTENSIONS: st.lists(st.sampled_from(EXT_POOL), unique=True, max_size=3),
                    },
                )
            )
        elif profile == ASR:
            values = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        RULE_DRIVERS: st.sampled_from([asr(RULE_DRIVERS, m) for m in ("Block", "Audit")]),
                        RULE_LSASS: st.sampled_from([asr(RULE_LSASS, m) for m in ("Block", "Audit")]),
                        RULE_DRIVERS_EXCLUSIONS: st.lists(
                            st.sampled_from(PATH_POOL), unique=True, max_size=3
                        ),
                    },
                )
            )
        elif profile == FIREWALL_RULES:
            values = {FW_RULES: draw(st.lists(st.sampled_from(RULE_POOL), max_size=3))}
        else:
            values = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        TELEMETRY: st.sampled_from(["1", "2"]),
                        SAMPLE_SHARING: st.sampled_from([0, 1]),
                    },
                )
            )
        result.append(
            PolicyInput(
                id=pid,
                name=f"Policy {pid}",
                profile=profile,
                platform="windows",
                values=values,
                include_groups=draw(INCLUDES),
                exclude_groups=draw(EXCLUDES),
                filter_id=draw(st.sampled_from([None, None, 7])),
                filter_mode=draw(st.sampled_from(["include", "exclude"])),
            )
        )
    return result


devices = st.builds(
    DeviceFacts,
    device_id=st.just("dev-p"),
    os=st.sampled_from(["windows", "windows_server"]),
    channel=st.sampled_from(["mde", "intune"]),
    group_ids=st.sampled_from(
        [frozenset({1, 2, 3}), frozenset({1, 2}), frozenset({1}), frozenset({2, 3}), frozenset()]
    ),
    filter_matches=st.fixed_dictionaries({}, optional={7: st.booleans()}),
)

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(dev=devices, policies=policy_sets(), data=st.data())
def test_property_the_order_of_policies_never_changes_the_result(dev, policies, data):
    shuffled = data.draw(st.permutations(policies))
    first = resolve(dev, policies, CATALOG)
    second = resolve(dev, shuffled, CATALOG)
    assert first == second
    assert list(first.desired) == list(second.desired)
    assert desired_fingerprint(first) == desired_fingerprint(second)


@PROPERTY_SETTINGS
@given(
    lists=st.lists(st.lists(st.sampled_from(PATH_POOL + EXT_POOL), max_size=5), min_size=1, max_size=5),
    key=st.sampled_from([PATHS, EXTENSIONS, PROCESSES]),
)
def test_property_merging_is_a_union_of_every_input_list_and_nothing_else(lists, key):
    policies = [policy(i + 1, {key: values}, profile=AV_EXCLUSIONS) for i, values in enumerate(lists)]
    merged = resolve(device(), policies, CATALOG).desired[key]
    inputs = [element for values in lists for element in values]
    folded_inputs = {e.casefold() for e in inputs}
    folded_merged = [e.casefold() for e in merged]
    assert set(folded_merged) == folded_inputs  # every element appears, nothing else
    assert len(folded_merged) == len(set(folded_merged))  # once each
    assert all(e in inputs for e in merged)  # spelled as in some input
    first_spelling = {}
    for e in inputs:
        first_spelling.setdefault(e.casefold(), e)
    assert merged == list(first_spelling.values())  # policy id, then list order, first spelling


@PROPERTY_SETTINGS
@given(dev=devices, policies=policy_sets(), data=st.data())
def test_property_adding_a_policy_with_identical_values_never_creates_a_conflict(dev, policies, data):
    original = data.draw(st.sampled_from(policies))
    clone = PolicyInput(
        id=max(p.id for p in policies) + 1,
        name="Clone",
        profile=original.profile,
        platform=original.platform,
        values=copy.deepcopy(dict(original.values)),
        include_groups=original.include_groups,
        exclude_groups=original.exclude_groups,
        filter_id=original.filter_id,
        filter_mode=original.filter_mode,
    )
    before = resolve(dev, policies, CATALOG)
    after = resolve(dev, [*policies, clone], CATALOG)
    assert after.conflicts.keys() == before.conflicts.keys()
    for key, outcome in after.conflicts.items():
        assert outcome.conflicting_items == before.conflicts[key].conflicting_items
    assert desired_fingerprint(after) == desired_fingerprint(before)


@PROPERTY_SETTINGS
@given(
    dev=devices,
    agreeing=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4, unique=True),
    dissenter=st.integers(min_value=41, max_value=60),
    key_and_values=st.sampled_from(
        [
            (CLOUD, AV, 1, 0),
            (RULE_DRIVERS, ASR, asr(RULE_DRIVERS, "Block"), asr(RULE_DRIVERS, "Warn")),
            (
                FW_RULES,
                FIREWALL_RULES,
                [fw_rule("Allow RDP", ports=["3389"])],
                [fw_rule("ALLOW RDP", ports=["3390"])],
            ),
        ]
    ),
    data=st.data(),
)
def test_property_removing_the_last_conflicting_policy_clears_the_conflict(
    dev, agreeing, dissenter, key_and_values, data
):
    key, profile, value, other = key_and_values
    dev = DeviceFacts(dev.device_id, dev.os, dev.channel, frozenset({1}), {})
    base = [policy(pid, {key: copy.deepcopy(value)}, profile=profile) for pid in agreeing]
    conflicting = policy(dissenter, {key: copy.deepcopy(other)}, profile=profile)
    order = data.draw(st.permutations([*base, conflicting]))
    with_conflict = resolve(dev, order, CATALOG)
    assert with_conflict.settings[key].status == STATUS_CONFLICT
    assert dissenter in with_conflict.settings[key].sources
    without = resolve(dev, [p for p in order if p.id != dissenter], CATALOG)
    assert without.settings[key].status == STATUS_APPLY
    assert without.settings[key].sources == tuple(sorted(agreeing))
    assert without.desired[key] == value
