"""Behaviour of the setting catalog loaded from policies/data/setting-catalog.json (pure, no database)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from policies.catalog import (
    ASR_RULES_GROUP_ID,
    ASR_TEMPLATE_ID,
    DATA_FILE,
    FIREWALL_RULE_GROUP_ID,
    MAC_LINUX_DATA_FILE,
    THREAT_SEVERITY_GROUP_ID,
    Catalog,
    asr_rules,
    get_catalog,
    learn_more_url,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path("/work/shared/reference/setting-catalog.json")
RAW = json.loads(DATA_FILE.read_text(encoding="utf-8"))
PROFILE_NAMES = [name for name in RAW if not name.startswith("_")]
MAC_LINUX_RAW = json.loads(MAC_LINUX_DATA_FILE.read_text(encoding="utf-8"))
MAC_LINUX_NAMES = [name for name in MAC_LINUX_RAW if not name.startswith("_")]
LSASS = ASR_RULES_GROUP_ID + "_blockcredentialstealingfromwindowslocalsecurityauthoritysubsystem"
AV = "Microsoft Defender Antivirus"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return get_catalog()


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference data not mounted")
def test_the_data_file_is_a_byte_copy_of_the_shared_reference():
    assert DATA_FILE.read_bytes() == REFERENCE.read_bytes()


def test_get_catalog_is_cached(catalog):
    assert get_catalog() is catalog


def test_profiles_and_settings_are_immutable_and_hashable(catalog):
    profile = catalog.profile(AV)
    assert len({profile, *profile.settings}) == len(profile.settings) + 1
    with pytest.raises(AttributeError):
        profile.settings[0].id = "x"  # type: ignore[misc]


def test_it_has_exactly_the_seven_windows_and_seven_macos_linux_profiles_of_the_data_files(catalog):
    assert list(catalog.profiles) == PROFILE_NAMES + MAC_LINUX_NAMES
    assert len(PROFILE_NAMES) == 7 and len(MAC_LINUX_NAMES) == 7


@pytest.mark.parametrize("name", MAC_LINUX_NAMES)
def test_every_macos_linux_setting_loads_with_its_managed_key_path(catalog, name):
    profile = catalog.profile(name)
    assert [s.id for s in profile.settings] == [raw["id"] for raw in MAC_LINUX_RAW[name]]
    assert len(profile.settings) == MAC_LINUX_RAW["_meta"]["counts"][name]["entries"]
    template = MAC_LINUX_RAW["_meta"]["templates"][name]
    assert (profile.template_id, profile.technologies) == (template["templateId"], template["technologies"])
    assert profile.platforms == (template["platforms"].lower(),)
    for setting, raw in zip(profile.settings, MAC_LINUX_RAW[name], strict=True):
        assert setting.managed_key_path == raw["managed_key_path"]
        assert setting.parent_id == raw.get("parent_id")
        assert bool(setting.unverified_reason) is bool(raw.get("unverified"))
        assert setting.learn_more_url.startswith("https://learn.microsoft.com/defender-endpoint/")


def test_macos_linux_list_settings_are_lists_of_objects_keyed_by_their_children(catalog):
    exclusions = catalog.setting("linux_mdatp_managed_antivirusengine_exclusions")
    assert exclusions.is_instance_collection and exclusions.is_value_key and exclusions.merges
    assert [catalog.setting(c).managed_key for c in exclusions.children] == [
        "$type",
        "path",
        "isDirectory",
        "extension",
        "name",
    ]
    assert catalog.setting("linux_mdatp_managed_edr_tags").merges is False
    # A macOS setting whose catalog technologies lack microsoftSense isn't supported on the MDE channel.
    assert not catalog.setting("com.apple.managedclient.preferences_hidestatusmenuicon").mde_supported
    assert catalog.setting(
        "com.apple.managedclient.preferences_enforcementlevel_tamperprotection"
    ).mde_supported


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_setting_of_the_data_file_loads_into_its_profile(catalog, name):
    profile = catalog.profile(name)
    assert [s.id for s in profile.settings] == [raw["id"] for raw in RAW[name]]
    assert len(profile.settings) == RAW["_meta"]["counts"][name]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_setting_ids_are_unique_within_each_profile(catalog, name):
    ids = [s.id for s in catalog.profile(name).settings]
    assert len(ids) == len(set(ids))


def test_the_exclusion_settings_are_shared_by_the_two_antivirus_profiles(catalog):
    # Issue 14 item 1: the Defender Antivirus profile has the three exclusion lists too (they merge).
    counts = Counter(s.id for s in catalog.all_settings())
    shared = {sid for sid, n in counts.items() if n > 1}
    windows_shared = {sid for sid in shared if sid.startswith("device_")}
    assert shared - windows_shared == {
        # The macOS / Linux Antivirus and Antivirus exclusions profiles share their Scan exclusions too.
        "com.apple.managedclient.preferences_exclusions",
        *(
            f"com.apple.managedclient.preferences_exclusions_item_{k}"
            for k in ("$type", "path", "isdirectory", "extension", "name")
        ),
        "linux_mdatp_managed_antivirusengine_exclusions",
        *(
            f"linux_mdatp_managed_antivirusengine_exclusions_item_{k}"
            for k in ("$type", "path", "isdirectory", "extension", "name")
        ),
    }
    shared = windows_shared
    assert shared == {
        "device_vendor_msft_defender_configuration_hideexclusionsfromlocaladmins",
        "device_vendor_msft_defender_configuration_hideexclusionsfromlocalusers",
        "device_vendor_msft_defender_configuration_disablelocaladminmerge",
        "device_vendor_msft_policy_config_defender_excludedextensions",
        "device_vendor_msft_policy_config_defender_excludedpaths",
        "device_vendor_msft_policy_config_defender_excludedprocesses",
    }
    for sid in shared:
        assert [p.name for p in catalog.profiles_of(sid)] == [AV, "Microsoft Defender Antivirus exclusions"]
        assert catalog.profile_of(sid).name == AV


def test_every_choice_setting_has_options_with_unique_values_and_item_ids(catalog):
    for setting in catalog.all_settings():
        if setting.type in ("choice", "choice_collection"):
            assert setting.options, setting.id
            assert len({str(o.value) for o in setting.options}) == len(setting.options), setting.id
            assert len({o.item_id for o in setting.options}) == len(setting.options), setting.id
        else:
            assert not setting.options, setting.id


def test_missing_item_ids_are_derived_from_the_setting_id_and_value(catalog):
    direction = catalog.setting(FIREWALL_RULE_GROUP_ID + "_direction")
    assert [o.item_id for o in direction.options] == [
        FIREWALL_RULE_GROUP_ID + "_direction_in",
        FIREWALL_RULE_GROUP_ID + "_direction_out",
    ]
    action = catalog.setting(FIREWALL_RULE_GROUP_ID + "_action_type")
    assert action.option_for("0").item_id == FIREWALL_RULE_GROUP_ID + "_action_type_0"


def test_item_ids_from_the_data_are_kept(catalog):
    rule = catalog.setting(LSASS)
    assert [o.item_id for o in rule.options] == [
        f"{LSASS}_off",
        f"{LSASS}_block",
        f"{LSASS}_audit",
        f"{LSASS}_warn",
    ]


def test_choice_defaults_are_typed_like_their_options(catalog):
    for setting in catalog.all_settings():
        if setting.type == "choice" and setting.default is not None:
            assert setting.default in [o.value for o in setting.options], setting.id
        if setting.type == "choice_collection" and setting.default is not None:
            assert all(v in [o.value for o in setting.options] for v in setting.default), setting.id
    assert catalog.setting(FIREWALL_RULE_GROUP_ID + "_action_type").default == "1"
    assert catalog.setting("device_vendor_msft_policy_config_defender_allowcloudprotection").default == 1


@pytest.mark.parametrize(
    ("name", "slug", "policy_type", "template_id", "family", "platforms", "mde"),
    [
        (AV, "microsoft-defender-antivirus", "antivirus", "804339ad-1553-4478-a742-138fb5807418_1",
         "endpointSecurityAntivirus", ("windows",), True),
        ("Microsoft Defender Antivirus exclusions", "microsoft-defender-antivirus-exclusions", "antivirus",
         "45fea5e9-280d-4da1-9792-fb5736da0ca9_1", "endpointSecurityAntivirus", ("windows",), True),
        ("Windows Security Experience", "windows-security-experience", "antivirus",
         "d948ff9b-99cb-4ee0-8012-1fbc09685377_1", "endpointSecurityAntivirus", ("windows",), False),
        ("Microsoft Defender Firewall", "microsoft-defender-firewall", "firewall",
         "6078910e-d808-4a9f-a51d-1b8a7bacb7c0_1", "endpointSecurityFirewall", ("windows",), True),
        ("Microsoft Defender Firewall Rules", "microsoft-defender-firewall-rules", "firewall",
         "19c8aa67-f286-4861-9aa0-f23541d31680_1", "endpointSecurityFirewall", ("windows",), True),
        ("Endpoint detection and response", "endpoint-detection-and-response", "edr",
         "0385b795-0f2f-44ac-8602-9f65bf6adede_1", "endpointSecurityEndpointDetectionAndResponse",
         ("windows",), True),
        ("Attack Surface Reduction Rules", "attack-surface-reduction-rules", "asr", ASR_TEMPLATE_ID,
         "endpointSecurityAttackSurfaceReduction", ("windows",), True),
    ],
)  # fmt: skip
def test_each_profile_carries_its_policy_type_template_and_platforms(
    catalog, name, slug, policy_type, template_id, family, platforms, mde
):
    profile = catalog.profile(name)
    assert (profile.slug, profile.policy_type, profile.template_id, profile.template_family) == (
        slug,
        policy_type,
        template_id,
        family,
    )
    assert profile.platforms == platforms
    assert profile.mde_supported is mde
    assert catalog.profile(slug) is profile
    assert catalog.profile_for_template(template_id) is profile


def test_template_ids_come_from_the_data_except_the_windows_asr_template(catalog):
    templates = RAW["_meta"]["templates"]
    for profile in catalog.profiles.values():
        assert profile.template_id
        if profile.policy_type != "asr" and profile.name in templates:
            assert templates[profile.name] == profile.template_id
    assert (
        catalog.profile("attack-surface-reduction-rules").template_id
        != templates["Attack Surface Reduction Rules (ConfigMgr)"]
    )


def test_unknown_profiles_and_settings_raise_key_error(catalog):
    with pytest.raises(KeyError):
        catalog.profile("Disk encryption")
    with pytest.raises(KeyError):
        catalog.setting("device_vendor_msft_policy_config_defender_nosuchsetting")
    with pytest.raises(KeyError):
        catalog.profile_of("nope")


def test_firewall_rule_children_are_every_setting_under_the_rule_prefix(catalog):
    group = catalog.setting(FIREWALL_RULE_GROUP_ID)
    expected = [
        s.id for s in catalog.profile("Microsoft Defender Firewall Rules").settings if s.id != group.id
    ]
    assert sorted(group.children) == sorted(expected)
    assert len(group.children) == 22
    assert group.is_instance_collection and group.is_value_key
    for child in group.children:
        assert catalog.setting(child).parent_id == FIREWALL_RULE_GROUP_ID


def test_asr_rules_are_children_of_the_rules_group_and_not_a_value_key(catalog):
    group = catalog.setting(ASR_RULES_GROUP_ID)
    assert len(group.children) == 19
    assert not group.is_value_key
    for rule_id in group.children:
        rule = catalog.setting(rule_id)
        assert rule.parent_id == ASR_RULES_GROUP_ID
        assert rule.asr_guid and rule.supports_warn is not None


def test_asr_rules_helper_pairs_each_rule_with_its_per_rule_exclusions(catalog):
    pairs = asr_rules(catalog)
    assert len(pairs) == 19
    without = [rule.display_name for rule, exclusions in pairs if exclusions is None]
    assert without == ["Block persistence through WMI event subscription"]
    for rule, exclusions in pairs:
        if exclusions is not None:
            assert exclusions.id == rule.id + "_perruleexclusions"
            assert exclusions.parent_id == rule.id


def test_only_lsass_and_office_injection_rules_refuse_warn(catalog):
    no_warn = {rule.asr_guid for rule, _ in asr_rules(catalog) if rule.supports_warn is False}
    assert no_warn == {"9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2", "75668c1f-73b5-4cf0-bb93-3ecf5cb7cc84"}


def test_threat_severity_actions_are_children_of_their_group(catalog):
    group = catalog.setting(THREAT_SEVERITY_GROUP_ID)
    assert sorted(group.children) == sorted(
        THREAT_SEVERITY_GROUP_ID + suffix
        for suffix in (
            "_lowseveritythreats",
            "_moderateseveritythreats",
            "_highseveritythreats",
            "_severethreats",
        )
    )
    assert all(catalog.setting(c).category == "Remediation" for c in group.children)


def test_firewall_settings_are_grouped_by_network_profile(catalog):
    categories = Counter(s.category for s in catalog.profile("Microsoft Defender Firewall").settings)
    assert categories == {"Domain profile": 17, "Private profile": 17, "Public profile": 17, "Global": 8}


def test_every_setting_has_a_category_and_a_learn_more_link(catalog):
    for setting in catalog.all_settings():
        assert setting.category
        if not setting.is_managed_config:
            assert setting.learn_more_url.startswith(
                "https://learn.microsoft.com/windows/client-management/mdm/"
            )
    asr = catalog.profile("Attack Surface Reduction Rules")
    assert catalog.setting(LSASS).category == "Attack Surface Reduction Rules"
    assert {s.category for s in asr.settings} <= {
        "Attack Surface Reduction Rules",
        "Controlled Folder Access",
    }


@pytest.mark.parametrize(
    ("csp_path", "url"),
    [
        ("./Device/Vendor/MSFT/Policy/Config/Defender/AllowCloudProtection",
         "https://learn.microsoft.com/windows/client-management/mdm/policy-csp-defender#allowcloudprotection"),
        ("./Vendor/MSFT/Defender/Configuration/DisableLocalAdminMerge",
         "https://learn.microsoft.com/windows/client-management/mdm/defender-csp"),
        ("./Vendor/MSFT/Firewall/MdmStore/DomainProfile/Shielded",
         "https://learn.microsoft.com/windows/client-management/mdm/firewall-csp"),
        ("./Device/Vendor/MSFT/WindowsAdvancedThreatProtection/Configuration/SampleSharing",
         "https://learn.microsoft.com/windows/client-management/mdm/windowsadvancedthreatprotection-csp"),
        ("./Device/Vendor/MSFT/Policy/Config/WindowsDefenderSecurityCenter/CompanyName",
         "https://learn.microsoft.com/windows/client-management/mdm/policy-csp-windowsdefendersecuritycenter#companyname"),
    ],
)  # fmt: skip
def test_learn_more_links_point_at_the_csp_documentation(csp_path, url):
    assert learn_more_url(csp_path) == url


def test_mde_support_follows_technologies_and_the_unsupported_list(catalog):
    assert catalog.setting("device_vendor_msft_policy_config_defender_allowrealtimemonitoring").mde_supported
    assert not catalog.setting(
        "device_vendor_msft_policy_config_defender_allowintrusionpreventionsystem"
    ).mde_supported
    assert not catalog.setting("vendor_msft_firewall_mdmstore_global_enableauditmode").mde_supported
    assert not catalog.setting(
        "device_vendor_msft_windowsadvancedthreatprotection_configuration_telemetryreportingfrequency"
    ).mde_supported


def test_hidden_settings_get_a_readable_name(catalog):
    hidden = catalog.setting(FIREWALL_RULE_GROUP_ID + "_firewallrulename")
    assert hidden.hidden and hidden.display_name == "Firewall Rule Name"
    assert catalog.setting(FIREWALL_RULE_GROUP_ID).display_name == "Firewall Rule Name"
    assert not catalog.setting(LSASS).hidden


def test_the_pure_policy_modules_load_without_django():
    code = (
        "import sys, policies.catalog, policies.validation, policies.graph; "
        "sys.exit(any(m.split('.')[0] == 'django' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
