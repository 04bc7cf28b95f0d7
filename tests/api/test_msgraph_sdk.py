"""Microsoft's own msgraph-beta-sdk, unchanged, against the live test server (graph-api-shapes.md §7).

The story of an admin's script: create Antivirus policies (a choice, an integer, an exclusions list), a dynamic
group of MDE-managed devices and an exclusion group, assign, read back with settings, list the msSense devices,
Policy sync one, and after its check-in find it in the policy's device status report.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from urllib.parse import urlparse

import pytest

pytest.importorskip("msgraph_beta")

# The SDK's request builders define deprecated per-builder classes, which warn as they are imported.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph_beta import GraphRequestAdapter, GraphServiceClient
    from msgraph_beta.generated.device_management.configuration_policies.item.assign.assign_post_request_body import (
        AssignPostRequestBody,
    )
    from msgraph_beta.generated.device_management.configuration_policies.item.device_management_configuration_policy_item_request_builder import (
        DeviceManagementConfigurationPolicyItemRequestBuilder as PolicyItem,
    )
    from msgraph_beta.generated.device_management.managed_devices.managed_devices_request_builder import (
        ManagedDevicesRequestBuilder,
    )
    from msgraph_beta.generated.device_management.reports.get_configuration_policy_devices_report.get_configuration_policy_devices_report_post_request_body import (
        GetConfigurationPolicyDevicesReportPostRequestBody,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_choice_setting_instance as choice_instance,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_choice_setting_value as choice_value,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_integer_setting_value as integer_value,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_platforms as platforms,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_policy as policy_model,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_policy_assignment as assignment_model,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_policy_template_reference as template_reference,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_setting as setting_model,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_simple_setting_collection_instance as collection_instance,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_simple_setting_instance as simple_instance,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_string_setting_value as string_value,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_technologies as technologies,
    )
    from msgraph_beta.generated.models import (
        device_management_configuration_template_family as template_family,
    )
    from msgraph_beta.generated.models import (
        exclusion_group_assignment_target as exclusion_target,
    )
    from msgraph_beta.generated.models import (
        group as group_model,
    )
    from msgraph_beta.generated.models import (
        group_assignment_target as group_target,
    )
    from msgraph_beta.generated.models import (
        management_agent_type,
        reference_create,
    )
    from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

from tests.api.shapes import (
    AV_TEMPLATE,
    CPU_LOAD,
    EXCLUSIONS_TEMPLATE,
    EXTENSIONS,
    HIDE_FROM_ADMINS,
    PATHS,
    REALTIME,
)

MDE_RULE = '(device.managementType -eq "MicrosoftSense")'
# The SDK's request builders warn about their own deprecated per-builder configuration classes.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class StaticTokenProvider(AccessTokenProvider):
    def __init__(self, token: str, hosts: list[str]):
        self._token, self._validator = token, AllowedHostsValidator(hosts)

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return self._token if self._validator.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self):
        return self._validator


def run_async(coro):
    """The SDK is async; Playwright's sync API may have left an event loop in this thread, so run it in another."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def graph_client(base_url: str, token: str) -> GraphServiceClient:
    host = urlparse(base_url).hostname
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token, [host])))
    adapter.base_url = f"{base_url}/beta"
    return GraphServiceClient(request_adapter=adapter)


def _setting(instance) -> setting_model.DeviceManagementConfigurationSetting:
    return setting_model.DeviceManagementConfigurationSetting(setting_instance=instance)


def _choice(definition: str, option: str):
    return _setting(
        choice_instance.DeviceManagementConfigurationChoiceSettingInstance(
            setting_definition_id=definition,
            choice_setting_value=choice_value.DeviceManagementConfigurationChoiceSettingValue(
                value=f"{definition}_{option}", children=[]
            ),
        )
    )


def _integer(definition: str, value: int):
    return _setting(
        simple_instance.DeviceManagementConfigurationSimpleSettingInstance(
            setting_definition_id=definition,
            simple_setting_value=integer_value.DeviceManagementConfigurationIntegerSettingValue(value=value),
        )
    )


def _strings(definition: str, values: list[str]):
    return _setting(
        collection_instance.DeviceManagementConfigurationSimpleSettingCollectionInstance(
            setting_definition_id=definition,
            simple_setting_collection_value=[
                string_value.DeviceManagementConfigurationStringSettingValue(value=v) for v in values
            ],
        )
    )


def _policy(name: str, template_id: str, settings: list) -> policy_model.DeviceManagementConfigurationPolicy:
    return policy_model.DeviceManagementConfigurationPolicy(
        name=name,
        description="created by msgraph-beta-sdk",
        platforms=platforms.DeviceManagementConfigurationPlatforms.Windows10,
        technologies=[  # a flags enum: the SDK sends "mdm,microsoftSense"
            technologies.DeviceManagementConfigurationTechnologies.Mdm,
            technologies.DeviceManagementConfigurationTechnologies.MicrosoftSense,
        ],
        template_reference=template_reference.DeviceManagementConfigurationPolicyTemplateReference(
            template_id=template_id,
            template_family=template_family.DeviceManagementConfigurationTemplateFamily.EndpointSecurityAntivirus,
        ),
        settings=settings,
    )


@pytest.fixture
def sdk(transactional_db, live_server, global_admin):
    from console.roles import GLOBAL_ADMIN
    from console.tokens import create_token

    secret = create_token(name="msgraph-beta-sdk", owner=global_admin, role=GLOBAL_ADMIN)[1]
    # 127.0.0.1, not "localhost": the live server listens on IPv4 only, and resolving localhost first tries ::1.
    return graph_client(live_server.url.replace("localhost", "127.0.0.1"), secret)


def test_the_sdk_drives_the_whole_admin_story(sdk, make_device, eager_celery):
    from console.models import AuditEvent
    from policies.models import Policy

    workstation, server = make_device("WS-0001"), make_device("SRV-0001", os="windows_server")
    make_device("WS-INTUNE", intune_enrolled=True)

    async def story():
        # 1. Two Antivirus policies: Microsoft Defender Antivirus (a choice and an integer) and, for the
        #    exclusions list, the "Microsoft Defender Antivirus exclusions" profile where our catalog keeps it.
        av = await sdk.device_management.configuration_policies.post(
            _policy("AV baseline (SDK)", AV_TEMPLATE, [_choice(REALTIME, "1"), _integer(CPU_LOAD, 35)])
        )
        exclusions = await sdk.device_management.configuration_policies.post(
            _policy(
                "AV exclusions (SDK)",
                EXCLUSIONS_TEMPLATE,
                [
                    _strings(EXTENSIONS, [".log", ".etl"]),
                    _strings(PATHS, ["C:\\Temp"]),
                    _choice(HIDE_FROM_ADMINS, "1"),
                ],
            )
        )
        # 2. A dynamic group of MDE-managed devices and an assigned exclusion group holding the server.
        dynamic = await sdk.groups.post(
            group_model.Group(
                display_name="MDE-Managed Devices",
                mail_enabled=False,
                mail_nickname="mde-managed",
                security_enabled=True,
                group_types=["DynamicMembership"],
                membership_rule=MDE_RULE,
                membership_rule_processing_state="On",
            )
        )
        excluded = await sdk.groups.post(
            group_model.Group(
                display_name="AV pilot exclusions",
                mail_enabled=False,
                mail_nickname="x",
                security_enabled=True,
            )
        )
        await sdk.groups.by_group_id(excluded.id).members.ref.post(
            reference_create.ReferenceCreate(
                odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{server.entra_object_id}"
            )
        )
        # 3. Assign both policies: include the dynamic group, exclude the exclusion group.
        targets = [
            assignment_model.DeviceManagementConfigurationPolicyAssignment(
                target=group_target.GroupAssignmentTarget(group_id=dynamic.id)
            ),
            assignment_model.DeviceManagementConfigurationPolicyAssignment(
                target=exclusion_target.ExclusionGroupAssignmentTarget(group_id=excluded.id)
            ),
        ]
        for created in (av, exclusions):
            assigned = await sdk.device_management.configuration_policies.by_device_management_configuration_policy_id(
                created.id
            ).assign.post(AssignPostRequestBody(assignments=targets))
            assert [type(a.target).__name__ for a in assigned.value] == [
                "GroupAssignmentTarget",
                "ExclusionGroupAssignmentTarget",
            ]
        # 4. Read back with settings and assignments: polymorphic all the way down.
        expand = RequestConfiguration(
            query_parameters=PolicyItem.DeviceManagementConfigurationPolicyItemRequestBuilderGetQueryParameters(
                expand=["settings", "assignments"]
            )
        )
        back = (
            await sdk.device_management.configuration_policies.by_device_management_configuration_policy_id(
                av.id
            ).get(expand)
        )
        excl_back = (
            await sdk.device_management.configuration_policies.by_device_management_configuration_policy_id(
                exclusions.id
            ).get(expand)
        )
        # 5. The msSense devices, then Policy sync the workstation.
        mde_only = RequestConfiguration(
            query_parameters=ManagedDevicesRequestBuilder.ManagedDevicesRequestBuilderGetQueryParameters(
                filter="managementAgent eq 'msSense'"
            )
        )
        devices = await sdk.device_management.managed_devices.get(mde_only)
        await sdk.device_management.managed_devices.by_managed_device_id(
            str(workstation.managed_device_id)
        ).sync_device.post()
        # 6. After its check-in, the device status report of the policy has it.
        report = await sdk.device_management.reports.get_configuration_policy_devices_report.post(
            GetConfigurationPolicyDevicesReportPostRequestBody(
                select=["DeviceName", "PolicyStatus", "PolicyStatus_loc", "IntuneDeviceId"],
                filter=f"(PolicyId eq '{av.id}')",
                order_by=[],
                group_by=[],
                search="",
                skip=0,
                top=50,
                session_id="",
            )
        )
        return av, back, excl_back, devices, report

    av, back, excl_back, devices, report = run_async(story())

    assert av.id == str(Policy.objects.get(name="AV baseline (SDK)").policy_id)
    assert back.platforms == [platforms.DeviceManagementConfigurationPlatforms.Windows10]
    assert set(back.technologies) == {
        technologies.DeviceManagementConfigurationTechnologies.Mdm,
        technologies.DeviceManagementConfigurationTechnologies.MicrosoftSense,
    }
    assert (
        back.template_reference.template_family
        == template_family.DeviceManagementConfigurationTemplateFamily.EndpointSecurityAntivirus
    )
    assert back.is_assigned is True and back.setting_count == 2
    realtime, cpu = (s.setting_instance for s in back.settings)
    assert isinstance(realtime, choice_instance.DeviceManagementConfigurationChoiceSettingInstance)
    assert realtime.choice_setting_value.value == f"{REALTIME}_1"
    assert isinstance(
        cpu.simple_setting_value, integer_value.DeviceManagementConfigurationIntegerSettingValue
    )
    assert cpu.simple_setting_value.value == 35
    exts = next(
        s.setting_instance
        for s in excl_back.settings
        if s.setting_instance.setting_definition_id == EXTENSIONS
    )
    assert isinstance(exts, collection_instance.DeviceManagementConfigurationSimpleSettingCollectionInstance)
    assert [v.value for v in exts.simple_setting_collection_value] == [".log", ".etl"]
    assert {type(a.target).__name__ for a in back.assignments} == {
        "GroupAssignmentTarget",
        "ExclusionGroupAssignmentTarget",
    }

    assert sorted(d.device_name for d in devices.value) == ["SRV-0001", "WS-0001"]
    assert {d.management_agent for d in devices.value} == {management_agent_type.ManagementAgentType.MsSense}

    table = json.loads(report)
    columns = [c["Column"] for c in table["Schema"]]
    rows = [dict(zip(columns, values, strict=True)) for values in table["Values"]]
    mine = [r for r in rows if r["IntuneDeviceId"] == str(workstation.managed_device_id)]
    assert mine and mine[0]["DeviceName"] == "WS-0001" and mine[0]["PolicyStatus_loc"] == "Succeeded"
    # The server is in the exclusion group: the policy doesn't target it, so it is not in the report.
    assert all(r["DeviceName"] != "SRV-0001" for r in rows)
    assert AuditEvent.objects.filter(source="api", action="policy.assign").count() == 2


def test_sdk_errors_arrive_as_odata_errors(sdk, make_device):
    configmgr = make_device("WS-CM", configmgr_client=True, mde_onboarded=False)

    async def calls():
        out = []
        for call in (
            lambda: sdk.device_management.configuration_policies.by_device_management_configuration_policy_id(
                "00000000-0000-0000-0000-000000000000"
            ).get(),
            lambda: sdk.device_management.managed_devices.by_managed_device_id(
                str(configmgr.managed_device_id)
            ).sync_device.post(),
            lambda: sdk.device_management.configuration_policies.post(_policy("", AV_TEMPLATE, [])),
        ):
            try:
                await call()
            except ODataError as exc:
                out.append((exc.response_status_code, exc.error.code, exc.error.message))
        return out

    errors = run_async(calls())
    assert [(status, code) for status, code, _ in errors] == [
        (404, "ResourceNotFound"),
        (400, "BadRequest"),
        (400, "BadRequest"),
    ]
    assert (
        "only available for devices that are successfully managed by" in errors[1][2]
        and "Enter a name" in errors[2][2]
    )
