"""Issue 14, "Graph parity, round two": each numbered item of "What was seen" as a test that failed before the fix.

The reference for each is Microsoft Graph's documented behaviour (beta unless marked v1.0).
"""

from __future__ import annotations

import json

import pytest

from devices.models import ManagedBy
from policies.models import Policy
from tests.api.shapes import (
    AV_TEMPLATE,
    EXTENSIONS,
    GRAPH,
    PATHS,
    REALTIME,
    assert_graph_error,
    av_body,
    choice,
    exclusions_body,
    strings,
)

POLICIES = "/beta/deviceManagement/configurationPolicies"
PROCESSES = "device_vendor_msft_policy_config_defender_excludedprocesses"
GROUP_BODY = {"mailEnabled": False, "mailNickname": "pilot", "securityEnabled": True}


# 1 ------------------------------------------------------------------------------------------------------------


def test_it_accepts_the_three_exclusion_settings_on_a_defender_antivirus_profile(ga_api):
    body = av_body(settings=[choice(REALTIME, "1"), strings(EXTENSIONS, [".log"]), strings(PATHS, [r"C:\\Temp"]),
                             strings(PROCESSES, ["tool.exe"])])  # fmt: skip
    response = ga_api.post(POLICIES, body)
    assert response.status_code == 201, response.content
    assert Policy.objects.get(policy_id=response.json()["id"]).values == {
        REALTIME: 1,
        EXTENSIONS: [".log"],
        PATHS: [r"C:\\Temp"],
        PROCESSES: ["tool.exe"],
    }


def test_it_merges_exclusions_from_an_antivirus_and_an_exclusions_profile(ga_api, make_device, make_group):
    from devices import channel

    device = make_device("WS-MERGE")
    group = make_group("Merge", members=[device])
    target = {"target": {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}}
    av = av_body(settings=[strings(EXTENSIONS, [".log"])], assignments=[target])
    exclusions = exclusions_body()
    exclusions["assignments"] = [target]
    assert ga_api.post(POLICIES, av).status_code == 201
    assert ga_api.post(POLICIES, exclusions).status_code == 201
    resolution = channel.current_context().resolve(device)[0]
    assert sorted(resolution.desired[EXTENSIONS]) == [".log", ".tmp"]
    assert resolution.settings[EXTENSIONS].merged and EXTENSIONS not in resolution.conflicts


# 2 ------------------------------------------------------------------------------------------------------------


def test_it_creates_two_policies_with_the_same_name_like_graph(ga_api):
    first = ga_api.post(POLICIES, av_body("Same name"))
    second = ga_api.post(POLICIES, av_body("Same name"))
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert first.json()["id"] != second.json()["id"]
    assert Policy.objects.filter(name="Same name").count() == 2


# 3 ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "facts", [{"intune_enrolled": True}, {"intune_enrolled": True, "configmgr_client": True}]
)
def test_sync_device_on_an_intune_enrolled_device_is_an_mdm_sync_with_204(ga_api, make_device, facts):
    from console.models import AuditEvent

    device = make_device("WS-MDM", **facts)
    response = ga_api.post(f"/v1.0/deviceManagement/managedDevices/{device.managed_device_id}/syncDevice")
    assert response.status_code == 204, response.content
    assert AuditEvent.objects.filter(action="MDM sync requested", source="api").exists()


def test_managed_devices_lists_managed_devices_only(ga_api, make_device):
    make_device("WS-MDE")
    discovered = make_device("WS-DISCOVERED", mde_onboarded=False)
    assert discovered.managed_by == ManagedBy.NONE
    names = [d["deviceName"] for d in ga_api.get("/beta/deviceManagement/managedDevices").json()["value"]]
    assert names == ["WS-MDE"]
    assert_graph_error(
        ga_api.get(f"/beta/deviceManagement/managedDevices/{discovered.managed_device_id}"), 404
    )
    # Entra still has the device object.
    entra = [d["displayName"] for d in ga_api.get("/v1.0/devices").json()["value"]]
    assert sorted(entra) == ["WS-DISCOVERED", "WS-MDE"]


# 4 ------------------------------------------------------------------------------------------------------------


def test_the_three_device_ids_differ_as_in_graph_and_join_correctly(ga_api, make_device, make_group):
    device = make_device("WS-IDS")
    managed = ga_api.get("/beta/deviceManagement/managedDevices").json()["value"][0]
    entra = ga_api.get("/beta/devices").json()["value"][0]
    assert len({managed["id"], managed["azureADDeviceId"], entra["id"]}) == 3
    assert managed["azureADDeviceId"] == entra["deviceId"] == str(device.device_id)
    assert managed["id"] == str(device.managed_device_id) and entra["id"] == str(device.entra_object_id)
    # Each id finds its own resource, and only that one.
    assert ga_api.get(f"/beta/deviceManagement/managedDevices/{managed['id']}").status_code == 200
    assert ga_api.get(f"/beta/devices/{entra['id']}").status_code == 200
    assert_graph_error(ga_api.get(f"/beta/devices/{managed['id']}"), 404)
    assert_graph_error(ga_api.get(f"/beta/deviceManagement/managedDevices/{entra['id']}"), 404)
    # members/$ref takes the directory object id (as Graph does); the members list returns it.
    group = make_group("Pilot")
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{entra['id']}"}
    assert ga_api.post(f"/v1.0/groups/{group.group_id}/members/$ref", ref).status_code == 204
    members = ga_api.get(f"/v1.0/groups/{group.group_id}/members").json()["value"]
    assert [m["id"] for m in members] == [entra["id"]]
    flt = {"$filter": f"azureADDeviceId eq '{entra['deviceId']}'"}
    assert [d["id"] for d in ga_api.get("/beta/deviceManagement/managedDevices", **flt).json()["value"]] == [
        managed["id"]
    ]


# 5 ------------------------------------------------------------------------------------------------------------


def test_assign_with_null_assignments_is_refused_and_keeps_them(ga_api, make_group):
    group = make_group("Keep")
    target = {"target": {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}}
    policy_id = ga_api.post(POLICIES, av_body(assignments=[target])).json()["id"]
    assert_graph_error(
        ga_api.post(f"{POLICIES}/{policy_id}/assign", {"assignments": None}), 400, text="assignments"
    )
    assert len(ga_api.get(f"{POLICIES}/{policy_id}/assignments").json()["value"]) == 1


# 6 ------------------------------------------------------------------------------------------------------------


def test_template_references_round_trip(ga_api):
    body = av_body()
    instance = body["settings"][0]["settingInstance"]
    instance["settingInstanceTemplateReference"] = {
        "settingInstanceTemplateId": "11111111-aaaa-4bbb-8ccc-000000000001"
    }
    instance["choiceSettingValue"]["settingValueTemplateReference"] = {
        "settingValueTemplateId": "11111111-aaaa-4bbb-8ccc-000000000002",
        "useTemplateDefault": False,
    }
    policy_id = ga_api.post(POLICIES, body).json()["id"]
    stored = ga_api.get(f"{POLICIES}/{policy_id}/settings").json()["value"][0]["settingInstance"]
    assert stored["settingInstanceTemplateReference"] == instance["settingInstanceTemplateReference"]
    assert stored["choiceSettingValue"]["settingValueTemplateReference"] == {
        "settingValueTemplateId": "11111111-aaaa-4bbb-8ccc-000000000002",
        "useTemplateDefault": False,
    }


# 7 ------------------------------------------------------------------------------------------------------------


def test_settings_expand_setting_definitions(ga_api):
    policy_id = ga_api.post(POLICIES, av_body()).json()["id"]
    response = ga_api.get(f"{POLICIES}/{policy_id}/settings", **{"$expand": "settingDefinitions"})
    assert response.status_code == 200, response.content
    first = response.json()["value"][0]
    definitions = first["settingDefinitions"]
    assert [d["id"] for d in definitions] == [REALTIME]
    assert definitions[0]["@odata.type"] == GRAPH + "deviceManagementConfigurationChoiceSettingDefinition"
    assert {o["itemId"] for o in definitions[0]["options"]} >= {f"{REALTIME}_0", f"{REALTIME}_1"}


# 8 ------------------------------------------------------------------------------------------------------------


def test_configuration_policy_templates_and_their_setting_templates(ga_api):
    response = ga_api.get(
        "/beta/deviceManagement/configurationPolicyTemplates",
        **{"$filter": "templateFamily eq 'endpointSecurityAntivirus'"},
    )
    assert response.status_code == 200, response.content
    templates = {t["id"]: t for t in response.json()["value"]}
    assert AV_TEMPLATE in templates
    av = templates[AV_TEMPLATE]
    assert av["displayName"] == "Microsoft Defender Antivirus"
    assert (av["platforms"], av["technologies"]) == ("windows10", "mdm,microsoftSense")
    settings = ga_api.get(
        f"/beta/deviceManagement/configurationPolicyTemplates/{AV_TEMPLATE}/settingTemplates",
        **{"$expand": "settingDefinitions"},
    ).json()["value"]
    by_definition = {s["settingInstanceTemplate"]["settingDefinitionId"]: s for s in settings}
    assert {REALTIME, EXTENSIONS} <= set(by_definition)
    realtime = by_definition[REALTIME]
    assert realtime["settingInstanceTemplate"]["settingInstanceTemplateId"]
    assert realtime["settingDefinitions"][0]["id"] == REALTIME


def test_configuration_settings_are_the_catalogs_definitions(ga_api):
    response = ga_api.get(f"/beta/deviceManagement/configurationSettings/{REALTIME}")
    assert response.status_code == 200, response.content
    definition = response.json()
    # The catalog's applicability, verbatim: the MDE channel applies a setting whose technologies hold microsoftSense.
    assert definition["applicability"]["technologies"] == "mdm,configManager,microsoftSense"
    assert definition["applicability"]["platform"] == "windows10"
    assert definition["options"]
    cpu = ga_api.get(
        "/beta/deviceManagement/configurationSettings/device_vendor_msft_policy_config_defender_avgcpuloadfactor"
    ).json()
    assert cpu["valueDefinition"]["minimumValue"] == 0 and cpu["valueDefinition"]["maximumValue"] == 100
    listed = ga_api.get("/beta/deviceManagement/configurationSettings", **{"$top": "5"}).json()
    assert len(listed["value"]) == 5 and "@odata.nextLink" in listed


def test_metadata_is_a_csdl_document(ga_api):
    from xml.etree import ElementTree

    response = ga_api.get("/beta/$metadata")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("application/xml")
    root = ElementTree.fromstring(response.content)
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    types = {e.get("Name") for e in root.iter(f"{edm}EntityType")}
    assert {"deviceManagementConfigurationPolicy", "managedDevice", "device", "group"} <= types
    actions = {e.get("Name") for e in root.iter(f"{edm}Action")}
    assert {"assign", "syncDevice", "getConfigurationPolicyNonComplianceReport"} <= actions


@pytest.mark.parametrize(
    "action",
    [
        "getConfigurationPolicyNonComplianceReport",
        "getConfigurationPolicySettingsDeviceSummaryReport",
        "getSettingNonComplianceReport",
    ],
)
def test_the_missing_report_actions_answer(ga_api, action):
    response = ga_api.post(f"/beta/deviceManagement/reports/{action}", {"top": 10})
    assert response.status_code == 200, response.content
    assert set(response.json()) >= {"TotalRowCount", "Schema", "Values"}


def test_cached_report_configurations_and_get_cached_report(
    ga_api, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = ga_api.post(
            "/beta/deviceManagement/reports/cachedReportConfigurations",
            {"id": "ConfigurationPolicyDevicesReport_00000000-0000-0000-0000-000000000001", "filter": "",
             "select": [], "orderBy": [], "metadata": ""},
        )  # fmt: skip
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "inProgress"  # Graph's flow: computed in the background
    config = ga_api.get(f"/beta/deviceManagement/reports/cachedReportConfigurations/{created.json()['id']}")
    assert config.json()["status"] == "completed"
    report = ga_api.post(
        "/beta/deviceManagement/reports/getCachedReport",
        {"id": created.json()["id"], "top": 10, "skip": 0},
    )
    assert report.status_code == 200, report.content
    assert "TotalRowCount" in report.json()


# 9 ------------------------------------------------------------------------------------------------------------


def test_an_unknown_enum_value_in_filter_is_a_400(ga_api, make_device):
    make_device()
    assert_graph_error(
        ga_api.get("/beta/deviceManagement/managedDevices", **{"$filter": "managementAgent eq 'nonsense'"}),
        400,
    )
    assert_graph_error(ga_api.get(POLICIES, **{"$filter": "platforms eq 'nonsense'"}), 400)


@pytest.mark.parametrize("missing", ["mailEnabled", "mailNickname", "securityEnabled"])
def test_creating_a_group_needs_graphs_required_properties(ga_api, missing):
    body = {"displayName": "Pilot", **GROUP_BODY}
    del body[missing]
    assert_graph_error(ga_api.post("/v1.0/groups", body), 400, text=missing)


def test_a_body_of_three_megabytes_is_accepted(ga_api):
    body = av_body(description="")
    padded = json.dumps(body)[:-1] + ', "@odata.comment": "' + "x" * (3 * 1024 * 1024) + '"}'
    response = ga_api.post(POLICIES, padded)
    assert response.status_code == 201, response.content[:300]
