"""Graph API coverage of the macOS and Linux profiles (issue 18): policies with platforms macOS / linux, their
templates and setting definitions, and a Linux policy created through the API reads back equal."""

from __future__ import annotations

import pytest

from policies.catalog import get_catalog
from policies.graph import from_graph_settings, to_graph_settings
from policies.models import Policy

POLICIES = "/beta/deviceManagement/configurationPolicies"
LINUX_AV_TEMPLATE = "4cfd164c-5e8a-4ea9-b15d-9aa71e4ffff4_1"
GLOBAL_TEMPLATE = "dfa57610-d11d-4bf8-89d6-1f5cb1679506_1"
MAC_AV_TEMPLATE = "2d345ec2-c817-49e5-9156-3ed416dc972a_1"
EXCL = "linux_mdatp_managed_antivirusengine_exclusions"


def _linux_body(name: str = "Linux AV via Graph") -> dict:
    values = {
        "linux_mdatp_managed_antivirusengine_enforcementlevel": "on_demand",
        "linux_mdatp_managed_cloudservice_enabled": False,
        EXCL: [
            {
                EXCL + "_item_$type": "excludedPath",
                EXCL + "_item_path": "/srv/app",
                EXCL + "_item_isdirectory": True,
            },
            {EXCL + "_item_$type": "excludedFileExtension", EXCL + "_item_extension": ".tmp"},
        ],
    }
    return {
        "name": name,
        "description": "",
        "platforms": "linux",
        "technologies": "microsoftSense",
        "roleScopeTagIds": ["0"],
        "templateReference": {"templateId": LINUX_AV_TEMPLATE},
        "settings": to_graph_settings(get_catalog(), values, include_ids=False),
    }


@pytest.mark.django_db
def test_a_linux_policy_created_through_graph_reads_back_equal_and_filters_by_platform(ga_api):
    created = ga_api.post(POLICIES, _linux_body())
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["platforms"], body["technologies"]) == ("linux", "microsoftSense")
    policy = Policy.objects.get(policy_id=body["id"])
    assert (policy.platform, policy.profile) == ("linux", "Microsoft Defender Antivirus (Linux)")
    read = ga_api.get(f"{POLICIES}/{body['id']}", **{"$expand": "settings"}).json()
    assert read["templateReference"]["templateId"] == LINUX_AV_TEMPLATE
    sent = _linux_body()["settings"]
    catalog = get_catalog()
    profile = catalog.profile("Microsoft Defender Antivirus (Linux)")
    assert from_graph_settings(catalog, profile, read["settings"]) == from_graph_settings(
        catalog, profile, sent
    )
    assert from_graph_settings(catalog, profile, read["settings"])[0] == policy.values
    assert sorted(s["settingInstance"]["settingDefinitionId"] for s in read["settings"]) == sorted(
        s["settingInstance"]["settingDefinitionId"] for s in sent
    )

    listed = ga_api.get(POLICIES, **{"$filter": "platforms eq 'linux'"}).json()["value"]
    assert [p["name"] for p in listed] == ["Linux AV via Graph"]
    assert ga_api.get(POLICIES, **{"$filter": "platforms eq 'macOS'"}).json()["value"] == []


@pytest.mark.django_db
def test_a_linux_policy_with_a_bad_exclusion_is_refused_with_a_clear_message(ga_api):
    body = _linux_body()
    values = {EXCL: [{EXCL + "_item_$type": "excludedPath", EXCL + "_item_path": "relative/path"}]}
    body["settings"] = to_graph_settings(get_catalog(), values, include_ids=False)
    response = ga_api.post(POLICIES, body)
    assert response.status_code == 400, response.content
    assert "isn't a full path" in response.content.decode()
    assert not Policy.objects.exists()
    wrong_platform = {**_linux_body(), "platforms": "macOS"}
    assert ga_api.post(POLICIES, wrong_platform).status_code == 400


@pytest.mark.django_db
def test_templates_and_definitions_cover_macos_and_linux(ga_api):
    templates = {
        t["id"]: t for t in ga_api.get("/beta/deviceManagement/configurationPolicyTemplates").json()["value"]
    }
    assert (templates[LINUX_AV_TEMPLATE]["platforms"], templates[LINUX_AV_TEMPLATE]["technologies"]) == (
        "linux",
        "microsoftSense",
    )
    assert templates[GLOBAL_TEMPLATE]["templateFamily"] == "endpointSecurityEndpointDetectionAndResponse"
    assert templates[MAC_AV_TEMPLATE]["platforms"] == "macOS"
    settings = ga_api.get(
        f"/beta/deviceManagement/configurationPolicyTemplates/{LINUX_AV_TEMPLATE}/settingTemplates"
    ).json()["value"]
    assert EXCL in {s["settingInstanceTemplate"]["settingDefinitionId"] for s in settings}
    definition = ga_api.get(f"/beta/deviceManagement/configurationSettings/{EXCL}").json()
    assert definition["applicability"]["platform"] == "linux"
    assert definition["applicability"]["technologies"] == "microsoftSense"
    assert set(definition["childIds"]) >= {EXCL + "_item_$type", EXCL + "_item_path"}
    mac = ga_api.get(
        "/beta/deviceManagement/configurationSettings/com.apple.managedclient.preferences_enabled"
    ).json()
    assert mac["applicability"]["platform"] == "macOS"
    assert "microsoftSense" not in mac["applicability"]["technologies"]  # Not applicable on the MDE channel
