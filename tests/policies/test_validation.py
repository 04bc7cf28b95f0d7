"""Behaviour of setting value validation (pure: real catalog, no database)."""

from __future__ import annotations

import pytest

from policies.catalog import ASR_RULES_GROUP_ID, FIREWALL_RULE_GROUP_ID, THREAT_SEVERITY_GROUP_ID, get_catalog
from policies.validation import (
    FIREWALL_ADDRESS_KEYWORDS,
    RuleValidationError,
    SettingValidationError,
    parse_value,
    validate_firewall_rule,
    validate_policy_values,
)

CATALOG = get_catalog()
AV = CATALOG.profile("Microsoft Defender Antivirus")
EXCLUSIONS = CATALOG.profile("Microsoft Defender Antivirus exclusions")
ASR = CATALOG.profile("Attack Surface Reduction Rules")
FIREWALL = CATALOG.profile("Microsoft Defender Firewall")
RULES = CATALOG.profile("Microsoft Defender Firewall Rules")

DEFENDER = "device_vendor_msft_policy_config_defender_"
RTM = DEFENDER + "allowrealtimemonitoring"
CLOUD_BLOCK = DEFENDER + "cloudblocklevel"
AVG_CPU = DEFENDER + "avgcpuloadfactor"
EXT = DEFENDER + "excludedextensions"
PATHS = DEFENDER + "excludedpaths"
PROCESSES = DEFENDER + "excludedprocesses"
LSASS = ASR_RULES_GROUP_ID + "_blockcredentialstealingfromwindowslocalsecurityauthoritysubsystem"
OFFICE_INJECTION = ASR_RULES_GROUP_ID + "_blockofficeapplicationsfrominjectingcodeintootherprocesses"
ADOBE = ASR_RULES_GROUP_ID + "_blockadobereaderfromcreatingchildprocesses"
OBFUSCATED = ASR_RULES_GROUP_ID + "_blockexecutionofpotentiallyobfuscatedscripts"
FW = FIREWALL_RULE_GROUP_ID + "_"


def s(setting_id: str):
    return CATALOG.setting(setting_id)


def refused(setting_id: str, raw) -> SettingValidationError:
    with pytest.raises(SettingValidationError) as info:
        parse_value(s(setting_id), raw)
    assert info.value.setting_id == setting_id
    assert info.value.message and info.value.message[-1] in ".)"
    return info.value


# ---------------------------------------------------------------------------------------------------- errors


def test_a_validation_error_is_a_value_error_with_the_setting_id_and_a_sentence():
    error = SettingValidationError(RTM, "Choose an option.")
    assert isinstance(error, ValueError)
    assert (error.setting_id, error.message, error.rule_index) == (RTM, "Choose an option.", None)
    assert RTM in str(error)


# ---------------------------------------------------------------------------------------------------- choice


@pytest.mark.parametrize("raw", [1, "1", " 1 ", RTM + "_1"])
def test_it_accepts_a_choice_as_its_value_its_str_form_or_its_item_id(raw):
    assert parse_value(s(RTM), raw) == 1


def test_it_returns_the_catalog_typed_option_value():
    assert parse_value(s(CLOUD_BLOCK), "6") == 6
    action = s(FW + "action_type")  # options are the strings "0"/"1"
    assert parse_value(action, 0) == "0"
    assert parse_value(s("vendor_msft_firewall_mdmstore_domainprofile_enablefirewall"), True) == "true"
    assert parse_value(s("vendor_msft_firewall_mdmstore_domainprofile_enablefirewall"), "False") == "false"


def test_it_accepts_asr_values_whatever_the_guid_case():
    value = parse_value(s(OBFUSCATED), "5beb7efe-fd9a-4556-801d-275e5ffc04cc=1")
    assert value == "5BEB7EFE-FD9A-4556-801D-275E5FFC04CC=1"


@pytest.mark.parametrize("raw", [3, "3", "yes", True, 1.0, ["1"]])
def test_it_refuses_a_value_that_is_not_an_option(raw):
    error = refused(CLOUD_BLOCK, raw)
    assert "Choose one of" in error.message and "Cloud Block Level" in error.message


def test_it_refuses_warn_for_lsass_rule():
    error = refused(LSASS, "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2=6")
    assert "doesn't support Warn" in error.message
    assert "Block credential stealing" in error.message


def test_it_refuses_warn_for_office_code_injection_rule():
    assert "Warn" in refused(OFFICE_INJECTION, "75668C1F-73B5-4CF0-BB93-3ECF5CB7CC84=6").message


def test_it_accepts_warn_for_rules_that_support_it():
    assert (
        parse_value(s(ADOBE), "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=6")
        == "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=6"
    )


def test_it_accepts_block_audit_and_off_for_lsass_rule():
    for code in (0, 1, 2):
        assert parse_value(s(LSASS), f"9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2={code}").endswith(f"={code}")


def test_threat_severity_actions_take_severity_action_pairs():
    high = THREAT_SEVERITY_GROUP_ID + "_highseveritythreats"
    assert parse_value(s(high), "4=2") == "4=2"
    refused(high, "5=2")


# ---------------------------------------------------------------------------------------------------- choice collection


def test_a_choice_collection_keeps_order_and_drops_duplicates():
    interfaces = FW + "interfacetypes"
    assert parse_value(s(interfaces), ["lan", "wireless", "lan"]) == ["lan", "wireless"]
    assert parse_value(s(interfaces), "all") == ["all"]
    assert parse_value(s(FW + "profiles"), [1, "2", 4]) == ["1", "2", "4"]


def test_a_choice_collection_refuses_unknown_options_and_empty_lists():
    refused(FW + "interfacetypes", ["lan", "bluetooth"])
    refused(FW + "interfacetypes", ["", " "])


# ---------------------------------------------------------------------------------------------------- integer


@pytest.mark.parametrize(("raw", "expected"), [(50, 50), ("0", 0), (" 100 ", 100), (7.0, 7)])
def test_it_parses_integers_from_numbers_and_strings(raw, expected):
    assert parse_value(s(AVG_CPU), raw) == expected


@pytest.mark.parametrize("raw", [101, -1, "101"])
def test_it_refuses_integers_out_of_range(raw):
    assert "between 0 and 100" in refused(AVG_CPU, raw).message


@pytest.mark.parametrize("raw", ["abc", "5.5", 5.5, True, ""])
def test_it_refuses_values_that_are_not_whole_numbers(raw):
    assert "whole number" in refused(AVG_CPU, raw).message


def test_integer_ranges_come_from_the_catalog():
    said = "vendor_msft_firewall_mdmstore_global_saidletime"
    assert parse_value(s(said), 300) == 300
    assert "between 300 and 3600" in refused(said, 299).message
    assert parse_value(s(FW + "protocol"), 255) == 255
    refused(FW + "protocol", 256)


# ---------------------------------------------------------------------------------------------------- string


def test_a_string_is_trimmed():
    assert parse_value(s(FW + "name"), "  Allow web  ") == "Allow web"


def test_an_empty_string_is_refused():
    assert "Not configured" in refused(FW + "name", "   ").message


def test_a_string_must_be_text():
    refused(FW + "name", 12)


def test_a_string_longer_than_max_length_is_refused():
    exclusions = LSASS + "_perruleexclusions"
    assert "at most 1024 characters" in refused(exclusions, ["C:\\" + "a" * 1100]).message


def test_a_string_must_match_the_input_validation_pattern():
    exclusions = LSASS + "_perruleexclusions"
    assert "can't contain |, = or >" in refused(exclusions, ["C:\\a|b"]).message


def test_firewall_log_file_path_default_is_a_valid_path():
    path = s("vendor_msft_firewall_mdmstore_domainprofile_logfilepath")
    assert parse_value(path, path.default) == path.default
    refused(path.id, "pfirewall.log")


# ---------------------------------------------------------------------------------------------------- string collections


def test_a_string_collection_is_trimmed_and_deduplicated():
    assert parse_value(
        s(FW + "localuserauthorizedlist"), [" O:LSD:(A;;CC;;;S-1-5-1) ", "O:LSD:(A;;CC;;;S-1-5-1)"]
    ) == ["O:LSD:(A;;CC;;;S-1-5-1)"]


def test_a_string_collection_accepts_one_value_per_line():
    assert parse_value(s(PATHS), "C:\\Temp\n\nD:\\Build\n") == ["C:\\Temp", "D:\\Build"]


def test_an_empty_string_collection_is_refused():
    assert "at least one" in refused(PATHS, ["  "]).message


# ports ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["80"], ["80"]),
        (["1000-2000"], ["1000-2000"]),
        ("80,443,1000-2000", ["80", "443", "1000-2000"]),
        (["80, 443", "443"], ["80", "443"]),
        ([80, 443], ["80", "443"]),
        (["1 - 65535"], ["1-65535"]),
    ],
)
def test_it_accepts_ports_and_port_ranges(raw, expected):
    assert parse_value(s(FW + "localportranges"), raw) == expected
    assert parse_value(s(FW + "remoteportranges"), raw) == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("0", "1 to 65535"),
        ("65536", "1 to 65535"),
        ("2000-1000", "lower port first"),
        ("http", "port"),
        ("80-", "port"),
    ],
)
def test_it_refuses_bad_ports(raw, words):
    assert words in refused(FW + "localportranges", [raw]).message


# addresses --------------------------------------------------------------------------------------------------

GOOD_ADDRESSES = [
    "10.0.0.1",
    "10.0.0.0/24",
    "10.0.0.0/255.255.255.0",
    "2001:db8::1",
    "2001:db8::/32",
    "10.0.0.1-10.0.0.50",
    "2001:db8::1-2001:db8::ff",
]


@pytest.mark.parametrize("raw", GOOD_ADDRESSES + ["*"])
def test_it_accepts_addresses_subnets_and_ranges(raw):
    assert parse_value(s(FW + "remoteaddressranges"), [raw]) == [raw]
    assert parse_value(s(FW + "localaddressranges"), [raw]) == [raw]


@pytest.mark.parametrize("keyword", [*FIREWALL_ADDRESS_KEYWORDS, "localsubnet", "DefaultGateway"])
def test_it_accepts_the_firewall_csp_remote_address_keywords(keyword):
    assert parse_value(s(FW + "remoteaddressranges"), [keyword]) == [keyword]


def test_keywords_are_only_for_remote_addresses():
    refused(FW + "localaddressranges", ["LocalSubnet"])


@pytest.mark.parametrize("raw", ["RemoteCorpNetwork", "Anywhere"])
def test_it_refuses_words_that_are_not_csp_keywords_and_lists_the_valid_ones(raw):
    assert "RmtIntranet" in refused(FW + "remoteaddressranges", [raw]).message


@pytest.mark.parametrize(
    "raw", ["10.0.0.300", "10.0.0.9-10.0.0.1", "10.0.0.1-2001:db8::1", "10.0.0.0/33", "1.2.3"]
)
def test_it_refuses_malformed_addresses(raw):
    refused(FW + "remoteaddressranges", [raw])


def test_any_address_must_be_the_only_entry():
    assert "only entry" in refused(FW + "remoteaddressranges", ["*", "10.0.0.1"]).message


def test_addresses_may_be_one_comma_separated_string():
    assert parse_value(s(FW + "remoteaddressranges"), "10.0.0.1, DNS") == ["10.0.0.1", "DNS"]


# paths ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "C:\\Temp",
        "c:/data/file.txt",
        "\\\\server\\share\\folder",
        "%ProgramFiles%\\Contoso",
        "%ProgramFiles(x86)%\\Contoso\\app.exe",
        "C:\\Users\\*\\AppData\\Local\\Temp\\?.tmp",
        "/var/log",
    ],
)
def test_it_accepts_full_paths_for_path_exclusions(raw):
    assert parse_value(s(PATHS), [raw]) == [raw]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("Temp\\logs", "full path"),
        ("logs", "full path"),
        ("C:\\a<b", "aren't allowed"),
        ("C:\\a\\b:c", "aren't allowed"),
        ('C:\\"quoted"', "aren't allowed"),
    ],
)
def test_it_refuses_relative_paths_and_illegal_characters(raw, words):
    assert words in refused(PATHS, [raw]).message


def test_path_exclusions_are_deduplicated_ignoring_case():
    assert parse_value(s(PATHS), ["C:\\Temp", "c:\\temp"]) == ["C:\\Temp"]


def test_the_firewall_rule_app_file_path_must_be_a_full_path():
    assert parse_value(s(FW + "app_filepath"), "%WINDIR%\\Notepad.exe") == "%WINDIR%\\Notepad.exe"
    refused(FW + "app_filepath", "notepad.exe")
    refused(FW + "app_filepath", "/usr/bin/app")


def test_per_rule_asr_exclusions_are_paths():
    exclusions = ADOBE + "_perruleexclusions"
    assert parse_value(s(exclusions), ["C:\\Tools\\reader.exe"]) == ["C:\\Tools\\reader.exe"]
    refused(exclusions, ["reader.exe"])


# extensions -------------------------------------------------------------------------------------------------


def test_it_accepts_extensions_with_or_without_the_dot_and_deduplicates_them():
    assert parse_value(s(EXT), [".log", "tmp", "LOG", ".tmp"]) == [".log", "tmp"]


@pytest.mark.parametrize("raw", ["C:\\logs\\.log", "logs/.log", "my ext", ".", "a|b"])
def test_it_refuses_things_that_are_not_extensions(raw):
    refused(EXT, [raw])


# processes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["notepad.exe", "C:\\Program Files\\Contoso\\agent.exe", "%WINDIR%\\a.com", "/usr/bin/python3"]
)
def test_it_accepts_process_names_and_full_paths(raw):
    assert parse_value(s(PROCESSES), [raw]) == [raw]


@pytest.mark.parametrize(
    "raw", ["notepad", "C:\\Program Files\\Contoso\\", "Contoso\\agent.exe", "bad|name.exe"]
)
def test_it_refuses_processes_without_an_executable_name(raw):
    refused(PROCESSES, [raw])


# GUIDs and ICMP ---------------------------------------------------------------------------------------------


def test_reusable_groups_are_guids():
    setting = FW + "remoteaddressdynamickeywords"
    guid = "5f1d3c2a-9b7e-4c1d-8a2b-3c4d5e6f7a8b"
    assert parse_value(s(setting), [guid, "{" + guid + "}"]) == [guid]
    assert "GUID" in refused(setting, ["not-a-guid"]).message


@pytest.mark.parametrize("raw", ["3:4", "1:*", "255:255", "*"])
def test_it_accepts_icmp_type_and_code_pairs(raw):
    assert parse_value(s(FW + "icmptypesandcodes"), [raw]) == [raw]


@pytest.mark.parametrize("raw", ["*:4", "*:*", "256:1", "3:256", "3", "echo"])
def test_it_refuses_malformed_icmp_types(raw):
    refused(FW + "icmptypesandcodes", [raw])


def test_service_names_are_not_paths():
    assert parse_value(s(FW + "app_servicename"), "Dnscache") == "Dnscache"
    refused(FW + "app_servicename", "C:\\Windows\\svchost.exe")


# ---------------------------------------------------------------------------------------------------- groups


def test_a_group_parent_has_no_value_of_its_own():
    assert "group" in refused(ASR_RULES_GROUP_ID, "anything").message
    refused(THREAT_SEVERITY_GROUP_ID, ["4=2"])


# ---------------------------------------------------------------------------------------------------- firewall rules


def rule(**fields):
    return {FW + key: value for key, value in fields.items()}


def rule_errors(candidate) -> dict[str, str]:
    with pytest.raises(RuleValidationError) as info:
        validate_firewall_rule(candidate)
    assert isinstance(info.value, SettingValidationError)
    return dict(info.value.errors)


def test_a_valid_firewall_rule_comes_back_cleaned():
    cleaned = validate_firewall_rule(
        rule(name=" Web ", protocol="6", localportranges="80,443", direction="in", action_type=1)
    )
    assert cleaned == rule(
        name="Web", protocol=6, localportranges=["80", "443"], direction="in", action_type="1"
    )


def test_a_firewall_rule_accepts_field_suffixes_as_keys():
    assert validate_firewall_rule({"name": "Web", "protocol": 17}) == rule(name="Web", protocol=17)


def test_a_firewall_rule_needs_a_name():
    assert rule_errors(rule(protocol=6)) == {FW + "name": "Enter a name for the rule."}
    assert FW + "name" in rule_errors(rule(name="  "))


@pytest.mark.parametrize("protocol", [6, 17])
def test_port_ranges_are_allowed_with_tcp_or_udp(protocol):
    validate_firewall_rule(rule(name="r", protocol=protocol, remoteportranges=["443"]))


@pytest.mark.parametrize("protocol", [1, 58, 0, None])
def test_port_ranges_are_refused_without_tcp_or_udp(protocol):
    candidate = rule(name="r", localportranges=["80"], remoteportranges=["443"])
    if protocol is not None:
        candidate[FW + "protocol"] = protocol
    errors = rule_errors(candidate)
    assert set(errors) == {FW + "localportranges", FW + "remoteportranges"}
    assert "TCP (6) or UDP (17)" in errors[FW + "localportranges"]


@pytest.mark.parametrize("protocol", [1, 58])
def test_icmp_types_are_allowed_with_icmp_protocols(protocol):
    validate_firewall_rule(rule(name="r", protocol=protocol, icmptypesandcodes=["8:*"]))


def test_icmp_types_are_refused_with_other_protocols():
    errors = rule_errors(rule(name="r", protocol=6, icmptypesandcodes=["8:*"]))
    assert "ICMPv4 (1) or ICMPv6 (58)" in errors[FW + "icmptypesandcodes"]


def test_policy_app_id_and_service_name_are_mutually_exclusive():
    errors = rule_errors(rule(name="r", policyappid="ContosoTag", app_servicename="Dnscache"))
    assert set(errors) == {FW + "policyappid", FW + "app_servicename"}
    assert "can't be used in the same rule" in errors[FW + "policyappid"]


def test_protocol_must_be_between_0_and_255():
    errors = rule_errors(rule(name="r", protocol=300))
    assert "between 0 and 255" in errors[FW + "protocol"]


def test_every_problem_of_a_rule_is_reported_beside_its_field():
    errors = rule_errors(
        {FW + "protocol": 1, FW + "localportranges": ["99999"], FW + "direction": "sideways", "colour": "red"}
    )
    assert set(errors) == {FW + "localportranges", FW + "direction", "colour", FW + "name"}


def test_the_rule_identifier_cannot_contain_a_slash():
    assert FW + "firewallrulename" in rule_errors(rule(name="r", firewallrulename="a/b"))


def test_a_firewall_rule_must_be_an_object():
    rule_errors(["name", "Web"])


# ---------------------------------------------------------------------------------------------------- whole policies


def test_it_validates_a_whole_policy_and_returns_clean_values():
    clean, errors = validate_policy_values(AV, {RTM: "1", CLOUD_BLOCK: 2, AVG_CPU: "40"})
    assert errors == []
    assert clean == {RTM: 1, CLOUD_BLOCK: 2, AVG_CPU: 40}


def test_blank_values_mean_not_configured():
    clean, errors = validate_policy_values(AV, {RTM: None, AVG_CPU: "", CLOUD_BLOCK: 0})
    assert (clean, errors) == ({CLOUD_BLOCK: 0}, [])


def test_unknown_ids_for_the_profile_are_errors():
    edr = "device_vendor_msft_windowsadvancedthreatprotection_configuration_samplesharing"
    clean, errors = validate_policy_values(AV, {RTM: 1, edr: 1, "nope": 1})
    assert clean == {RTM: 1}
    assert [e.setting_id for e in errors] == [edr, "nope"]
    assert "Microsoft Defender Antivirus profile" in errors[0].message


def test_every_bad_value_is_reported_and_good_ones_are_kept():
    clean, errors = validate_policy_values(
        EXCLUSIONS, {EXT: ["a/b"], PATHS: ["relative"], PROCESSES: ["ok.exe"]}
    )
    assert clean == {PROCESSES: ["ok.exe"]}
    assert {e.setting_id for e in errors} == {EXT, PATHS}


def test_group_parents_are_not_value_keys():
    _, errors = validate_policy_values(ASR, {ASR_RULES_GROUP_ID: "x"})
    assert [e.setting_id for e in errors] == [ASR_RULES_GROUP_ID]


def test_warn_is_refused_in_a_whole_policy_too():
    _, errors = validate_policy_values(ASR, {LSASS: "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2=6"})
    assert [e.setting_id for e in errors] == [LSASS]


def test_per_rule_exclusions_need_their_rule_in_block_audit_or_warn():
    exclusions = ADOBE + "_perruleexclusions"
    clean, errors = validate_policy_values(ASR, {exclusions: ["C:\\x.exe"]})
    assert clean == {} and [e.setting_id for e in errors] == [exclusions]
    assert "Not configured" in errors[0].message
    _, errors = validate_policy_values(
        ASR, {ADOBE: "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=0", exclusions: ["C:\\x.exe"]}
    )
    assert "Off" in errors[0].message
    clean, errors = validate_policy_values(
        ASR, {ADOBE: "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=2", exclusions: ["C:\\x.exe"]}
    )
    assert errors == [] and clean[exclusions] == ["C:\\x.exe"]


def test_firewall_rule_errors_name_the_field_and_the_rule():
    values = {
        FIREWALL_RULE_GROUP_ID: [
            rule(name="Good", protocol=6, localportranges=["443"]),
            rule(name="Bad", protocol=1, localportranges=["80"]),
        ]
    }
    clean, errors = validate_policy_values(RULES, values)
    assert clean == {FIREWALL_RULE_GROUP_ID: [rule(name="Good", protocol=6, localportranges=["443"])]}
    assert [(e.setting_id, e.rule_index) for e in errors] == [(FW + "localportranges", 1)]
    assert errors[0].message.startswith("Rule 2 (“Bad”): ")


def test_firewall_rules_must_be_a_list():
    _, errors = validate_policy_values(RULES, {FIREWALL_RULE_GROUP_ID: {"name": "x"}})
    assert [e.setting_id for e in errors] == [FIREWALL_RULE_GROUP_ID]


def test_parse_value_reports_every_bad_rule_of_a_rule_list():
    with pytest.raises(RuleValidationError) as info:
        parse_value(
            s(FIREWALL_RULE_GROUP_ID), [rule(protocol=6), rule(name="ok"), rule(name="x", protocol=999)]
        )
    assert [child for child, _ in info.value.errors] == [FW + "name", FW + "protocol"]
    assert info.value.errors[1][1].startswith("Rule 3 (“x”)")


def test_firewall_profile_settings_validate_per_network_profile():
    clean, errors = validate_policy_values(
        FIREWALL,
        {
            "vendor_msft_firewall_mdmstore_domainprofile_enablefirewall": "true",
            "vendor_msft_firewall_mdmstore_publicprofile_defaultinboundaction": "1",
            "vendor_msft_firewall_mdmstore_global_ipsecexempt": ["1", "2"],
        },
    )
    assert errors == []
    assert clean["vendor_msft_firewall_mdmstore_publicprofile_defaultinboundaction"] == 1


def test_a_field_of_a_list_entry_or_a_firewall_rule_is_refused_as_a_top_level_value():
    from policies.catalog import FIREWALL_RULE_GROUP_ID, get_catalog
    from policies.validation import validate_policy_values

    catalog = get_catalog()
    linux = catalog.profile("Microsoft Defender Antivirus (Linux)")
    clean, errors = validate_policy_values(
        linux, {"linux_mdatp_managed_antivirusengine_exclusions_item_path": "/run"}
    )
    assert clean == {} and "set it inside one of its entries" in errors[0].message
    rules = catalog.profile("Microsoft Defender Firewall Rules")
    clean, errors = validate_policy_values(rules, {FIREWALL_RULE_GROUP_ID + "_name": "x"})
    assert clean == {} and "set it inside one of its entries" in errors[0].message


def test_macos_linux_exclusions_are_checked_per_type():
    from policies.catalog import get_catalog
    from policies.validation import validate_policy_values

    catalog = get_catalog()
    e = "linux_mdatp_managed_antivirusengine_exclusions"
    linux = catalog.profile("Microsoft Defender Antivirus (Linux)")
    clean, errors = validate_policy_values(
        linux,
        {
            e: [
                {"$type": "excludedPath", "path": "/run", "isDirectory": "true"},
                {"$type": "excludedPath", "path": "/run", "isDirectory": True},  # the same entry: kept once
                {"$type": "excludedFileExtension", "extension": "pdf"},
            ]
        },
    )
    assert errors == []
    assert clean[e] == [
        {e + "_item_$type": "excludedPath", e + "_item_path": "/run", e + "_item_isdirectory": True},
        {e + "_item_$type": "excludedFileExtension", e + "_item_extension": "pdf"},
    ]
    _, errors = validate_policy_values(
        linux,
        {
            e: [
                {"$type": "excludedFileName"},
                {"$type": "excludedFileExtension", "extension": ".pdf", "path": "/x"},
                {"path": "/a"},
                {"colour": 1},
            ]
        },
    )
    message = errors[0].message
    assert "Exclusion 1: Enter the process name to exclude." in message
    assert "Exclusion 2: “Path” doesn't apply to a File extension exclusion; clear it." in message
    assert "Exclusion 3: Choose the type of the exclusion" in message
    assert "Exclusion 4: “colour” isn't a field of Scan exclusions." in message
    g = "linux_mdatp_managed_exclusionsettings_exclusions"
    glob = catalog.profile("Microsoft Defender Global Exclusions (AV+EDR) (Linux)")
    _, errors = validate_policy_values(
        glob,
        {g: [{"$type": "excludedPath", "path": "/opt/*"}, {"$type": "excludedFileName", "name": "agentd"}]},
    )
    assert "don't support * or ?" in errors[0].message and "isn't a full path" in errors[0].message
