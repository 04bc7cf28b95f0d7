"""Export a policy as its Graph document and import it back: exact round trips, every problem reported."""

from __future__ import annotations

import copy
import json

import pytest

from policies import services
from policies.catalog import FIREWALL_RULE_GROUP_ID, asr_rules, get_catalog
from policies.exports import export_document
from policies.models import AssignmentFilter, Policy
from tests.policies.conftest import ASR, AV, FIREWALL_RULES

pytestmark = pytest.mark.django_db

CATALOG = get_catalog()
D = "device_vendor_msft_policy_config_defender_"
R = FIREWALL_RULE_GROUP_ID + "_"
RULES = asr_rules(CATALOG)


def _asr_values():
    (r1, e1), (r2, _) = RULES[0], RULES[3]
    return {
        r1.id: next(o.value for o in r1.options if o.label == "Block"),
        e1.id: ["C:\\Tools\\signed.sys"],
        r2.id: next(o.value for o in r2.options if o.label == "Audit"),
    }


def _policies(fleet):
    windows = AssignmentFilter.objects.create(
        name="24H2", rule='(device.deviceOSVersion -startsWith "10.0.26100")'
    )
    return [
        services.create_policy(
            AV,
            "windows",
            "AV baseline",
            "Baseline with remediation actions",
            {
                D + "allowrealtimemonitoring": 1,
                D + "avgcpuloadfactor": 40,
                D + "threatseveritydefaultaction_highseveritythreats": "4=2",
                D + "threatseveritydefaultaction_severethreats": "5=3",
                "device_vendor_msft_defender_configuration_passiveremediation": [1, 2],
            },
            {
                "include": [fleet.workstations.pk],
                "exclude": [fleet.pilot.pk],
                "filter_id": windows.pk,
                "filter_mode": "include",
            },
        ),
        services.create_policy(
            ASR, "windows", "ASR block", "", _asr_values(), {"include": [fleet.all_mde.pk]}
        ),
        services.create_policy(
            FIREWALL_RULES,
            "windows",
            "FW rules",
            "",
            {
                FIREWALL_RULE_GROUP_ID: [
                    {
                        R + "name": "RDP",
                        R + "protocol": 6,
                        R + "localportranges": ["3389", "5000-5010"],
                        R + "direction": "in",
                    },
                    {
                        R + "name": "Ping",
                        R + "protocol": 1,
                        R + "icmptypesandcodes": ["8:*"],
                        R + "profiles": ["1", "2"],
                    },
                ]
            },
            {"include": [fleet.servers.pk]},
        ),
    ]


def test_export_is_the_graph_configuration_policy_document(fleet):
    av = _policies(fleet)[0]
    document = export_document(av)
    assert list(document) == [
        "name",
        "description",
        "platforms",
        "technologies",
        "roleScopeTagIds",
        "templateReference",
        "settings",
        "assignments",
    ]
    assert document["platforms"] == "windows10" and document["technologies"] == "mdm,microsoftSense"
    assert document["templateReference"] == {
        "templateId": "804339ad-1553-4478-a742-138fb5807418_1",
        "templateFamily": "endpointSecurityAntivirus",
        "templateDisplayName": "Microsoft Defender Antivirus",
        "templateDisplayVersion": "Version 1",
    }
    assert document["settings"] == av.settings
    targets = [a["target"] for a in document["assignments"]]
    assert targets[0]["@odata.type"] == "#microsoft.graph.groupAssignmentTarget"
    assert targets[0]["groupId"] == str(fleet.workstations.group_id)
    assert targets[0]["deviceAndAppManagementAssignmentFilterType"] == "include"
    assert targets[1] == {
        "@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget",
        "groupId": str(fleet.pilot.group_id),
        "deviceAndAppManagementAssignmentFilterId": None,
        "deviceAndAppManagementAssignmentFilterType": "none",
    }


def test_export_then_import_round_trips_the_json_exactly(fleet):
    for policy in _policies(fleet):
        exported = json.dumps(export_document(policy), sort_keys=False)
        policy.delete()
        imported = services.import_policy(json.loads(exported))
        assert json.dumps(export_document(imported), sort_keys=False) == exported
        assert imported.versions.get().note == "Imported"


def test_import_under_another_name_keeps_everything_else(fleet):
    av = _policies(fleet)[0]
    document = export_document(av)
    copy_ = services.import_policy(document, name="AV baseline (imported)")
    assert copy_.name == "AV baseline (imported)"
    again = export_document(copy_)
    assert {**again, "name": document["name"]} == document


def test_import_accepts_what_graph_returns_on_get(fleet):
    av = _policies(fleet)[0]
    document = export_document(av, include_ids=True)
    assert document["id"] == str(av.policy_id) and document["settingCount"] == len(av.settings)
    av.delete()
    imported = services.import_policy(document)
    assert imported.values == av.values


def test_import_reports_every_problem_with_its_setting_id_and_saves_nothing(fleet):
    document = export_document(_policies(fleet)[0])
    Policy.objects.all().delete()
    broken = copy.deepcopy(document)
    settings = broken["settings"]
    settings[0]["settingInstance"]["choiceSettingValue"]["value"] = D + "allowrealtimemonitoring_9"
    settings[1]["settingInstance"]["simpleSettingValue"]["value"] = 400
    settings.append(
        {
            "settingInstance": {
                "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
                "settingDefinitionId": "device_vendor_msft_policy_config_defender_made_up",
                "choiceSettingValue": {"value": "x", "children": []},
            }
        }
    )
    with pytest.raises(services.PolicyError) as caught:
        services.import_policy(broken)
    fields = caught.value.by_field()
    assert "isn't an option" in fields[D + "allowrealtimemonitoring"][0]
    assert "between 0 and 100" in fields[D + "avgcpuloadfactor"][0]
    assert "isn't a setting of the Microsoft Defender Antivirus profile" in fields[D + "made_up"][0]
    assert not Policy.objects.exists()


def test_import_reports_document_level_problems_together(fleet):
    with pytest.raises(services.PolicyError) as caught:
        services.import_policy({"name": "", "platforms": "iOS", "templateReference": {"templateId": "nope"}})
    fields = caught.value.by_field()
    assert "isn't one of the endpoint security templates" in fields["templateReference.templateId"][0]
    assert "isn't supported" in fields["platforms"][0]
    with pytest.raises(services.PolicyError) as caught:
        services.import_policy([1, 2])
    assert caught.value.problems[0].field == "document"


def test_import_refuses_unknown_groups_user_groups_and_duplicate_names_unless_assignments_are_left_out(fleet):
    document = export_document(_policies(fleet)[0])
    document["assignments"].append(
        {
            "target": {
                "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                "groupId": "11111111-1111-1111-1111-111111111111",
            }
        }
    )
    document["assignments"].append(
        {
            "target": {
                "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                "groupId": str(fleet.users.group_id),
            }
        }
    )
    with pytest.raises(services.PolicyError) as caught:
        services.import_policy(document)
    messages = [p.message for p in caught.value.problems]
    assert any("11111111-1111-1111-1111-111111111111 doesn't exist in this tenant" in m for m in messages)
    assert any("Targeting users is not supported" in m for m in messages)
    imported = services.import_policy(document, name="AV from another tenant", with_assignments=False)
    assert not imported.assignments.exists()


def test_import_refuses_a_policy_that_is_not_for_mde_security_settings_management(fleet):
    document = export_document(_policies(fleet)[0])
    document["technologies"] = "mdm"
    with pytest.raises(services.PolicyError) as caught:
        services.import_policy(document, name="x", with_assignments=False)
    assert "expected “mdm,microsoftSense”" in caught.value.by_field()["technologies"][0]
