"""deviceManagement/reports/*: the {TotalRowCount, Schema, Values} tables, read from check-in status rows."""

from __future__ import annotations

import json
import re

import pytest

from devices.checkins import run_checkin
from tests.api.shapes import CPU_LOAD, GRAPH, REALTIME, assert_graph_error, av_body

REPORTS = "/beta/deviceManagement/reports"
MDE_RULE = '(device.managementType -eq "MicrosoftSense")'


@pytest.fixture
def checked_in(ga_api, make_device, make_group):
    """Two MDE-managed devices in a dynamic group with an Antivirus policy, both checked in once."""
    devices = [make_device("WS-0001"), make_device("WS-0002")]
    make_device("WS-INTUNE", intune_enrolled=True)
    group = make_group("MDE devices", rule=MDE_RULE)
    target = {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}
    policy = ga_api.post(
        "/beta/deviceManagement/configurationPolicies", av_body(assignments=[{"target": target}])
    ).json()
    for device in devices:
        run = run_checkin(device.pk, kind="sync", fault_rate=0.0)
        assert run.checked_in == 1
    return {"policy": policy, "devices": devices}


def _table(response) -> list[dict]:
    assert response.status_code == 200, response.content
    data = response.json()
    columns = [c["Column"] for c in data["Schema"]]
    rows = [dict(zip(columns, values, strict=True)) for values in data["Values"]]
    assert data["TotalRowCount"] >= len(rows)
    return rows


def test_the_devices_report_lists_the_devices_of_the_policy(ga_api, checked_in):
    policy_id = checked_in["policy"]["id"]
    body = {
        "select": [
            "DeviceName",
            "UPN",
            "PolicyStatus",
            "PolicyStatus_loc",
            "IntuneDeviceId",
            "PspdpuLastModifiedTimeUtc",
        ],
        "filter": f"(PolicyId eq '{policy_id}')",
        "orderBy": ["DeviceName desc"],
        "skip": 0,
        "top": 50,
        "search": "",
        "groupBy": [],
        "sessionId": "",
    }
    response = ga_api.post(f"{REPORTS}/getConfigurationPolicyDevicesReport", body)
    schema = response.json()["Schema"]
    assert schema[2] == {"Column": "PolicyStatus", "PropertyType": "Int32"}
    rows = _table(response)
    assert [r["DeviceName"] for r in rows] == ["WS-0002", "WS-0001"]
    assert {(r["PolicyStatus"], r["PolicyStatus_loc"]) for r in rows} == {(2, "Succeeded")}
    assert rows[1]["IntuneDeviceId"] == str(checked_in["devices"][0].managed_device_id)
    assert rows[0]["PspdpuLastModifiedTimeUtc"].endswith("Z")
    # search, filter on status (as text, as scripts send it) and paging
    one = _table(ga_api.post(f"{REPORTS}/getConfigurationPolicyDevicesReport", {**body, "search": "0001"}))
    assert [r["DeviceName"] for r in one] == ["WS-0001"]
    errors = _table(
        ga_api.post(
            f"{REPORTS}/getConfigurationPolicyDevicesReport",
            {**body, "filter": f"PolicyId eq '{policy_id}' and PolicyStatus eq '5'"},
        )
    )
    assert errors == []
    page = ga_api.post(f"{REPORTS}/getConfigurationPolicyDevicesReport", {**body, "top": 1, "skip": 1}).json()
    assert page["TotalRowCount"] == 2 and len(page["Values"]) == 1


def test_the_summary_reports_count_devices_per_status(ga_api, checked_in):
    policy_id = checked_in["policy"]["id"]
    summary = _table(
        ga_api.post(
            f"{REPORTS}/getConfigurationPolicyDeviceSummaryReport", {"filter": f"PolicyId eq '{policy_id}'"}
        )
    )
    assert summary == [
        {
            "PolicyId": policy_id,
            "NumberOfSucceededDevices": 2,
            "NumberOfErrorDevices": 0,
            "NumberOfConflictDevices": 0,
            "NumberOfNotApplicableDevices": 0,
            "NumberOfPendingDevices": 0,
        }
    ]
    per_setting = _table(
        ga_api.post(
            f"{REPORTS}/getConfigurationPolicySettingsDeviceSummaryReport",
            {"filter": f"PolicyId eq '{policy_id}'"},
        )
    )
    assert {r["SettingId"]: r["NumberOfSucceededDevices"] for r in per_setting} == {REALTIME: 2, CPU_LOAD: 2}
    assert all(r["SettingName"] and r["SettingName"] != r["SettingId"] for r in per_setting)


def test_the_per_device_reports(ga_api, checked_in):
    policy_id = checked_in["policy"]["id"]
    device = checked_in["devices"][0]
    policies = _table(
        ga_api.post(
            f"{REPORTS}/getConfigurationPoliciesReportForDevice",
            {"filter": f"IntuneDeviceId eq '{device.managed_device_id}'"},
        )
    )
    assert [(r["PolicyId"], r["PolicyBaseTypeName"], r["PolicyStatus_loc"]) for r in policies] == [
        (policy_id, "DeviceManagementConfigurationPolicy", "Succeeded")
    ]
    settings = _table(
        ga_api.post(
            f"{REPORTS}/getConfigurationSettingsReport",
            {
                "filter": f"(PolicyId eq '{policy_id}') and (DeviceId eq '{device.device_id}')",
                "select": ["SettingId", "SettingStatus_loc", "CurrentValue", "ErrorCode"],
            },
        )
    )
    assert {r["SettingId"]: r["SettingStatus_loc"] for r in settings} == {
        REALTIME: "Succeeded",
        CPU_LOAD: "Succeeded",
    }


def test_a_read_only_operator_can_read_reports(ro_api, checked_in):
    assert ro_api.post(f"{REPORTS}/getConfigurationPolicyDeviceSummaryReport", {}).status_code == 200


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"select": ["Password"]}, "Unknown column"),
        ({"filter": "PolicyId eq 'x'"}, "GUID"),
        ({"filter": "Nope eq 'x'"}, "cannot be filtered"),
        ({"filter": "(PolicyId eq"}, "position"),
        ({"orderBy": ["UPN"]}, "orderBy"),
        ({"groupBy": ["PolicyStatus"]}, "groupBy"),
        ({"top": -1}, "top"),
        ({"skip": "a"}, "skip"),
        ({"select": "DeviceName"}, "list"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_report_requests_are_400(ga_api, db, body, text):
    assert_graph_error(ga_api.post(f"{REPORTS}/getConfigurationPolicyDevicesReport", body), 400, text=text)


def test_the_sdk_accept_header_still_gets_json(ga_api, db):
    response = ga_api.post(
        f"{REPORTS}/getConfigurationPolicyDeviceSummaryReport",
        {},
        headers={"Accept": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "TotalRowCount": 0,
        "Schema": response.json()["Schema"],
        "Values": [],
        "SessionId": "",
    }


@pytest.mark.parametrize("text", ["", "   ", "\n", " DeviceName eq 'WS-0001' "])
def test_a_blank_report_filter_is_no_filter_in_the_schema_as_on_the_server(ga_api, client, text):
    # Seen with random schemathesis seeds: filter "" was a schema violation (the pattern needed a clause) that the
    # server answered 200 (a blank filter is no filter, as Graph's clients send it).
    name = "getConfigurationPolicyDevicesReport"
    paths = json.loads(client.get("/api/schema/").content)["paths"]
    body = paths[f"{REPORTS}/{name}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert re.search(body["properties"]["filter"]["pattern"], text)
    response = ga_api.post(f"{REPORTS}/{name}", {"filter": text})
    assert response.status_code == 200, response.content
