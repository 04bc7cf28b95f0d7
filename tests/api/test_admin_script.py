"""A realistic admin script, end to end, with Microsoft's SDKs unchanged against the live test server.

The backup-and-restore script admins run against real Graph: page through every endpoint security policy with
msgraph-beta-sdk, read each with `$expand=settings,assignments` as raw JSON through the SDK's request adapter (what
PowerShell's Invoke-MgGraphRequest does; Kiota's model serializer drops flags enums such as `platforms` parsed
from JSON, so scripts keep the JSON), delete them all, re-create each from the JSON (POST, then assign with the
SDK's typed models — Graph takes no assignments on create) and export again: the two exports are identical apart
from the ids and times the server assigns. Template
references sent by the script survive the round trip (issue 14 item 6). The v1.0 SDK (msgraph-sdk) lists the
managed devices, finds their Entra objects by azureADDeviceId and syncs one.
"""

from __future__ import annotations

import json
import warnings

import pytest

pytest.importorskip("msgraph_beta")
pytest.importorskip("msgraph")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph import GraphRequestAdapter as V1Adapter
    from msgraph import GraphServiceClient as V1Client
    from msgraph.generated.devices.devices_request_builder import DevicesRequestBuilder
    from msgraph_beta.generated.device_management.configuration_policies.configuration_policies_request_builder import (
        ConfigurationPoliciesRequestBuilder,
    )
    from msgraph_beta.generated.device_management.configuration_policies.item.assign.assign_post_request_body import (
        AssignPostRequestBody,
    )
    from msgraph_beta.generated.models.device_management_configuration_policy import (
        DeviceManagementConfigurationPolicy,
    )
    from msgraph_beta.generated.models.device_management_configuration_policy_assignment import (
        DeviceManagementConfigurationPolicyAssignment,
    )
    from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

from tests.api.shapes import AV_TEMPLATE, CPU_LOAD, EXTENSIONS, REALTIME, av_body, choice, integer, strings
from tests.api.test_msgraph_sdk import StaticTokenProvider, graph_client, run_async

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SERVER_OWNED = {"id", "createdDateTime", "lastModifiedDateTime", "settingCount", "isAssigned", "creationSource",
                "priorityMetaData"}  # fmt: skip


async def _raw(sdk, method: Method, url: str, body: dict | None = None) -> dict | None:
    """A request through the SDK's adapter (auth, retries, ODataError) with a JSON body and a JSON answer."""
    info = RequestInformation(method)
    info.url = url
    info.headers.try_add("Accept", "application/json")
    if body is not None:
        info.set_stream_content(json.dumps(body).encode(), "application/json")
    raw = await sdk.request_adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
    return json.loads(raw) if raw else None


def _from_json(document: dict, factory):
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(document).encode())
    return node.get_object_value(factory)


def _comparable(exported: list[dict]) -> list[dict]:
    """An export without what the server assigns (ids, times; an assignment's id holds its policy's id)."""
    out = []
    for policy in exported:
        policy = {k: v for k, v in policy.items() if k not in SERVER_OWNED}
        policy["assignments"] = [{k: v for k, v in a.items() if k not in ("id", "sourceId")} for a in policy["assignments"]]  # fmt: skip
        out.append(policy)
    return sorted(out, key=lambda p: p["name"])


async def export_all(sdk) -> list[dict]:
    """Every policy, paged two at a time (the SDK follows @odata.nextLink), with settings and assignments."""
    config = RequestConfiguration(
        query_parameters=ConfigurationPoliciesRequestBuilder.ConfigurationPoliciesRequestBuilderGetQueryParameters(
            top=2
        )
    )
    page = await sdk.device_management.configuration_policies.get(config)
    ids = []
    while True:
        ids += [p.id for p in page.value]
        if not page.odata_next_link:
            break
        page = await sdk.device_management.configuration_policies.with_url(page.odata_next_link).get()
    base = f"{sdk.request_adapter.base_url}/deviceManagement/configurationPolicies"
    return [await _raw(sdk, Method.GET, f"{base}/{i}?$expand=settings,assignments") for i in ids]


async def restore(sdk, exported: list[dict]) -> None:
    base = f"{sdk.request_adapter.base_url}/deviceManagement/configurationPolicies"
    for document in exported:
        assignments = document.get("assignments") or []
        body = {k: v for k, v in document.items() if k not in SERVER_OWNED and k != "assignments"}
        created = DeviceManagementConfigurationPolicy(id=(await _raw(sdk, Method.POST, base, body))["id"])
        targets = [
            _from_json({"target": a["target"]}, DeviceManagementConfigurationPolicyAssignment)
            for a in assignments
        ]
        await sdk.device_management.configuration_policies.by_device_management_configuration_policy_id(
            created.id
        ).assign.post(AssignPostRequestBody(assignments=targets))


@pytest.fixture
def token(transactional_db, global_admin):
    from console.roles import GLOBAL_ADMIN
    from console.tokens import create_token

    return create_token(name="backup script", owner=global_admin, role=GLOBAL_ADMIN)[1]


@pytest.fixture
def base_url(live_server):
    return live_server.url.replace("localhost", "127.0.0.1")


def _tenant(client, token: str, make_group, make_device) -> None:
    """Five policies of four profiles (one a firewall rule collection, one with template references), two of
    them sharing a name (Graph allows it), assigned to include and exclude groups."""
    from tests.api.conftest import Api

    api = Api(client, token)
    base = "/beta/deviceManagement/configurationPolicies"
    pilot, servers = make_group("Pilot", members=[make_device("WS-0001")]), make_group("Servers")
    include = {
        "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": str(pilot.group_id)}
    }
    exclude = {"target": {"@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget",
                          "groupId": str(servers.group_id)}}  # fmt: skip
    referenced = av_body(
        "AV with template references", settings=[choice(REALTIME, "1"), integer(CPU_LOAD, 20)]
    )
    first = referenced["settings"][0]["settingInstance"]
    first["settingInstanceTemplateReference"] = {
        "settingInstanceTemplateId": "9e1b8a3a-0000-4000-8000-000000000001"
    }
    first["choiceSettingValue"]["settingValueTemplateReference"] = {
        "settingValueTemplateId": "9e1b8a3a-0000-4000-8000-000000000002",
        "useTemplateDefault": False,
    }
    rule = "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}"
    firewall_rules = {
        "name": "Block Chrome Internet",
        "platforms": "windows10",
        "technologies": "mdm,microsoftSense",
        "templateReference": {"templateId": "19c8aa67-f286-4861-9aa0-f23541d31680_1"},
        "settings": [{"settingInstance": {
            "@odata.type": "#microsoft.graph.deviceManagementConfigurationGroupSettingCollectionInstance",
            "settingDefinitionId": rule,
            "groupSettingCollectionValue": [{"children": [
                {"@odata.type": "#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance",
                 "settingDefinitionId": f"{rule}_name",
                 "simpleSettingValue": {"@odata.type": "#microsoft.graph.deviceManagementConfigurationStringSettingValue",
                                        "value": "Block Chrome"}},
                {"@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
                 "settingDefinitionId": f"{rule}_direction",
                 "choiceSettingValue": {"value": f"{rule}_direction_out", "children": []}},
            ]}],
        }}],
    }  # fmt: skip
    documents = [
        av_body("AV baseline", assignments=[include, exclude]),
        av_body("AV baseline", settings=[strings(EXTENSIONS, [".log", ".etl"])], assignments=[include]),
        referenced | {"assignments": [include]},
        firewall_rules,
        {**av_body("EDR"), "templateReference": {"templateId": "0385b795-0f2f-44ac-8602-9f65bf6adede_1"},
         "settings": [choice("device_vendor_msft_windowsadvancedthreatprotection_configuration_samplesharing", "1")]},
    ]  # fmt: skip
    for document in documents:
        response = api.post(base, document)
        assert response.status_code == 201, response.content[:400]


def test_an_export_delete_reimport_script_round_trips_every_policy(
    client, token, base_url, make_group, make_device
):
    from policies.models import Policy

    _tenant(client, token, make_group, make_device)
    sdk = graph_client(base_url, token)

    async def script():
        before = await export_all(sdk)
        for document in before:
            await sdk.device_management.configuration_policies.by_device_management_configuration_policy_id(
                document["id"]
            ).delete()
        assert await sdk.device_management.configuration_policies.get() is not None
        remaining = (await sdk.device_management.configuration_policies.get()).value
        await restore(sdk, json.loads(json.dumps(before)))  # through a JSON file, as the script keeps it
        return before, remaining, await export_all(sdk)

    before, remaining, after = run_async(script())
    assert remaining == []
    assert len(before) == 5 == Policy.objects.count()
    assert _comparable(after) == _comparable(before)
    referenced = next(p for p in after if p["name"] == "AV with template references")
    instance = referenced["settings"][0]["settingInstance"]
    assert instance["settingInstanceTemplateReference"]["settingInstanceTemplateId"].endswith("000000000001")
    assert instance["choiceSettingValue"]["settingValueTemplateReference"] == {
        "settingValueTemplateId": "9e1b8a3a-0000-4000-8000-000000000002",
        "useTemplateDefault": False,
    }
    assert {p["templateReference"]["templateId"] for p in after} >= {AV_TEMPLATE}


def test_the_v1_sdk_joins_managed_devices_to_their_entra_objects(
    transactional_db, token, base_url, make_device
):
    from urllib.parse import urlparse

    make_device("WS-0001")
    make_device("WS-INTUNE", intune_enrolled=True)
    make_device("WS-DISCOVERED", mde_onboarded=False)
    adapter = V1Adapter(
        BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token, [urlparse(base_url).hostname]))
    )
    adapter.base_url = f"{base_url}/v1.0"
    sdk = V1Client(request_adapter=adapter)

    async def script():
        managed = (await sdk.device_management.managed_devices.get()).value
        joined = {}
        for device in managed:
            found = await sdk.devices.get(
                RequestConfiguration(
                    query_parameters=DevicesRequestBuilder.DevicesRequestBuilderGetQueryParameters(
                        filter=f"deviceId eq '{device.azure_a_d_device_id}'"
                    )
                )
            )
            joined[device.device_name] = (
                device.id,
                [d.id for d in found.value],
                [d.display_name for d in found.value],
            )
            await sdk.device_management.managed_devices.by_managed_device_id(device.id).sync_device.post()
        return joined

    joined = run_async(script())
    assert sorted(joined) == ["WS-0001", "WS-INTUNE"]  # the discovered device is no managedDevice
    for name, (managed_id, entra_ids, entra_names) in joined.items():
        assert entra_names == [name] and managed_id not in entra_ids
