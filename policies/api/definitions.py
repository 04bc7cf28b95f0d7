"""Graph beta `deviceManagement/configurationPolicyTemplates` (with `settingTemplates`) and
`deviceManagement/configurationSettings` (setting definitions): read-only, generated from the setting catalog by
policies.definitions, so what a script discovers is exactly what a create request may hold.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from console.api.common import (
    BOOL,
    COUNT,
    INT,
    NSTRING,
    ODATA_TYPE,
    SELECT,
    SKIP,
    SKIPTOKEN,
    STRING,
    STRINGS,
    TOP,
    GraphAutoSchema,
    collection_of,
    errors,
    expand_param,
    filter_param,
    list_collection,
    obj,
    select_param,
)
from console.api.errors import GraphError
from console.api.odata import apply_select, parse_query
from console.api.views import GraphView
from policies.catalog import get_catalog
from policies.definitions import (
    definition_json,
    roots,
    setting_template_json,
    template_json,
    unique_settings,
)

PERMS = {"GET": "policies.view_policy"}
TEMPLATE_FIELDS = {
    "id": "id",
    "displayName": "displayName",
    "templateFamily": "templateFamily",
    "lifecycleState": "lifecycleState",
    "platforms": "platforms",
    "technologies": "technologies",
    "baseId": "baseId",
}
SETTING_FIELDS = {
    "id": "id",
    "name": "name",
    "displayName": "displayName",
    "categoryId": "categoryId",
    "rootDefinitionId": "rootDefinitionId",
    "applicability/platform": "platform",
    "applicability/technologies": "technologies",
}

TEMPLATE = obj(
    {
        "id": STRING,
        "baseId": STRING,
        "version": INT,
        "displayName": STRING,
        "description": NSTRING,
        "displayVersion": STRING,
        "lifecycleState": {
            "type": "string",
            "enum": ["invalid", "draft", "active", "superseded", "deprecated", "retired"],
        },  # fmt: skip
        "platforms": {"type": "string", "enum": ["windows10", "macOS", "linux"]},
        "technologies": {
            "type": "string",
            "enum": ["mdm,microsoftSense", "microsoftSense", "mdm,appleRemoteManagement,microsoftSense"],
        },
        "templateFamily": STRING,
        "allowUnmanagedSettings": BOOL,
        "settingTemplateCount": INT,
    },
    required=["id"],
    description="deviceManagementConfigurationPolicyTemplate: one per Endpoint security profile of the catalog "
    "(Windows, macOS and Linux profiles each have their own template id, platforms and technologies)",
)
DEFINITION = obj(
    {
        "@odata.type": ODATA_TYPE,
        "id": STRING,
        "name": STRING,
        "displayName": STRING,
        "description": NSTRING,
        "rootDefinitionId": STRING,
        "categoryId": STRING,
        "infoUrls": STRINGS,
        "applicability": {"type": "object"},
        "options": {"type": "array", "items": {"type": "object"}},
        "valueDefinition": {"type": "object"},
        "childIds": STRINGS,
    },
    required=["@odata.type", "id"],
    description="deviceManagementConfigurationSettingDefinition (choice, choice collection, simple, simple "
    "collection or group collection), with options, ranges (valueDefinition) and applicability "
    "(technologies includes microsoftSense where the MDE channel applies it)",
)
SETTING_TEMPLATE = obj(
    {
        "id": STRING,
        "settingInstanceTemplate": obj(
            {
                "@odata.type": ODATA_TYPE,
                "settingInstanceTemplateId": STRING,
                "settingDefinitionId": STRING,
                "isRequired": BOOL,
            },
            required=["@odata.type", "settingInstanceTemplateId", "settingDefinitionId"],
        ),
        "settingDefinitions": {"type": "array", "items": DEFINITION},
    },
    required=["id"],
    description="deviceManagementConfigurationSettingTemplate; settingInstanceTemplateId and "
    "settingValueTemplateId are stable GUIDs derived from the template and setting ids",
)
PAGE = [TOP, SKIP, SKIPTOKEN, COUNT]
# Every property a definition of any setting type has: what $select may name on configurationSettings.
DEFINITION_PROPERTIES = sorted(
    {
        key
        for s in unique_settings(get_catalog())
        for key in definition_json(get_catalog(), s)
        if key[0] != "@"
    }
)


def _template(template_id: str):
    catalog = get_catalog()
    for profile in catalog.profiles.values():
        if profile.template_id.lower() == str(template_id).lower():
            return profile
    raise GraphError(
        404,
        f"deviceManagementConfigurationPolicyTemplate '{str(template_id)[:80]}' was not found.",
        "ResourceNotFound",
    )


def _definition_row(item: dict[str, Any]) -> dict[str, Any]:
    applicability = item.get("applicability") or {}
    return {
        **item,
        "platform": applicability.get("platform"),
        "technologies": applicability.get("technologies"),
    }


class DefinitionView(GraphView):
    schema = GraphAutoSchema()
    required_perms = PERMS


class PolicyTemplateList(DefinitionView):
    @extend_schema(
        summary="Endpoint security templates (one per profile of the setting catalog)",
        parameters=[filter_param(TEMPLATE_FIELDS), select_param(TEMPLATE["properties"]), *PAGE],
        responses={200: OpenApiResponse(collection_of(TEMPLATE)), **errors()},
        tags=["configurationPolicyTemplates"],
    )
    def get(self, request):
        templates = [template_json(p) for p in get_catalog().profiles.values()]
        return list_collection(
            request, templates, selectable=set(TEMPLATE["properties"]), fields=TEMPLATE_FIELDS
        )


class PolicyTemplateDetail(DefinitionView):
    @extend_schema(
        summary="One template",
        parameters=[select_param(TEMPLATE["properties"])],
        responses={200: OpenApiResponse(TEMPLATE), **errors()},
        tags=["configurationPolicyTemplates"],
    )
    def get(self, request, template_id: str):
        query = parse_query(request.GET, fields={}, orderable={}, selectable=set(TEMPLATE["properties"]))
        return Response(apply_select(template_json(_template(template_id)), query.select))


class SettingTemplateList(DefinitionView):
    @extend_schema(
        summary="The template's setting templates (?$expand=settingDefinitions adds each one's definitions)",
        parameters=[
            expand_param(["settingDefinitions"]),
            select_param(SETTING_TEMPLATE["properties"]),
            *PAGE,
        ],
        responses={200: OpenApiResponse(collection_of(SETTING_TEMPLATE)), **errors()},
        tags=["configurationPolicyTemplates"],
    )
    def get(self, request, template_id: str):
        catalog = get_catalog()
        profile = _template(template_id)
        return list_collection(
            request,
            [setting_template_json(catalog, profile, s) for s in roots(profile)],
            selectable=set(SETTING_TEMPLATE["properties"]),
            expandable={"settingDefinitions"},
            expand=lambda item, _: setting_template_json(
                catalog,
                profile,
                catalog.setting(item["settingInstanceTemplate"]["settingDefinitionId"]),
                expand=True,
            ),
        )


class ConfigurationSettingList(DefinitionView):
    @extend_schema(
        summary="Setting definitions of the catalog (options, ranges, applicability)",
        parameters=[filter_param(SETTING_FIELDS), select_param(DEFINITION_PROPERTIES), *PAGE],
        responses={200: OpenApiResponse(collection_of(DEFINITION)), **errors()},
        tags=["configurationSettings"],
    )
    def get(self, request):
        catalog = get_catalog()
        definitions = [definition_json(catalog, s) for s in unique_settings(catalog)]
        return list_collection(
            request, definitions, fields=SETTING_FIELDS, row=_definition_row, selectable=DEFINITION_PROPERTIES
        )


class ConfigurationSettingDetail(DefinitionView):
    @extend_schema(
        summary="One setting definition",
        parameters=[SELECT],
        responses={200: OpenApiResponse(DEFINITION), **errors()},
        tags=["configurationSettings"],
    )
    def get(self, request, setting_id: str):
        query = parse_query(request.GET, fields={}, orderable={})
        catalog = get_catalog()
        setting = catalog.get(setting_id)
        if setting is None:
            raise GraphError(
                404,
                f"deviceManagementConfigurationSettingDefinition '{setting_id[:120]}' was not found.",
                "ResourceNotFound",
            )
        return Response(apply_select(definition_json(catalog, setting), query.select))
