"""The effective settings API (console extensions): per device, and the fleet table report."""

from __future__ import annotations

import json

import pytest

from devices.checkins import run_checkin
from devices.models import GroupPolicyObject
from tests.api.shapes import GRAPH, REALTIME, av_body

REPORTS = "/beta/deviceManagement/reports"
MDE_RULE = '(device.managementType -eq "MicrosoftSense")'
PUA = "device_vendor_msft_policy_config_defender_puaprotection"


@pytest.fixture
def overridden(ga_api, make_device, make_group):
    """Two MDE devices with an Antivirus policy (real-time protection on); a GPO turns PUA protection to audit
    (2) on one of them, where the policy asks for block (1)."""
    devices = [make_device("WS-0001"), make_device("WS-0002")]
    group = make_group("MDE devices", rule=MDE_RULE)
    target = {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}
    body = av_body(assignments=[{"target": target}])
    ga_api.post("/beta/deviceManagement/configurationPolicies", body)
    from policies.models import Policy

    policy = Policy.objects.get()
    policy.values = {**policy.values, PUA: 1}
    policy.save()
    from reports.models import PolicyGeneration

    PolicyGeneration.bump()
    GroupPolicyObject.objects.create(name="PUA audit", settings={PUA: 2}).devices.add(devices[0])
    for device in devices:
        assert run_checkin(device.pk, kind="sync", fault_rate=0.0).checked_in == 1
    return devices


def test_a_devices_effective_settings_name_the_winning_source_and_the_other_attempts(ga_api, overridden):
    device = overridden[0]
    response = ga_api.get(
        f"/beta/deviceManagement/managedDevices/{device.managed_device_id}/effectiveSettings"
    )
    assert response.status_code == 200, response.content
    items = {i["settingDefinitionId"]: i for i in response.json()["value"]}
    pua = items[PUA]
    assert (pua["effectiveValue"], pua["configuredBy"], pua["intendedValue"], pua["matchesIntent"]) == (
        "2", "group_policy", "1", False,
    )  # fmt: skip
    assert pua["otherAttempts"] == [{"source": "intune", "value": "1", "name": ""}]
    assert pua["displayName"]
    assert items[REALTIME]["configuredBy"] == "intune" and items[REALTIME]["matchesIntent"] is True


def test_an_unknown_device_is_404(ga_api, db):
    response = ga_api.get(
        "/beta/deviceManagement/managedDevices/00000000-0000-0000-0000-000000000001/effectiveSettings"
    )
    assert response.status_code == 404


def test_the_effective_settings_report_filters_by_match_and_source(ga_api, overridden):
    response = ga_api.post(f"{REPORTS}/getEffectiveSettingsReport", {"filter": "MatchesIntent eq false"})
    assert response.status_code == 200, response.content
    data = response.json()
    columns = [c["Column"] for c in data["Schema"]]
    rows = [dict(zip(columns, v, strict=True)) for v in data["Values"]]
    assert data["TotalRowCount"] == 1
    assert rows[0]["DeviceName"] == "WS-0001"
    assert (rows[0]["ConfiguredBy"], rows[0]["EffectiveValue"], rows[0]["IntendedValue"]) == (
        "group_policy",
        "2",
        "1",
    )
    by_source = ga_api.post(
        f"{REPORTS}/getEffectiveSettingsReport", {"filter": "ConfiguredBy eq 'group_policy'"}
    )
    assert by_source.json()["TotalRowCount"] == 1


def test_a_bad_effective_report_request_is_400(ga_api, db):
    response = ga_api.post(f"{REPORTS}/getEffectiveSettingsReport", {"select": ["Nope"]})
    assert response.status_code == 400
    assert "Unknown column 'Nope'" in response.content.decode()


def test_both_operations_are_marked_as_console_extensions_in_the_schema(client):
    schema = json.loads(client.get("/api/schema/").content)
    device = schema["paths"]["/beta/deviceManagement/managedDevices/{device_id}/effectiveSettings"]["get"]
    report = schema["paths"]["/beta/deviceManagement/reports/getEffectiveSettingsReport"]["post"]
    for operation in (device, report):
        assert operation["x-console-extension"] is True
        assert "extension" in operation["description"]
    assert "/beta/deviceManagement/reports/getConfigurationPolicyDevicesReport" in schema["paths"]
    assert (
        "x-console-extension"
        not in schema["paths"]["/beta/deviceManagement/reports/getConfigurationPolicyDevicesReport"]["post"]
    )


def test_every_av_setting_and_asr_rule_is_listed_with_default_where_nothing_configures_it(ga_api, overridden):
    from devices.agent import effective_defaults
    from policies.catalog import asr_rules, get_catalog

    device = overridden[1]
    url = f"/beta/deviceManagement/managedDevices/{device.managed_device_id}/effectiveSettings"
    items = {i["settingDefinitionId"]: i for i in ga_api.get(url + "?$top=999").json()["value"]}
    defaults = effective_defaults()
    assert set(defaults) <= set(items)
    rule = asr_rules(get_catalog())[0][0].id
    assert (items[rule]["configuredBy"], items[rule]["effectiveValue"], items[rule]["matchesIntent"]) == (
        "default", defaults[rule], None,
    )  # fmt: skip
    assert items[rule]["lastChangeDateTime"] is None
    assert items[REALTIME]["configuredBy"] == "intune"  # configured rows are not replaced by defaults
    first = ga_api.get(url + "?$top=10&$count=true").json()
    assert len(first["value"]) == 10 and first["@odata.count"] == len(items)
    following = ga_api.get(first["@odata.nextLink"]).json()["value"]
    assert {i["settingDefinitionId"] for i in following}.isdisjoint(
        i["settingDefinitionId"] for i in first["value"]
    )
