"""Behaviour of the simulated MDE client (devices/agent.py). Pure: no Django, no database."""

from __future__ import annotations

import json
import random

import pytest

from devices.agent import (
    ASR_ACTIONS_PROPERTY,
    ASR_IDS_PROPERTY,
    GENERIC_ERROR,
    INVALID_VALUE_ERROR,
    MP_MAPPINGS,
    NOT_FOUND_ERROR,
    RESTART_REQUIRED_MESSAGE,
    TAMPER_PROTECTED,
    TAMPER_PROTECTION_ERROR,
    AgentState,
    SettingReport,
    apply,
    effective_value,
    format_mp_preference,
    hresult_hex,
    mapping_for,
    mp_preference,
    restart,
    set_tamper_protection,
)
from policies.catalog import get_catalog

P = "device_vendor_msft_policy_config_defender_"
C = "device_vendor_msft_defender_configuration_"
RTP = P + "allowrealtimemonitoring"
BEHAVIOR = P + "allowbehaviormonitoring"
CLOUD = P + "allowcloudprotection"
IOAV = P + "allowioavprotection"
ON_ACCESS = P + "allowonaccessprotection"
LOCAL_ADMIN_MERGE = C + "disablelocaladminmerge"
ASR = P + "attacksurfacereductionrules_"
ASR_WEBSHELL = ASR + "blockwebshellcreationforservers"
ASR_OFFICE_CHILD = ASR + "blockallofficeapplicationsfromcreatingchildprocesses"
ASR_LSASS = ASR + "blockcredentialstealingfromwindowslocalsecurityauthoritysubsystem"
FIREWALL_DOMAIN_ON = "vendor_msft_firewall_mdmstore_domainprofile_enablefirewall"
FIREWALL_RULES = "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}"
EDR_SAMPLE_SHARING = "device_vendor_msft_windowsadvancedthreatprotection_configuration_samplesharing"

GUARDED_PROPERTY = {
    RTP: ("DisableRealtimeMonitoring", False),
    BEHAVIOR: ("DisableBehaviorMonitoring", False),
    CLOUD: ("MAPSReporting", 2),
    IOAV: ("DisableIOAVProtection", False),
    ON_ACCESS: ("AllowOnAccessProtection", True),
}


@pytest.fixture(scope="module")
def catalog():
    return get_catalog()


def fresh(*, tamper_protection: bool = True) -> AgentState:
    return AgentState.initial(tamper_protection=tamper_protection)


def prefs(state: AgentState) -> dict:
    return dict(mp_preference(state))


# ----------------------------------------------------------------------------------------------- local state


def test_a_fresh_device_lists_the_real_get_mppreference_property_names():
    names = set(prefs(fresh()))
    expected = {
        "DisableRealtimeMonitoring",
        "DisableBehaviorMonitoring",
        "DisableScriptScanning",
        "DisableArchiveScanning",
        "DisableEmailScanning",
        "DisableRemovableDriveScanning",
        "DisableScanningMappedNetworkDrivesForFullScan",
        "DisableScanningNetworkFiles",
        "DisableIOAVProtection",
        "UILockdown",
        "MAPSReporting",
        "SubmitSamplesConsent",
        "ScanAvgCPULoadFactor",
        "CheckForSignaturesBeforeRunningScan",
        "CloudBlockLevel",
        "CloudExtendedTimeout",
        "QuarantinePurgeItemsAfterDelay",
        "DisableCatchupFullScan",
        "DisableCatchupQuickScan",
        "EnableLowCpuPriority",
        "EnableNetworkProtection",
        "PUAProtection",
        "RealTimeScanDirection",
        "ScanParameters",
        "ScanScheduleDay",
        "ScanScheduleTime",
        "ScanScheduleQuickScanTime",
        "SignatureUpdateInterval",
        "ExclusionPath",
        "ExclusionExtension",
        "ExclusionProcess",
        "AttackSurfaceReductionRules_Ids",
        "AttackSurfaceReductionRules_Actions",
        "AttackSurfaceReductionOnlyExclusions",
        "EnableControlledFolderAccess",
        "ControlledFolderAccessAllowedApplications",
        "ControlledFolderAccessProtectedFolders",
        "LowThreatDefaultAction",
        "ModerateThreatDefaultAction",
        "HighThreatDefaultAction",
        "SevereThreatDefaultAction",
        "DisableTlsParsing",
        "DisableHttpParsing",
        "DisableDnsOverTcpParsing",
        "DisableSshParsing",
        "AllowNetworkProtectionDownLevel",
        "AllowDatagramProcessingOnWinServer",
        "EnableDnsSinkhole",
        "DisableInboundConnectionFiltering",
        "MeteredConnectionUpdates",
        "RandomizeScheduleTaskTimes",
        "SchedulerRandomizationTime",
        "EnableFileHashComputation",
        "PlatformUpdatesChannel",
        "EngineUpdatesChannel",
        "SignaturesUpdatesChannel",
        "DisableLocalAdminMerge",
        "AllowOnAccessProtection",
    }
    assert expected <= names


def test_a_fresh_device_has_windows_defaults_taken_from_the_catalog():
    p = prefs(fresh())
    assert p["DisableRealtimeMonitoring"] is False
    assert p["DisableEmailScanning"] is True  # AllowEmailScanning default 0
    assert p["MAPSReporting"] == 2  # AllowCloudProtection default 1
    assert p["ScanAvgCPULoadFactor"] == 50
    assert p["ScanScheduleTime"] == 120
    assert p["SubmitSamplesConsent"] == 1
    assert p["DisableCatchupFullScan"] is True
    assert p["ExclusionPath"] == []
    assert p[ASR_IDS_PROPERTY] == [] and p[ASR_ACTIONS_PROPERTY] == []
    assert p["HighThreatDefaultAction"] == 0


def test_tamper_protection_is_on_by_default_and_can_be_switched_locally():
    assert fresh().tamper_protection is True
    assert set_tamper_protection(fresh(), False).tamper_protection is False


def test_every_mapped_setting_id_exists_in_the_catalog(catalog):
    for setting_id, mapping in MP_MAPPINGS.items():
        sd = catalog.setting(setting_id)
        assert sd.csp_path, setting_id
        assert mapping.property


def test_asr_rules_map_to_the_parallel_arrays_and_per_rule_exclusions_have_no_property(catalog):
    assert mapping_for(ASR_WEBSHELL, catalog).property == ASR_IDS_PROPERTY
    assert mapping_for(ASR_WEBSHELL + "_perruleexclusions", catalog) is None
    assert mapping_for(FIREWALL_DOMAIN_ON, catalog) is None


# ------------------------------------------------------------------------------------------ tamper protection


@pytest.mark.parametrize("setting_id", sorted(TAMPER_PROTECTED))
def test_tamper_protection_refuses_turning_off_a_protected_feature(setting_id):
    state = fresh(tamper_protection=True)
    new_state, reports = apply(state, {setting_id: 0})
    report = reports[setting_id]
    assert report.status == "error"
    assert report.error_code == TAMPER_PROTECTION_ERROR == -2016281112
    assert hresult_hex(report.error_code) == "0x87D1FDE8"
    assert "Tamper Protection" in report.message and "first" in report.message
    assert report.value == 1  # still on
    prop, on_value = GUARDED_PROPERTY[setting_id]
    assert prefs(new_state)[prop] == on_value
    assert new_state.pending_restart == {}


@pytest.mark.parametrize("setting_id", sorted(set(TAMPER_PROTECTED) - {ON_ACCESS}))
def test_turning_off_a_protected_feature_is_applied_when_tamper_protection_is_off(setting_id):
    new_state, reports = apply(fresh(tamper_protection=False), {setting_id: 0})
    assert reports[setting_id].status == "succeeded"
    assert reports[setting_id].error_code is None
    prop, on_value = GUARDED_PROPERTY[setting_id]
    assert prefs(new_state)[prop] != on_value
    assert effective_value(new_state, setting_id) == 0


def test_turning_off_on_access_protection_with_tamper_protection_off_waits_for_a_restart():
    new_state, reports = apply(fresh(tamper_protection=False), {ON_ACCESS: 0})
    assert reports[ON_ACCESS] == SettingReport("pending", 0, None, RESTART_REQUIRED_MESSAGE)
    assert new_state.pending_restart == {ON_ACCESS: 0}
    assert prefs(new_state)["AllowOnAccessProtection"] is True


@pytest.mark.parametrize("setting_id", sorted(set(TAMPER_PROTECTED) - {ON_ACCESS}))
def test_turning_a_protected_feature_on_is_allowed_with_tamper_protection_on(setting_id):
    off_state, _ = apply(fresh(tamper_protection=False), {setting_id: 0})
    protected = set_tamper_protection(off_state, True)
    new_state, reports = apply(protected, {setting_id: 1})
    assert reports[setting_id].status == "succeeded"
    prop, on_value = GUARDED_PROPERTY[setting_id]
    assert prefs(new_state)[prop] == on_value


def test_keeping_an_already_on_protected_feature_on_succeeds_with_tamper_protection_on():
    _, reports = apply(fresh(), {RTP: 1, CLOUD: 1})
    assert {r.status for r in reports.values()} == {"succeeded"}


def test_a_refused_tamper_protected_setting_does_not_block_the_other_settings():
    new_state, reports = apply(fresh(), {RTP: 0, P + "puaprotection": 1})
    assert reports[RTP].status == "error"
    assert reports[P + "puaprotection"].status == "succeeded"
    assert prefs(new_state)["PUAProtection"] == 1


# ------------------------------------------------------------------------------------------------- restarts


def test_disable_local_admin_merge_is_pending_until_restart_and_then_succeeds():
    state, reports = apply(fresh(), {LOCAL_ADMIN_MERGE: 1})
    assert reports[LOCAL_ADMIN_MERGE].status == "pending"
    assert reports[LOCAL_ADMIN_MERGE].message == RESTART_REQUIRED_MESSAGE
    assert reports[LOCAL_ADMIN_MERGE].value == 1
    assert prefs(state)["DisableLocalAdminMerge"] is False
    assert state.pending_restart == {LOCAL_ADMIN_MERGE: 1}

    again, replay = apply(state, {LOCAL_ADMIN_MERGE: 1})
    assert replay == reports and again == state  # still pending before the restart

    rebooted = restart(state)
    assert rebooted.pending_restart == {}
    assert prefs(rebooted)["DisableLocalAdminMerge"] is True

    after, reports_after = apply(rebooted, {LOCAL_ADMIN_MERGE: 1})
    assert reports_after[LOCAL_ADMIN_MERGE].status == "succeeded"
    assert after.pending_restart == {}


def test_on_access_protection_off_applies_after_restart_when_tamper_protection_is_off():
    state, _ = apply(fresh(tamper_protection=False), {ON_ACCESS: 0})
    rebooted = restart(state)
    assert prefs(rebooted)["AllowOnAccessProtection"] is False
    _, reports = apply(rebooted, {ON_ACCESS: 0})
    assert reports[ON_ACCESS].status == "succeeded"


def test_a_restart_bound_setting_that_already_has_the_value_succeeds_without_restart():
    state, reports = apply(fresh(), {LOCAL_ADMIN_MERGE: 0, ON_ACCESS: 1})
    assert {r.status for r in reports.values()} == {"succeeded"}
    assert state.pending_restart == {}


def test_restart_without_pending_settings_changes_nothing():
    state = fresh()
    assert restart(state) == state


# ------------------------------------------------------------------------------------------------- statuses


def test_one_sync_reports_succeeded_error_and_pending():
    _, reports = apply(fresh(), {P + "allowscriptscanning": 0, RTP: 0, LOCAL_ADMIN_MERGE: 1})
    assert reports[P + "allowscriptscanning"].status == "succeeded"
    assert reports[RTP].status == "error"
    assert reports[LOCAL_ADMIN_MERGE].status == "pending"
    assert reports[P + "allowscriptscanning"].error_code is None
    assert reports[LOCAL_ADMIN_MERGE].error_code is None


def test_an_unknown_setting_id_is_reported_as_not_found():
    _, reports = apply(fresh(), {"device_vendor_msft_policy_config_defender_nosuchsetting": 1})
    report = reports["device_vendor_msft_policy_config_defender_nosuchsetting"]
    assert report.status == "error" and report.error_code == NOT_FOUND_ERROR


@pytest.mark.parametrize(
    ("setting_id", "value"),
    [
        (P + "avgcpuloadfactor", 101),
        (P + "cloudblocklevel", 3),
        (P + "excludedpaths", "C:\\Temp"),
        (P + "allowscriptscanning", True),
        (ASR_WEBSHELL, "a8f5898e-1dc8-49a9-9878-85004b8a61e6=9"),
    ],
)
def test_an_invalid_value_is_refused_and_the_local_value_kept(setting_id, value):
    state = fresh()
    new_state, reports = apply(state, {setting_id: value})
    assert reports[setting_id].status == "error"
    assert reports[setting_id].error_code == INVALID_VALUE_ERROR
    assert new_state.preferences == state.preferences


# ---------------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize(
    ("setting_id", "prop"),
    [
        (P + "allowscriptscanning", "DisableScriptScanning"),
        (P + "allowarchivescanning", "DisableArchiveScanning"),
        (P + "allowemailscanning", "DisableEmailScanning"),
        (P + "allowfullscanremovabledrivescanning", "DisableRemovableDriveScanning"),
        (P + "allowfullscanonmappednetworkdrives", "DisableScanningMappedNetworkDrivesForFullScan"),
        (P + "allowscanningnetworkfiles", "DisableScanningNetworkFiles"),
        (P + "allowuseruiaccess", "UILockdown"),
    ],
)
def test_allow_settings_are_inverted_into_disable_properties(setting_id, prop):
    state, _ = apply(fresh(), {setting_id: 0})
    assert prefs(state)[prop] is True
    state, _ = apply(state, {setting_id: 1})
    assert prefs(state)[prop] is False


def test_allow_cloud_protection_maps_to_maps_reporting_advanced_or_disabled():
    on, _ = apply(fresh(tamper_protection=False), {CLOUD: 1})
    off, _ = apply(fresh(tamper_protection=False), {CLOUD: 0})
    assert prefs(on)["MAPSReporting"] == 2
    assert prefs(off)["MAPSReporting"] == 0


def test_same_name_settings_keep_their_numbers_and_booleans():
    state, _ = apply(
        fresh(),
        {
            P + "avgcpuloadfactor": 30,
            P + "schedulescantime": 90,
            P + "enablelowcpupriority": 1,
            P + "daystoretaincleanedmalware": 30,
            C + "securityintelligenceupdateschannel": 4,
            C + "disablesmtpparsing": "1",  # catalog option values of this node are strings
        },
    )
    p = prefs(state)
    assert p["ScanAvgCPULoadFactor"] == 30
    assert p["ScanScheduleTime"] == 90
    assert p["EnableLowCpuPriority"] is True
    assert p["QuarantinePurgeItemsAfterDelay"] == 30
    assert p["SignaturesUpdatesChannel"] == 4
    assert p["DisableSmtpParsing"] is True
    assert effective_value(state, C + "disablesmtpparsing") == "1"


def test_threat_severity_children_set_the_four_default_action_properties():
    state, reports = apply(
        fresh(),
        {
            P + "threatseveritydefaultaction_lowseveritythreats": "1=1",
            P + "threatseveritydefaultaction_moderateseveritythreats": "2=2",
            P + "threatseveritydefaultaction_highseveritythreats": "4=3",
            P + "threatseveritydefaultaction_severethreats": "5=10",
        },
    )
    assert {r.status for r in reports.values()} == {"succeeded"}
    p = prefs(state)
    assert (p["LowThreatDefaultAction"], p["ModerateThreatDefaultAction"]) == (1, 2)
    assert (p["HighThreatDefaultAction"], p["SevereThreatDefaultAction"]) == (3, 10)
    assert effective_value(state, P + "threatseveritydefaultaction_highseveritythreats") == "4=3"


def test_asr_rules_fill_the_ids_and_actions_parallel_arrays():
    state, reports = apply(
        fresh(),
        {
            ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=1",
            ASR_OFFICE_CHILD: "D4F940AB-401B-4EFC-AADC-AD5F3C50688A=2",
            ASR_LSASS: "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2=0",
        },
    )
    assert {r.status for r in reports.values()} == {"succeeded"}
    p = prefs(state)
    pairs = dict(zip(p[ASR_IDS_PROPERTY], p[ASR_ACTIONS_PROPERTY], strict=True))
    assert pairs == {
        "a8f5898e-1dc8-49a9-9878-85004b8a61e6": 1,
        "D4F940AB-401B-4EFC-AADC-AD5F3C50688A": 2,
        "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2": 0,
    }


def test_changing_an_asr_rule_mode_updates_its_entry_in_place():
    state, _ = apply(fresh(), {ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=2"})
    state, _ = apply(state, {ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=6"})
    p = prefs(state)
    assert p[ASR_IDS_PROPERTY] == ["a8f5898e-1dc8-49a9-9878-85004b8a61e6"]
    assert p[ASR_ACTIONS_PROPERTY] == [6]
    assert effective_value(state, ASR_WEBSHELL) == "a8f5898e-1dc8-49a9-9878-85004b8a61e6=6"


def test_asr_per_rule_exclusions_are_kept_in_applied_and_reported_faithfully():
    key = ASR_WEBSHELL + "_perruleexclusions"
    state, reports = apply(
        fresh(), {ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=1", key: ["C:\\inetpub\\tool.exe"]}
    )
    assert reports[key].status == "succeeded"
    assert reports[key].value == ["C:\\inetpub\\tool.exe"]
    assert state.applied[key] == ["C:\\inetpub\\tool.exe"]
    assert effective_value(state, key) == ["C:\\inetpub\\tool.exe"]


def test_exclusions_become_string_lists_without_duplicates():
    state, _ = apply(
        fresh(),
        {
            P + "excludedpaths": ["C:\\Temp", "D:\\Build", "C:\\Temp"],
            P + "excludedextensions": [".log"],
            P + "excludedprocesses": ["build.exe"],
            P + "attacksurfacereductiononlyexclusions": ["C:\\Tools"],
            P + "controlledfolderaccessallowedapplications": ["C:\\App\\app.exe"],
        },
    )
    p = prefs(state)
    assert p["ExclusionPath"] == ["C:\\Temp", "D:\\Build"]
    assert p["ExclusionExtension"] == [".log"]
    assert p["ExclusionProcess"] == ["build.exe"]
    assert p["AttackSurfaceReductionOnlyExclusions"] == ["C:\\Tools"]
    assert p["ControlledFolderAccessAllowedApplications"] == ["C:\\App\\app.exe"]


def test_firewall_and_edr_settings_without_a_property_are_kept_in_applied():
    rules = [{FIREWALL_RULES + "_name": "Allow RDP", FIREWALL_RULES + "_direction": "in"}]
    state, reports = apply(
        fresh(), {FIREWALL_DOMAIN_ON: "true", FIREWALL_RULES: rules, EDR_SAMPLE_SHARING: 0}
    )
    assert {r.status for r in reports.values()} == {"succeeded"}
    assert state.applied == {FIREWALL_DOMAIN_ON: "true", FIREWALL_RULES: rules, EDR_SAMPLE_SHARING: 0}
    assert reports[FIREWALL_RULES].value == rules
    assert (
        "./Vendor/MSFT/Firewall/MdmStore/DomainProfile/EnableFirewall" in reports[FIREWALL_DOMAIN_ON].message
    )


# --------------------------------------------------------------------------------- removal and idempotence


def test_a_setting_no_longer_desired_reverts_to_the_default_without_a_report():
    state, _ = apply(
        fresh(),
        {
            P + "puaprotection": 1,
            P + "excludedpaths": ["C:\\Temp"],
            ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=1",
            FIREWALL_DOMAIN_ON: "false",
            P + "threatseveritydefaultaction_highseveritythreats": "4=3",
        },
    )
    reverted, reports = apply(state, {P + "allowscriptscanning": 1})
    assert set(reports) == {P + "allowscriptscanning"}
    p = prefs(reverted)
    assert p["PUAProtection"] == 0
    assert p["ExclusionPath"] == []
    assert p[ASR_IDS_PROPERTY] == [] and p[ASR_ACTIONS_PROPERTY] == []
    assert p["HighThreatDefaultAction"] == 0
    assert FIREWALL_DOMAIN_ON not in reverted.applied
    assert reverted.managed == (P + "allowscriptscanning",)


def test_removing_one_asr_rule_keeps_the_others():
    both = {
        ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=1",
        ASR_LSASS: "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2=2",
    }
    state, _ = apply(fresh(), both)
    state, _ = apply(state, {ASR_LSASS: both[ASR_LSASS]})
    p = prefs(state)
    assert p[ASR_IDS_PROPERTY] == ["9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2"]
    assert p[ASR_ACTIONS_PROPERTY] == [2]


def test_a_dropped_restart_bound_setting_reverts_at_the_next_restart():
    state, _ = apply(fresh(), {LOCAL_ADMIN_MERGE: 1})
    state = restart(state)
    state, reports = apply(state, {})
    assert reports == {}
    assert state.pending_restart == {LOCAL_ADMIN_MERGE: 0}
    assert prefs(restart(state))["DisableLocalAdminMerge"] is False


def test_a_dropped_setting_that_was_only_queued_leaves_the_queue():
    state, _ = apply(fresh(), {LOCAL_ADMIN_MERGE: 1})
    state, _ = apply(state, {})
    assert state.pending_restart == {}
    assert prefs(state)["DisableLocalAdminMerge"] is False


def test_settings_that_were_never_managed_are_not_touched_by_a_sync():
    state, _ = apply(fresh(), {RTP: 0})  # refused: never managed
    assert state.managed == ()
    state, _ = apply(state, {})
    assert state.preferences == fresh().preferences


def test_replaying_the_same_desired_state_gives_the_same_reports_and_state():
    desired = {
        P + "puaprotection": 1,
        RTP: 0,
        LOCAL_ADMIN_MERGE: 1,
        P + "excludedpaths": ["C:\\Temp"],
        ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=2",
        FIREWALL_DOMAIN_ON: "true",
    }
    first_state, first_reports = apply(fresh(), desired)
    second_state, second_reports = apply(first_state, dict(reversed(list(desired.items()))))
    assert second_reports == first_reports
    assert second_state == first_state
    assert second_state.to_dict() == first_state.to_dict()
    assert first_state.last_applied_fingerprint is not None


def test_apply_does_not_modify_the_given_state():
    state = fresh()
    before = json.dumps(state.to_dict(), sort_keys=True)
    apply(state, {P + "excludedpaths": ["C:\\Temp"], ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=1"})
    assert json.dumps(state.to_dict(), sort_keys=True) == before


# ----------------------------------------------------------------------------------------------- fault rate

NON_TAMPER_DESIRED = {
    P + "puaprotection": 1,
    P + "allowscriptscanning": 1,
    P + "cloudblocklevel": 2,
    P + "excludedextensions": [".log"],
    FIREWALL_DOMAIN_ON: "true",
    EDR_SAMPLE_SHARING: 1,
}


def test_fault_rate_is_zero_by_default_so_nothing_fails_at_random():
    for _ in range(20):
        _, reports = apply(fresh(), NON_TAMPER_DESIRED)
        assert {r.status for r in reports.values()} == {"succeeded"}


def test_a_full_fault_rate_fails_every_non_tamper_setting_with_a_generic_error():
    desired = {**NON_TAMPER_DESIRED, RTP: 1, CLOUD: 0}
    state = fresh()
    new_state, reports = apply(state, desired, fault_rate=1.0, rng=random.Random(7))
    for key in NON_TAMPER_DESIRED:
        assert reports[key].status == "error"
        assert reports[key].error_code == GENERIC_ERROR
    assert reports[RTP].status == "succeeded"
    assert reports[CLOUD].error_code == TAMPER_PROTECTION_ERROR
    assert new_state.preferences == state.preferences
    assert new_state.applied == {}


def test_a_seeded_rng_makes_faults_reproducible():
    runs = [apply(fresh(), NON_TAMPER_DESIRED, fault_rate=0.5, rng=random.Random(42))[1] for _ in range(2)]
    assert runs[0] == runs[1]
    statuses = {r.status for r in runs[0].values()}
    assert statuses == {"succeeded", "error"}


def test_a_fault_rate_outside_zero_to_one_is_rejected():
    with pytest.raises(ValueError):
        apply(fresh(), {}, fault_rate=1.5)


# --------------------------------------------------------------------------------------------- persistence


def test_the_state_survives_a_json_round_trip():
    state, _ = apply(
        fresh(tamper_protection=False),
        {
            ON_ACCESS: 0,
            P + "excludedpaths": ["C:\\Temp"],
            ASR_WEBSHELL: "a8f5898e-1dc8-49a9-9878-85004b8a61e6=1",
            FIREWALL_RULES: [{FIREWALL_RULES + "_name": "Allow RDP"}],
        },
    )
    text = json.dumps(state.to_dict())
    restored = AgentState.from_dict(json.loads(text))
    assert restored == state
    assert restored.to_dict() == state.to_dict()


def test_an_empty_dict_restores_a_fresh_device():
    assert AgentState.from_dict({}) == fresh()


def test_setting_reports_survive_a_json_round_trip():
    _, reports = apply(fresh(), {RTP: 0})
    data = json.loads(json.dumps(reports[RTP].to_dict()))
    assert SettingReport.from_dict(data) == reports[RTP]
    assert reports[RTP].error_code_hex == "0x87D1FDE8"


# --------------------------------------------------------------------------------------------- Get-MpPreference


def test_mp_preference_is_sorted_by_name_like_get_mppreference():
    names = [name for name, _ in mp_preference(fresh())]
    assert names == sorted(names, key=str.lower)


def test_format_mp_preference_prints_aligned_name_value_lines():
    state, _ = apply(
        fresh(),
        {
            P + "excludedpaths": ["C:\\Temp", "D:\\Build"],
            P + "excludedextensions": [".a", ".b", ".c", ".d", ".e"],
        },
    )
    lines = format_mp_preference(state).splitlines()
    assert len({line.index(" : ") for line in lines if " : " in line}) == 1
    by_name = {line.split(" : ")[0].rstrip(): line for line in lines}
    assert by_name["ExclusionPath"].endswith(": {C:\\Temp, D:\\Build}")
    assert by_name["ExclusionExtension"].endswith(": {.a, .b, .c, .d...}")  # $FormatEnumerationLimit = 4
    assert by_name["DisableRealtimeMonitoring"].endswith(": False")
    assert by_name["ScanScheduleTime"].endswith(": 02:00:00")
    assert by_name["MAPSReporting"].endswith(": 2")
    assert lines[0].startswith("AllowDatagramProcessingOnWinServer")
    full = format_mp_preference(state, enumeration_limit=-1)
    assert "{.a, .b, .c, .d, .e}" in full
