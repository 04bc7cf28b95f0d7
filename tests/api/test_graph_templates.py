"""Graph's `configurationPolicyTemplates/{id}/settingTemplates` complete (issue 14, round two): one setting
template by id, its `settingInstanceTemplate` with the catalog's default values (Graph's `defaultValue`, and only
where the reference data gives one), `$expand=settingDefinitions`, `$filter`, `$top`, `$select` and `$count` as on
the other collections; read raw and through msgraph-beta-sdk."""

from __future__ import annotations

import json
import warnings

import pytest

from policies.catalog import DATA_FILE, MAC_LINUX_DATA_FILE
from tests.api.shapes import AV_TEMPLATE, CPU_LOAD, EXTENSIONS, GRAPH, REALTIME, assert_graph_error

TEMPLATES = "/beta/deviceManagement/configurationPolicyTemplates"
SETTING_TEMPLATES = f"{TEMPLATES}/{AV_TEMPLATE}/settingTemplates"
CLOUD = "device_vendor_msft_policy_config_defender_allowcloudprotection"
PASSIVE = "device_vendor_msft_defender_configuration_passiveremediation"


def _by_definition(items: list[dict]) -> dict[str, dict]:
    return {item["settingInstanceTemplate"]["settingDefinitionId"]: item for item in items}


def _all(ga_api, path: str, **params) -> list[dict]:
    items: list[dict] = []
    url = path
    while url:
        body = ga_api.get(url, **params).json()
        items += body["value"]
        url, params = body.get("@odata.nextLink", "").replace("http://testserver", ""), {}
    return items


def _reference_defaults() -> dict[str, object]:
    """The defaults the shared reference data gives, read from the data file itself (not through the catalog):
    a choice's as the item ids of the options whose value is the default, a simple setting's as the value."""
    data = {}
    for data_file in (DATA_FILE, MAC_LINUX_DATA_FILE):  # Windows, then macOS and Linux
        data.update(json.loads(data_file.read_text()))
    found: dict[str, object] = {}
    for name, settings in data.items():
        if name == "_meta":
            continue
        for setting in settings:
            default = setting.get("default")
            if default is not None and setting.get("options"):
                wanted = {str(v) for v in (default if isinstance(default, list) else [default])}
                default = (
                    sorted(
                        o.get("item_id") or f"{setting['id']}_{o['value']}".lower()  # Graph's itemId form
                        for o in setting["options"]
                        if str(o["value"]) in wanted
                    )
                    or None
                )
            found[setting["id"]] = default
    return found


def test_one_setting_template_by_id_is_the_one_listed(ga_api):
    listed = _by_definition(_all(ga_api, SETTING_TEMPLATES))
    realtime = listed[REALTIME]
    one = ga_api.get(f"{SETTING_TEMPLATES}/{realtime['id']}")
    assert one.status_code == 200, one.content
    assert one.json() == realtime
    instance = one.json()["settingInstanceTemplate"]
    assert instance["@odata.type"] == GRAPH + "deviceManagementConfigurationChoiceSettingInstanceTemplate"
    assert instance["settingDefinitionId"] == REALTIME and instance["isRequired"] is False
    assert instance["settingInstanceTemplateId"] == realtime["id"]
    expanded = ga_api.get(f"{SETTING_TEMPLATES}/{realtime['id']}", **{"$expand": "settingDefinitions"}).json()
    assert [d["id"] for d in expanded["settingDefinitions"]] == [REALTIME]
    selected = ga_api.get(
        f"{SETTING_TEMPLATES}/{realtime['id']}", **{"$select": "settingInstanceTemplate"}
    ).json()
    assert set(selected) == {"id", "settingInstanceTemplate"}


def test_an_unknown_setting_template_or_template_is_a_404(ga_api):
    assert_graph_error(ga_api.get(f"{SETTING_TEMPLATES}/00000000-0000-0000-0000-000000000000"), 404)
    assert_graph_error(ga_api.get(f"{TEMPLATES}/nope_1/settingTemplates/x"), 404)
    # a setting template of another template is not one of this template's
    other = ga_api.get(TEMPLATES, **{"$filter": "templateFamily eq 'endpointSecurityFirewall'"}).json()[
        "value"
    ]
    firewall_setting = _all(ga_api, f"{TEMPLATES}/{other[0]['id']}/settingTemplates")[0]
    assert_graph_error(ga_api.get(f"{SETTING_TEMPLATES}/{firewall_setting['id']}"), 404)
    assert_graph_error(
        ga_api.get(f"{SETTING_TEMPLATES}/{firewall_setting['id']}", **{"$expand": "nothing"}), 400
    )


def test_value_templates_carry_the_reference_defaults_in_graphs_shape(ga_api):
    listed = _by_definition(_all(ga_api, SETTING_TEMPLATES))
    cloud = listed[CLOUD]["settingInstanceTemplate"]["choiceSettingValueTemplate"]
    assert cloud["@odata.type"] == GRAPH + "deviceManagementConfigurationChoiceSettingValueTemplate"
    assert cloud["settingValueTemplateId"]
    assert cloud["defaultValue"] == {
        "@odata.type": GRAPH + "deviceManagementConfigurationChoiceSettingValueConstantDefaultTemplate",
        "settingDefinitionOptionId": f"{CLOUD}_1",  # the reference's default: 1, "Allowed"
        "children": [],
    }
    cpu = listed[CPU_LOAD]["settingInstanceTemplate"]["simpleSettingValueTemplate"]
    assert cpu["@odata.type"] == GRAPH + "deviceManagementConfigurationIntegerSettingValueTemplate"
    assert cpu["defaultValue"] == {
        "@odata.type": GRAPH + "deviceManagementConfigurationIntegerSettingValueConstantDefaultTemplate",
        "constantValue": 50,
    }
    passive = listed[PASSIVE]["settingInstanceTemplate"]["choiceSettingCollectionValueTemplate"]
    assert [v["defaultValue"]["settingDefinitionOptionId"] for v in passive] == [f"{PASSIVE}_0"]
    # A string collection (Excluded Extensions) has no value template; the reference gives it no default.
    assert "simpleSettingCollectionValueTemplate" not in listed[EXTENSIONS]["settingInstanceTemplate"]


def _defaults_in(instance: dict) -> dict[str, object]:
    """settingDefinitionId -> what the instance template (and the ones nested in it) gives as default."""
    found: dict[str, object] = {}
    setting_id = instance["settingDefinitionId"]
    for key, value in instance.items():
        if not key.endswith("ValueTemplate"):
            continue
        for template in value if isinstance(value, list) else [value]:
            default = template.get("defaultValue")
            if default is not None:
                if "settingDefinitionOptionId" in default:
                    found.setdefault(setting_id, []).append(default["settingDefinitionOptionId"])
                else:
                    found[setting_id] = default["constantValue"]
                for child in default.get("children", []):
                    found.update(_defaults_in(child))
            elif "defaultValue" in template:
                found.setdefault(setting_id, None)
            for child in template.get("children", []):
                found.update(_defaults_in(child))
    return found


def test_every_default_comes_from_the_reference_data_and_none_is_made_up(ga_api):
    reference = _reference_defaults()
    templates = ga_api.get(TEMPLATES).json()["value"]
    seen = 0
    for template in templates:
        for item in _all(ga_api, f"{TEMPLATES}/{template['id']}/settingTemplates"):
            for setting_id, default in _defaults_in(item["settingInstanceTemplate"]).items():
                want = reference[setting_id]
                if default is None:
                    assert want is None, setting_id  # a reference default must not be dropped
                    continue
                seen += 1
                assert want is not None, f"{setting_id}: a default the reference data doesn't give"
                assert (sorted(default) if isinstance(default, list) else default) == want, setting_id
    assert seen > 150


def test_setting_templates_filter_top_select_and_count_like_the_other_collections(ga_api):
    everything = _all(ga_api, SETTING_TEMPLATES)
    filtered = ga_api.get(
        SETTING_TEMPLATES, **{"$filter": f"settingInstanceTemplate/settingDefinitionId eq '{CPU_LOAD}'"}
    )
    assert filtered.status_code == 200, filtered.content
    assert [i["settingInstanceTemplate"]["settingDefinitionId"] for i in filtered.json()["value"]] == [
        CPU_LOAD
    ]
    starts = ga_api.get(
        SETTING_TEMPLATES,
        **{
            "$filter": "startswith(settingInstanceTemplate/settingDefinitionId,'device_vendor_msft_policy_config_')"
        },
    ).json()["value"]
    assert 0 < len(starts) < len(everything)
    assert_graph_error(ga_api.get(SETTING_TEMPLATES, **{"$filter": "displayName eq 'x'"}), 400)
    page = ga_api.get(SETTING_TEMPLATES, **{"$top": "3", "$count": "true"}).json()
    assert len(page["value"]) == 3 and page["@odata.count"] == len(everything) and "@odata.nextLink" in page
    selected = ga_api.get(SETTING_TEMPLATES, **{"$select": "id", "$top": "2"}).json()["value"]
    assert all(set(item) == {"id"} for item in selected)
    assert_graph_error(ga_api.get(SETTING_TEMPLATES, **{"$select": "nothing"}), 400)
    count = ga_api.get(f"{SETTING_TEMPLATES}/$count")
    assert count.status_code == 200 and count.content.decode() == str(len(everything))
    assert count["Content-Type"].startswith("text/plain")
    one = ga_api.get(
        f"{SETTING_TEMPLATES}/$count",
        **{"$filter": f"settingInstanceTemplate/settingDefinitionId eq '{REALTIME}'"},
    )
    assert one.content == b"1"


def test_count_segments_answer_the_text_plain_accept_header_the_sdks_send(ga_api, make_group):
    make_group("A")
    sdk_accept = {"Accept": "text/plain;q=0.9"}
    count = ga_api.get(f"{SETTING_TEMPLATES}/$count", headers=sdk_accept)
    assert count.status_code == 200 and int(count.content) > 10
    groups = ga_api.get("/v1.0/groups/$count", headers={**sdk_accept, "ConsistencyLevel": "eventual"})
    assert groups.status_code == 200 and groups.content == b"1", groups.content
    # an error is still Graph's JSON envelope
    assert_graph_error(ga_api.get("/v1.0/groups/$count", headers=sdk_accept), 400, "Request_UnsupportedQuery")


pytest.importorskip("msgraph_beta")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph_beta.generated.device_management.configuration_policy_templates.item.setting_templates.setting_templates_request_builder import (
        SettingTemplatesRequestBuilder,
    )

from tests.api.test_msgraph_sdk import run_async, sdk  # noqa: E402, F401 - the fixture is used below


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_beta_sdk_reads_setting_templates_with_defaults_and_definitions(sdk):  # noqa: F811
    templates = sdk.device_management.configuration_policy_templates.by_device_management_configuration_policy_template_id(
        AV_TEMPLATE
    ).setting_templates

    async def read():
        config = RequestConfiguration(
            query_parameters=SettingTemplatesRequestBuilder.SettingTemplatesRequestBuilderGetQueryParameters(
                expand=["settingDefinitions"],
                filter=f"settingInstanceTemplate/settingDefinitionId eq '{CLOUD}'",
                count=True,
            )
        )
        page = await templates.get(request_configuration=config)
        one = await templates.by_device_management_configuration_setting_template_id(page.value[0].id).get()
        total = await templates.count.get()
        return page, one, total

    page, one, total = run_async(read())
    assert page.odata_count == 1 and len(page.value) == 1
    instance = page.value[0].setting_instance_template
    assert type(instance).__name__ == "DeviceManagementConfigurationChoiceSettingInstanceTemplate"
    assert instance.setting_definition_id == CLOUD
    assert instance.choice_setting_value_template.default_value.setting_definition_option_id == f"{CLOUD}_1"
    assert [d.id for d in page.value[0].setting_definitions] == [CLOUD]
    assert one.id == page.value[0].id
    assert total > 10
