"""Graph beta `deviceManagement/configurationPolicyTemplates` (with `settingTemplates`) and
`deviceManagement/configurationSettings` (setting definitions): read-only, generated from the setting catalog by
policies.definitions, so what a script discovers is exactly what a create request may hold.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
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
    q_matches,
    select_param,
)
from console.api.errors import GraphError
from console.api.odata import apply_select, parse_query
from console.api.views import CountNegotiation, GraphView
from policies.catalog import get_catalog
from policies.definitions import (
    GRAPH,
    definition_json,
    instance_template_id,
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
DEFAULT_VALUE = {
    **obj(
        {
            "@odata.type": {
                "type": "string",
                "enum": [
                    GRAPH + "deviceManagementConfigurationChoiceSettingValueConstantDefaultTemplate",
                    GRAPH + "deviceManagementConfigurationIntegerSettingValueConstantDefaultTemplate",
                    GRAPH + "deviceManagementConfigurationStringSettingValueConstantDefaultTemplate",
                ],
            },
            "settingDefinitionOptionId": STRING,
            "constantValue": {"oneOf": [INT, STRING]},
            "children": {"type": "array", "items": {"type": "object"}},
        },
        required=["@odata.type"],
        description="The catalog's default: the default option's itemId (choice) or constantValue (integer, "
        "string). null where the reference data gives no default: this console never makes one up.",
    ),
    "nullable": True,
}
VALUE_TEMPLATE = obj(
    {
        "@odata.type": ODATA_TYPE,
        "settingValueTemplateId": STRING,
        "defaultValue": DEFAULT_VALUE,
        "recommendedValueDefinition": {"type": "object", "nullable": True},
        "requiredValueDefinition": {"type": "object", "nullable": True},
        "children": {"type": "array", "items": {"type": "object"}},
    },
    required=["@odata.type", "settingValueTemplateId"],
)
INSTANCE_TEMPLATE = obj(
    {
        "@odata.type": ODATA_TYPE,
        "settingInstanceTemplateId": STRING,
        "settingDefinitionId": STRING,
        "isRequired": BOOL,
        "choiceSettingValueTemplate": VALUE_TEMPLATE,
        "simpleSettingValueTemplate": VALUE_TEMPLATE,
        "choiceSettingCollectionValueTemplate": {"type": "array", "items": VALUE_TEMPLATE},
        "groupSettingCollectionValueTemplate": {"type": "array", "items": VALUE_TEMPLATE},
    },
    required=["@odata.type", "settingInstanceTemplateId", "settingDefinitionId", "isRequired"],
    description="deviceManagementConfigurationSettingInstanceTemplate (choice, simple, choice collection, "
    "simple collection or group collection); a value template's defaultValue is the catalog's default",
)
SETTING_TEMPLATE = obj(
    {
        "id": STRING,
        "settingInstanceTemplate": INSTANCE_TEMPLATE,
        "settingDefinitions": {"type": "array", "items": DEFINITION},
    },
    required=["id"],  # $select may leave the instance template out
    description="deviceManagementConfigurationSettingTemplate; its id, settingInstanceTemplateId and "
    "settingValueTemplateId are stable GUIDs derived from the template and setting ids",
)
SETTING_TEMPLATE_FIELDS = {
    "id": "id",
    "settingInstanceTemplate/settingDefinitionId": "settingDefinitionId",
    "settingInstanceTemplate/settingInstanceTemplateId": "settingInstanceTemplateId",
}
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


def _setting_template_row(item: dict[str, Any]) -> dict[str, Any]:
    instance = item["settingInstanceTemplate"]
    return {
        "id": item["id"],
        "settingDefinitionId": instance["settingDefinitionId"],
        "settingInstanceTemplateId": instance["settingInstanceTemplateId"],
    }


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
            filter_param(SETTING_TEMPLATE_FIELDS),
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
            fields=SETTING_TEMPLATE_FIELDS,
            row=_setting_template_row,
            expandable={"settingDefinitions"},
            expand=lambda item, _: setting_template_json(
                catalog,
                profile,
                catalog.setting(item["settingInstanceTemplate"]["settingDefinitionId"]),
                expand=True,
            ),
        )


class SettingTemplateCount(DefinitionView):
    content_negotiation_class = CountNegotiation

    @extend_schema(
        summary="The number of the template's setting templates, as text ($filter applies)",
        parameters=[filter_param(SETTING_TEMPLATE_FIELDS)],
        responses={(200, "text/plain"): OpenApiResponse({"type": "integer"}), **errors()},
        tags=["configurationPolicyTemplates"],
    )
    def get(self, request, template_id: str):
        catalog = get_catalog()
        profile = _template(template_id)
        query = parse_query(request.GET, fields=SETTING_TEMPLATE_FIELDS, orderable={})
        rows = [_setting_template_row(setting_template_json(catalog, profile, s)) for s in roots(profile)]
        if query.filter:
            rows = [r for r in rows if q_matches(query.filter, r)]
        return HttpResponse(str(len(rows)), content_type="text/plain; charset=utf-8")


class SettingTemplateDetail(DefinitionView):
    @extend_schema(
        summary="One setting template of a template (?$expand=settingDefinitions adds its definitions)",
        parameters=[expand_param(["settingDefinitions"]), select_param(SETTING_TEMPLATE["properties"])],
        responses={200: OpenApiResponse(SETTING_TEMPLATE), **errors()},
        tags=["configurationPolicyTemplates"],
    )
    def get(self, request, template_id: str, setting_template_id: str):
        catalog = get_catalog()
        profile = _template(template_id)
        query = parse_query(
            request.GET,
            fields={},
            orderable={},
            selectable=set(SETTING_TEMPLATE["properties"]),
            expandable={"settingDefinitions"},
        )
        wanted = str(setting_template_id).strip().lower()
        for setting in roots(profile):
            if instance_template_id(profile.template_id, setting.id) == wanted:
                item = setting_template_json(catalog, profile, setting, expand=bool(query.expand))
                return Response(apply_select(item, query.select))
        raise GraphError(
            404,
            f"deviceManagementConfigurationSettingTemplate '{str(setting_template_id)[:80]}' was not found in "
            f"template '{profile.template_id}'.",
            "ResourceNotFound",
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
