"""Behaviour of the Graph settings-catalog serialisation of policy values (pure: real catalog, no database)."""

from __future__ import annotations

import copy
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.catalog import (
    ASR_RULES_GROUP_ID,
    FIREWALL_RULE_GROUP_ID,
    THREAT_SEVERITY_GROUP_ID,
    Profile,
    SettingDef,
    get_catalog,
)
from policies.graph import (
    CHOICE_INSTANCE,
    GROUP_COLLECTION_INSTANCE,
    SIMPLE_COLLECTION_INSTANCE,
    from_graph_settings,
    to_graph_settings,
)
from policies.validation import is_off

CATALOG = get_catalog()
AV = CATALOG.profile("Microsoft Defender Antivirus")
ASR = CATALOG.profile("Attack Surface Reduction Rules")
RULES = CATALOG.profile("Microsoft Defender Firewall Rules")
FIREWALL = CATALOG.profile("Microsoft Defender Firewall")

DEFENDER = "device_vendor_msft_policy_config_defender_"
RTM = DEFENDER + "allowrealtimemonitoring"
EXT = DEFENDER + "excludedextensions"
AVG_CPU = DEFENDER + "avgcpuloadfactor"
LSASS = ASR_RULES_GROUP_ID + "_blockcredentialstealingfromwindowslocalsecurityauthoritysubsystem"
ADOBE = ASR_RULES_GROUP_ID + "_blockadobereaderfromcreatingchildprocesses"
WMI = ASR_RULES_GROUP_ID + "_blockpersistencethroughwmieventsubscription"
FW = FIREWALL_RULE_GROUP_ID + "_"
GRAPH = "#microsoft.graph.deviceManagementConfiguration"

# The create request msgraph-beta-sdk sent (graph-api-shapes.md §1 "Create request"), verbatim.
SDK_CREATE_REQUEST = json.loads(
    r"""
{
  "technologies": "mdm,microsoftSense",
  "description": "feasibility test",
  "name": "AV - created by SDK",
  "platforms": "windows10",
  "settings": [
    {"settingInstance": {
      "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
      "settingDefinitionId": "device_vendor_msft_policy_config_defender_allowrealtimemonitoring",
      "choiceSettingValue": {
        "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingValue",
        "children": [],
        "value": "device_vendor_msft_policy_config_defender_allowrealtimemonitoring_1"}}},
    {"settingInstance": {
      "@odata.type": "#microsoft.graph.deviceManagementConfigurationSimpleSettingCollectionInstance",
      "settingDefinitionId": "device_vendor_msft_policy_config_defender_excludedextensions",
      "simpleSettingCollectionValue": [
        {"@odata.type": "#microsoft.graph.deviceManagementConfigurationStringSettingValue", "value": ".log"}]}}
  ],
  "templateReference": {"templateFamily": "endpointSecurityAntivirus",
                        "templateId": "804339ad-1553-4478-a742-138fb5807418_1"}
}
"""
)

# The firewall rule example of graph-api-shapes.md §1 (abridged from a public admin script), verbatim.
FIREWALL_RULE_EXAMPLE = json.loads(
    r"""
{"settingInstance": {
  "@odata.type": "#microsoft.graph.deviceManagementConfigurationGroupSettingCollectionInstance",
  "settingDefinitionId": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}",
  "settingInstanceTemplateReference": {"settingInstanceTemplateId": "76c7a8be-67d2-44bf-81a5-38c94926b1a1"},
  "groupSettingCollectionValue": [{"children": [
    {"@odata.type": "#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance",
     "settingDefinitionId": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_name",
     "simpleSettingValue": {"@odata.type": "#microsoft.graph.deviceManagementConfigurationStringSettingValue", "value": "Block Chrome Internet"}},
    {"@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
     "settingDefinitionId": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_action_type",
     "choiceSettingValue": {"@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingValue",
                            "value": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_action_type_0", "children": []}},
    {"@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
     "settingDefinitionId": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_direction",
     "choiceSettingValue": {"@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingValue",
                            "value": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_direction_out", "children": []}},
    {"@odata.type": "#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance",
     "settingDefinitionId": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_protocol",
     "simpleSettingValue": {"@odata.type": "#microsoft.graph.deviceManagementConfigurationIntegerSettingValue", "value": 6}},
    {"@odata.type": "#microsoft.graph.deviceManagementConfigurationSimpleSettingCollectionInstance",
     "settingDefinitionId": "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}_remoteportranges",
     "simpleSettingCollectionValue": [
       {"@odata.type": "#microsoft.graph.deviceManagementConfigurationStringSettingValue", "value": "80"},
       {"@odata.type": "#microsoft.graph.deviceManagementConfigurationStringSettingValue", "value": "443"}]}
  ]}]}}
"""
)

# The GET …/settings response the SDK accepts (graph-api-shapes.md §1), verbatim.
GET_SETTINGS_RESPONSE = json.loads(
    r"""
{"value": [{"id": "0", "settingInstance": {
  "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
  "settingDefinitionId": "device_vendor_msft_policy_config_defender_allowrealtimemonitoring",
  "settingInstanceTemplateReference": null,
  "choiceSettingValue": {"value": "device_vendor_msft_policy_config_defender_allowrealtimemonitoring_1",
                         "settingValueTemplateReference": null, "children": []}}}]}
"""
)


def choice(setting_id: str, item_id: str, children=None) -> dict:
    return {
        "@odata.type": CHOICE_INSTANCE,
        "settingDefinitionId": setting_id,
        "choiceSettingValue": {
            "@odata.type": GRAPH + "ChoiceSettingValue",
            "children": children or [],
            "value": item_id,
        },
    }


def strings(setting_id: str, *values: str) -> dict:
    return {
        "@odata.type": SIMPLE_COLLECTION_INSTANCE,
        "settingDefinitionId": setting_id,
        "simpleSettingCollectionValue": [
            {"@odata.type": GRAPH + "StringSettingValue", "value": v} for v in values
        ],
    }


def integer(setting_id: str, value, value_type: str = "IntegerSettingValue") -> dict:
    return {
        "@odata.type": GRAPH + "SimpleSettingInstance",
        "settingDefinitionId": setting_id,
        "simpleSettingValue": {"@odata.type": GRAPH + value_type, "value": value},
    }


def wrap(*instances: dict) -> list[dict]:
    return [{"id": str(i), "settingInstance": inst} for i, inst in enumerate(instances)]


def error_ids(errors) -> list[str]:
    return [e.setting_id for e in errors]


# ---------------------------------------------------------------------------------------------------- exact shape


def test_it_produces_exactly_the_settings_the_sdk_sent_in_the_create_request():
    values = {RTM: 1, EXT: [".log"]}
    assert to_graph_settings(CATALOG, values, include_ids=False) == SDK_CREATE_REQUEST["settings"]


def test_it_numbers_the_settings_like_the_service_does():
    produced = to_graph_settings(CATALOG, {RTM: 1, EXT: [".log"]})
    assert [s["id"] for s in produced] == ["0", "1"]
    assert [{"settingInstance": s["settingInstance"]} for s in produced] == SDK_CREATE_REQUEST["settings"]


def test_it_reads_the_sdk_create_request_back_into_flat_values():
    values, errors = from_graph_settings(CATALOG, None, SDK_CREATE_REQUEST["settings"])
    assert (values, errors) == ({RTM: 1, EXT: [".log"]}, [])


def test_the_sdk_example_is_a_valid_defender_antivirus_policy():
    # The SDK example posts an exclusion to the Defender Antivirus template: the profile has the exclusion lists
    # too (issue 14 item 1), as in Intune.
    values, errors = from_graph_settings(CATALOG, AV, SDK_CREATE_REQUEST["settings"])
    assert values == {RTM: 1, EXT: [".log"]}
    assert errors == []


def test_it_reads_the_get_settings_response_with_null_template_references():
    values, errors = from_graph_settings(CATALOG, AV, GET_SETTINGS_RESPONSE["value"])
    assert (values, errors) == ({RTM: 1}, [])


def test_it_reads_the_firewall_rule_example_of_the_reference():
    values, errors = from_graph_settings(CATALOG, RULES, [FIREWALL_RULE_EXAMPLE])
    assert errors == []
    assert values == {
        FIREWALL_RULE_GROUP_ID: [
            {
                FW + "name": "Block Chrome Internet",
                FW + "action_type": "0",
                FW + "direction": "out",
                FW + "protocol": 6,
                FW + "remoteportranges": ["80", "443"],
            }
        ]
    }
    produced = to_graph_settings(CATALOG, values, include_ids=False)
    expected = copy.deepcopy(FIREWALL_RULE_EXAMPLE)
    del expected["settingInstance"]["settingInstanceTemplateReference"]
    for element in expected["settingInstance"]["groupSettingCollectionValue"]:
        element["@odata.type"] = GRAPH + "GroupSettingValue"
    assert produced == [expected]


def test_it_accepts_what_powershell_scripts_add_to_each_setting():
    posted = [
        {
            "@odata.type": "#microsoft.graph.deviceManagementConfigurationSetting",
            "id": "0",
            "settingInstance": {
                **choice(RTM, RTM + "_0"),
                "settingInstanceTemplateReference": {
                    "settingInstanceTemplateId": "1d8f7e0a-0000-4000-8000-000000000000"
                },
            },
        },
        {
            "id": "1",
            "settingInstance": {
                "@odata.type": GRAPH + "SimpleSettingInstance",
                "settingDefinitionId": AVG_CPU,
                "simpleSettingValue": {
                    "@odata.type": GRAPH + "IntegerSettingValue",
                    "value": 30,
                    "settingValueTemplateReference": {
                        "settingValueTemplateId": "x",
                        "useTemplateDefault": False,
                    },
                },
            },
        },
    ]
    assert from_graph_settings(CATALOG, AV, posted) == ({RTM: 0, AVG_CPU: 30}, [])


def test_it_infers_the_instance_type_when_odata_type_is_missing():
    instance = choice(RTM, RTM + "_1")
    del instance["@odata.type"]
    del instance["choiceSettingValue"]["@odata.type"]
    assert from_graph_settings(CATALOG, "microsoft-defender-antivirus", [{"settingInstance": instance}]) == (
        {RTM: 1},
        [],
    )


def test_it_accepts_bare_setting_instances():
    assert from_graph_settings(CATALOG, AV, [choice(RTM, RTM + "_1")]) == ({RTM: 1}, [])


# ---------------------------------------------------------------------------------------------------- nesting


def test_asr_rules_are_one_group_collection_with_rules_and_their_exclusions_nested():
    values = {
        ADOBE: "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=1",
        LSASS: "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2=2",
        ADOBE + "_perruleexclusions": ["C:\\Tools\\reader.exe"],
        DEFENDER + "enablecontrolledfolderaccess": 1,
    }
    produced = to_graph_settings(CATALOG, values)
    assert [s["settingInstance"]["settingDefinitionId"] for s in produced] == [
        ASR_RULES_GROUP_ID,
        DEFENDER + "enablecontrolledfolderaccess",
    ]
    group = produced[0]["settingInstance"]
    assert group["@odata.type"] == GROUP_COLLECTION_INSTANCE
    assert len(group["groupSettingCollectionValue"]) == 1
    rules = group["groupSettingCollectionValue"][0]["children"]
    assert rules == [
        choice(ADOBE, ADOBE + "_block", [strings(ADOBE + "_perruleexclusions", "C:\\Tools\\reader.exe")]),
        choice(LSASS, LSASS + "_audit"),
    ]
    assert from_graph_settings(CATALOG, ASR, produced) == (values, [])


def test_threat_severity_actions_are_one_group_collection():
    high, low = (
        THREAT_SEVERITY_GROUP_ID + "_highseveritythreats",
        THREAT_SEVERITY_GROUP_ID + "_lowseveritythreats",
    )
    values = {RTM: 1, high: "4=2", low: "1=1"}
    produced = to_graph_settings(CATALOG, values)
    assert len(produced) == 2
    group = produced[1]["settingInstance"]
    assert group["settingDefinitionId"] == THREAT_SEVERITY_GROUP_ID
    assert group["groupSettingCollectionValue"][0]["children"] == [
        choice(high, high + "_quarantine"),
        choice(low, low + "_clean"),
    ]
    assert from_graph_settings(CATALOG, AV, produced) == (values, [])


def test_a_group_sent_as_a_single_group_setting_instance_is_accepted():
    group = {
        "@odata.type": GRAPH + "GroupSettingInstance",
        "settingDefinitionId": THREAT_SEVERITY_GROUP_ID,
        "groupSettingValue": {
            "children": [
                choice(
                    THREAT_SEVERITY_GROUP_ID + "_severethreats",
                    THREAT_SEVERITY_GROUP_ID + "_severethreats_block",
                )
            ]
        },
    }
    assert from_graph_settings(CATALOG, AV, wrap(group)) == (
        {THREAT_SEVERITY_GROUP_ID + "_severethreats": "5=10"},
        [],
    )


def test_firewall_rules_are_one_group_collection_element_per_rule():
    values = {
        FIREWALL_RULE_GROUP_ID: [
            {
                FW + "name": "Web",
                FW + "protocol": 6,
                FW + "localportranges": ["80", "443"],
                FW + "direction": "in",
            },
            {FW + "name": "Ping", FW + "protocol": 1, FW + "icmptypesandcodes": ["8:*"]},
        ]
    }
    produced = to_graph_settings(CATALOG, values)
    assert len(produced) == 1
    elements = produced[0]["settingInstance"]["groupSettingCollectionValue"]
    assert [len(e["children"]) for e in elements] == [4, 3]
    assert from_graph_settings(CATALOG, RULES, produced) == (values, [])


def test_settings_nested_under_a_choice_are_read_as_flat_values():
    # Real exports nest each network profile's settings under "Enable … Network Firewall" = true.
    enable = "vendor_msft_firewall_mdmstore_domainprofile_enablefirewall"
    inbound = "vendor_msft_firewall_mdmstore_domainprofile_defaultinboundaction"
    nested = choice(enable, enable + "_true", [choice(inbound, inbound + "_1")])
    assert from_graph_settings(CATALOG, FIREWALL, [{"settingInstance": nested}]) == (
        {enable: "true", inbound: 1},
        [],
    )


def test_it_refuses_to_serialise_exclusions_without_their_rule():
    with pytest.raises(ValueError):
        to_graph_settings(CATALOG, {ADOBE + "_perruleexclusions": ["C:\\x.exe"]})


def test_it_refuses_to_serialise_unknown_setting_ids():
    with pytest.raises(KeyError):
        to_graph_settings(CATALOG, {"nope": 1})


# ---------------------------------------------------------------------------------------------------- errors


def test_unknown_setting_ids_are_reported_with_their_id():
    values, errors = from_graph_settings(CATALOG, AV, wrap(choice(RTM, RTM + "_1"), choice("nope", "nope_1")))
    assert values == {RTM: 1}
    assert error_ids(errors) == ["nope"]
    assert "isn't a setting of the Microsoft Defender Antivirus profile" in errors[0].message


def test_wrong_option_ids_are_reported_with_the_setting_id():
    values, errors = from_graph_settings(CATALOG, AV, wrap(choice(RTM, RTM + "_7")))
    assert values == {}
    assert error_ids(errors) == [RTM]
    assert RTM + "_1" in errors[0].message


def test_a_choice_sent_as_a_simple_setting_is_a_type_error():
    _, errors = from_graph_settings(CATALOG, AV, wrap(integer(RTM, 1)))
    assert error_ids(errors) == [RTM]
    assert "ChoiceSettingInstance" in errors[0].message


@pytest.mark.parametrize(
    "instance",
    [
        integer(AVG_CPU, "30"),
        integer(AVG_CPU, True),
        integer(AVG_CPU, 30, value_type="StringSettingValue"),
        strings(AVG_CPU, "30"),
    ],
)
def test_an_integer_with_the_wrong_type_is_reported(instance):
    values, errors = from_graph_settings(CATALOG, AV, wrap(instance))
    assert values == {}
    assert error_ids(errors) == [AVG_CPU]


def test_a_string_collection_with_non_string_values_is_reported():
    instance = strings(EXT, ".log")
    instance["simpleSettingCollectionValue"][0]["value"] = 7
    _, errors = from_graph_settings(CATALOG, None, wrap(instance))
    assert error_ids(errors) == [EXT]


def test_values_are_validated_like_form_input():
    warn = {
        "@odata.type": GROUP_COLLECTION_INSTANCE,
        "settingDefinitionId": ASR_RULES_GROUP_ID,
        "groupSettingCollectionValue": [{"children": [choice(LSASS, LSASS + "_warn")]}],
    }
    out_of_range = integer(AVG_CPU, 500)
    _, errors = from_graph_settings(CATALOG, None, wrap(warn, out_of_range))
    assert error_ids(errors) == [LSASS, AVG_CPU]
    assert "Warn" in errors[0].message


def test_asr_rules_outside_their_group_are_reported():
    _, errors = from_graph_settings(CATALOG, ASR, wrap(choice(ADOBE, ADOBE + "_block")))
    assert error_ids(errors) == [ADOBE]
    assert "must be sent inside" in errors[0].message


def test_per_rule_exclusions_outside_their_rule_are_reported():
    group = {
        "@odata.type": GROUP_COLLECTION_INSTANCE,
        "settingDefinitionId": ASR_RULES_GROUP_ID,
        "groupSettingCollectionValue": [
            {
                "children": [
                    choice(ADOBE, ADOBE + "_block"),
                    strings(ADOBE + "_perruleexclusions", "C:\\x.exe"),
                ]
            }
        ],
    }
    values, errors = from_graph_settings(CATALOG, ASR, wrap(group))
    assert values == {ADOBE: "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=1"}
    assert error_ids(errors) == [ADOBE + "_perruleexclusions"]


def test_bad_firewall_rules_are_reported_per_field():
    rule = copy.deepcopy(FIREWALL_RULE_EXAMPLE)
    children = rule["settingInstance"]["groupSettingCollectionValue"][0]["children"]
    children[3]["simpleSettingValue"]["value"] = 1  # ICMP with remote ports
    values, errors = from_graph_settings(CATALOG, RULES, [rule])
    assert values == {}
    assert error_ids(errors) == [FW + "remoteportranges"]
    assert errors[0].rule_index == 0


def test_a_setting_sent_twice_is_reported():
    values, errors = from_graph_settings(CATALOG, AV, wrap(choice(RTM, RTM + "_1"), choice(RTM, RTM + "_0")))
    assert values == {RTM: 1}
    assert error_ids(errors) == [RTM]


@pytest.mark.parametrize("settings_value", [None, "settings", {"settingInstance": {}}])
def test_settings_must_be_a_list(settings_value):
    assert from_graph_settings(CATALOG, AV, settings_value)[1]


def test_elements_without_a_setting_instance_are_reported():
    values, errors = from_graph_settings(
        CATALOG, AV, [{"id": "0"}, {"settingInstance": {"choiceSettingValue": {}}}]
    )
    assert values == {}
    assert len(errors) == 2


# ---------------------------------------------------------------------------------------------------- round trips

PORTS = ["80", "443", "1000-2000", "3389"]
ADDRESSES = ["10.0.0.1", "10.0.0.0/24", "2001:db8::1", "192.168.1.1-192.168.1.9"]
KEYWORDS = ["LocalSubnet", "DNS", "Internet"]
PATHS = ["C:\\Temp", "%ProgramFiles%\\Contoso", "\\\\srv\\share\\drop", "D:\\Build\\*\\obj"]
PROCESSES = ["notepad.exe", "C:\\Tools\\agent.exe", "%WINDIR%\\System32\\svchost.exe"]
EXTENSIONS = [".log", "tmp", ".bak", "cache"]
GUIDS = ["5f1d3c2a-9b7e-4c1d-8a2b-3c4d5e6f7a8b", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_.", min_size=1, max_size=24).map(str.strip)
TEXT = TEXT.filter(bool)


def _ending(setting: SettingDef, *suffixes: str) -> bool:
    return setting.id.endswith(suffixes)


def _unique_lists(elements, key=str.lower):
    return st.lists(st.sampled_from(elements), min_size=1, max_size=len(elements), unique_by=key)


def value_strategy(setting: SettingDef) -> st.SearchStrategy:
    if setting.type == "choice":
        options = [
            o.value for o in setting.options if not (setting.supports_warn is False and o.label == "Warn")
        ]
        return st.sampled_from(options)
    if setting.type == "choice_collection":
        return st.lists(st.sampled_from([o.value for o in setting.options]), min_size=1, unique=True)
    if setting.type == "integer":
        low = setting.min if setting.min is not None else -(2**31)
        high = setting.max if setting.max is not None else 2**31 - 1
        return st.integers(low, high)
    if setting.type == "string":
        if _ending(setting, "_app_filepath", "_logfilepath"):
            return st.sampled_from(PATHS)
        if _ending(setting, "_app_servicename"):
            return st.sampled_from(["Dnscache", "wuauserv", "*"])
        return TEXT
    if setting.type == "string_collection":
        if _ending(setting, "portranges"):
            return _unique_lists(PORTS)
        if _ending(setting, "_remoteaddressranges"):
            return _unique_lists(ADDRESSES + KEYWORDS)
        if _ending(setting, "_localaddressranges"):
            return _unique_lists(ADDRESSES)
        if _ending(setting, "_icmptypesandcodes"):
            return _unique_lists(["3:4", "8:*", "0:0"])
        if _ending(setting, "_remoteaddressdynamickeywords"):
            return _unique_lists(GUIDS)
        if _ending(setting, "_excludedextensions"):
            return _unique_lists(EXTENSIONS, key=lambda v: v.lower().lstrip("."))
        if _ending(setting, "_excludedprocesses"):
            return _unique_lists(PROCESSES)
        if _ending(
            setting,
            "_excludedpaths",
            "_perruleexclusions",
            "_attacksurfacereductiononlyexclusions",
            "_controlledfolderaccessallowedapplications",
            "_controlledfolderaccessprotectedfolders",
        ):
            return _unique_lists(PATHS)
        return st.lists(TEXT, min_size=1, max_size=4, unique=True)
    raise AssertionError(f"no strategy for {setting.id} ({setting.type})")


@st.composite
def firewall_rule(draw) -> dict:
    group = CATALOG.setting(FIREWALL_RULE_GROUP_ID)
    rule: dict = {FW + "name": draw(TEXT)}
    protocol = draw(st.sampled_from([None, 6, 17, 1, 58, 47]))
    if protocol is not None:
        rule[FW + "protocol"] = protocol
    uses_service = draw(st.booleans())
    for child_id in group.children:
        child = CATALOG.setting(child_id)
        if child_id in rule or child_id == FW + "protocol":
            continue
        if _ending(child, "portranges") and protocol not in (6, 17):
            continue
        if _ending(child, "_icmptypesandcodes") and protocol not in (1, 58):
            continue
        if _ending(child, "_app_servicename") and not uses_service:
            continue
        if _ending(child, "_policyappid", "_localuserauthorizedlist") and uses_service:
            continue
        if draw(st.booleans()):
            rule[child_id] = draw(value_strategy(child))
    return rule


@st.composite
def managed_item(draw, group: SettingDef) -> dict:
    """One element of a macOS / Linux list setting (exclusion, threat type setting or device tag)."""
    children = {CATALOG.setting(c).managed_key: c for c in group.children}
    if "$type" in children:
        kind = draw(st.sampled_from([o.value for o in CATALOG.setting(children["$type"]).options]))
        item = {children["$type"]: kind}
        if kind == "excludedPath":
            item[children["path"]] = draw(st.sampled_from(["/run", "/var/log/syslog", "/opt/app"]))
            if draw(st.booleans()):
                item[children["isDirectory"]] = draw(st.booleans())
        elif kind == "excludedFileExtension":
            item[children["extension"]] = draw(st.sampled_from([".pdf", "log"]))
        else:
            item[children["name"]] = draw(st.sampled_from(["/usr/bin/cat", "/bin/tool"]))
        return item
    return {children[k]: draw(value_strategy(CATALOG.setting(children[k]))) for k in ("key", "value")}


def policy_values(profile: Profile) -> st.SearchStrategy:
    optional: dict[str, st.SearchStrategy] = {}
    for setting in profile.settings:
        if not setting.is_value_key:
            continue
        if setting.parent_id and CATALOG.setting(setting.parent_id).is_instance_collection:
            continue
        if setting.is_instance_collection and setting.is_managed_config:
            optional[setting.id] = st.lists(
                managed_item(setting),
                min_size=1,
                max_size=3,
                unique_by=lambda item: (
                    json.dumps({k: v for k, v in item.items() if not k.endswith("_value")})
                    if any(k.endswith("_item_key") for k in item)
                    else json.dumps(item, sort_keys=True)
                ),
            )
        elif setting.is_instance_collection:
            optional[setting.id] = st.lists(firewall_rule(), min_size=1, max_size=3)
        else:
            optional[setting.id] = value_strategy(setting)

    def drop_orphan_exclusions(values: dict) -> dict:
        for key in list(values):
            parent = profile.get(CATALOG.setting(key).parent_id or "")
            if (
                parent is not None
                and parent.type == "choice"
                and (parent.id not in values or is_off(values[parent.id]))
            ):
                del values[key]
        return values

    return st.fixed_dictionaries({}, optional=optional).map(drop_orphan_exclusions)


@pytest.mark.parametrize("profile", list(CATALOG.profiles.values()), ids=lambda p: p.slug)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_graph_round_trip_gives_back_any_valid_values(profile, data):
    values = data.draw(policy_values(profile))
    produced = to_graph_settings(CATALOG, values)
    json.dumps(produced)  # plain JSON
    assert from_graph_settings(CATALOG, profile, produced) == (values, [])
    assert from_graph_settings(CATALOG, None, json.loads(json.dumps(produced))) == (values, [])


def test_a_full_asr_policy_round_trips():
    values = {
        rule_id: CATALOG.setting(rule_id).options[2].value
        for rule_id in CATALOG.setting(ASR_RULES_GROUP_ID).children
    }
    values[ADOBE + "_perruleexclusions"] = ["C:\\Tools\\reader.exe", "%ProgramFiles%\\Contoso"]
    produced = to_graph_settings(CATALOG, values)
    assert len(produced) == 1 and WMI in values
    assert from_graph_settings(CATALOG, ASR, produced) == (values, [])
