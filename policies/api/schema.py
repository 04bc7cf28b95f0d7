"""The OpenAPI request schemas of configurationPolicies, generated from the setting catalog (issue 14 item 10): a
policy body is one of the profiles' shapes (its template id, platform and family), and each setting instance is
one of that profile's settings with its exact @odata.type, option ids, integer range and text rules — what
policies.validation enforces, so that a request the schema calls valid is one the server accepts.

What JSON Schema cannot say is in the descriptions: a settingDefinitionId sent twice is refused with the
operation's documented 409 response; text settings
the catalog checks with code (paths, extensions, processes) get a pattern that is a safe subset of what the
server takes; group collections (ASR rules, firewall rules, threat severity actions) and the settings nested in
them are accepted as graph-api-shapes.md shows but are described in configurationSettings, not here.
"""

from __future__ import annotations

from typing import Any

from console.api.common import GUID_PATTERN, NAME_PATTERN, free_text, name_text, nullable, obj
from policies.catalog import Catalog, Profile, SettingDef
from policies.definitions import GRAPH_PLATFORM
from policies.graph import (
    CHOICE_COLLECTION_INSTANCE,
    CHOICE_INSTANCE,
    CHOICE_VALUE,
    INTEGER_VALUE,
    SIMPLE_COLLECTION_INSTANCE,
    SIMPLE_INSTANCE,
    STRING_VALUE,
)

NAME_MAX = 200
DESCRIPTION_MAX = 1500
SCOPE_TAG_IDS = {
    "type": "array",
    "items": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "minItems": 1,
    "uniqueItems": True,
    "description": 'Ids of /deviceManagement/roleScopeTags ("0" is Default); an unknown id is 404',
}
# Safe subsets of the values policies.validation checks with code, by setting id suffix.
_TEXT_PATTERNS = {
    "_excludedextensions": r"^\.?[A-Za-z0-9]{1,8}$",
    "_excludedprocesses": r"^[A-Za-z0-9_-]{1,20}\.exe$",
    "_excludedpaths": r"^[A-Za-z]:\\[A-Za-z0-9_-]{1,20}$",
    "_attacksurfacereductiononlyexclusions": r"^[A-Za-z]:\\[A-Za-z0-9_-]{1,20}$",
    "_controlledfolderaccessallowedapplications": r"^[A-Za-z]:\\[A-Za-z0-9_-]{1,20}\.exe$",
    "_controlledfolderaccessprotectedfolders": r"^[A-Za-z]:\\[A-Za-z0-9_-]{1,20}$",
    "_logfilepath": r"^[A-Za-z]:\\[A-Za-z0-9_-]{1,20}\.log$",
    "_app_filepath": r"^[A-Za-z]:\\[A-Za-z0-9_-]{1,20}\.exe$",
}
_PLAIN_TEXT = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$"
INSTANCE_REFERENCE = obj(
    {"settingInstanceTemplateId": {"type": "string", "pattern": GUID_PATTERN}},
    required=["settingInstanceTemplateId"],
    description="settingInstanceTemplateReference: stored and returned as sent",
)
VALUE_REFERENCE = obj(
    {
        "settingValueTemplateId": {"type": "string", "pattern": GUID_PATTERN},
        "useTemplateDefault": {"type": "boolean"},
    },
    required=["settingValueTemplateId"],
    description="settingValueTemplateReference: stored and returned as sent",
)


def _const(value: str) -> dict[str, Any]:
    return {"type": "string", "enum": [value]}


def _text_value(setting: SettingDef) -> dict[str, Any]:
    for suffix, pattern in _TEXT_PATTERNS.items():
        if setting.id.endswith(suffix):
            return {"type": "string", "pattern": pattern}
    schema: dict[str, Any] = {"type": "string", "pattern": setting.input_validation or _PLAIN_TEXT}
    if setting.input_validation:
        schema = {"allOf": [schema, {"type": "string", "pattern": _PLAIN_TEXT}]}
    if setting.max_length is not None:
        schema["maxLength"] = setting.max_length
    return schema


def _choice_value(setting: SettingDef) -> dict[str, Any]:
    return obj(
        {
            "@odata.type": _const(CHOICE_VALUE),
            "value": {"type": "string", "enum": [o.item_id for o in setting.options]},
            "children": {"type": "array", "maxItems": 0},
            "settingValueTemplateReference": nullable(VALUE_REFERENCE),
        },
        required=["value"],
    )


def _value_of(setting: SettingDef) -> tuple[str, str, dict[str, Any]] | None:
    """(instance @odata.type, value property, value schema) of a top-level setting this schema describes."""
    if setting.type == "choice":
        return CHOICE_INSTANCE, "choiceSettingValue", _choice_value(setting)
    if setting.type == "choice_collection":
        items = _choice_value(setting)
        return CHOICE_COLLECTION_INSTANCE, "choiceSettingCollectionValue", {
            "type": "array", "items": items, "minItems": 1, "maxItems": len(setting.options), "uniqueItems": True,
        }  # fmt: skip
    if setting.type == "integer":
        value: dict[str, Any] = {"type": "integer"}
        if setting.min is not None:
            value["minimum"] = setting.min
        if setting.max is not None:
            value["maximum"] = setting.max
        return SIMPLE_INSTANCE, "simpleSettingValue", obj(
            {"@odata.type": _const(INTEGER_VALUE), "value": value,
             "settingValueTemplateReference": nullable(VALUE_REFERENCE)},
            required=["@odata.type", "value"],
        )  # fmt: skip
    if setting.type == "string":
        return SIMPLE_INSTANCE, "simpleSettingValue", obj(
            {"@odata.type": _const(STRING_VALUE), "value": _text_value(setting),
             "settingValueTemplateReference": nullable(VALUE_REFERENCE)},
            required=["@odata.type", "value"],
        )  # fmt: skip
    if setting.type == "string_collection":
        item = obj(
            {"@odata.type": _const(STRING_VALUE), "value": _text_value(setting)},
            required=["@odata.type", "value"],
        )
        return SIMPLE_COLLECTION_INSTANCE, "simpleSettingCollectionValue", {
            "type": "array", "items": item, "minItems": 1, "maxItems": 1,
        }  # fmt: skip
    return None


def instance_schema(setting: SettingDef) -> dict[str, Any] | None:
    described = _value_of(setting)
    if described is None or setting.parent_id is not None:
        return None
    odata_type, prop, value = described
    return obj(
        {
            "@odata.type": _const(odata_type),
            "settingDefinitionId": _const(setting.id),
            "settingInstanceTemplateReference": nullable(INSTANCE_REFERENCE),
            prop: value,
        },
        required=["@odata.type", "settingDefinitionId", prop],
    )


def setting_schema(settings: list[SettingDef]) -> dict[str, Any]:
    """A deviceManagementConfigurationSetting of one of these settings (the wrapper scripts send)."""
    instances = [s for s in (instance_schema(setting) for setting in settings) if s is not None]
    return obj(
        {
            "@odata.type": _const("#microsoft.graph.deviceManagementConfigurationSetting"),
            "id": {"type": "string", "pattern": r"^[0-9]{1,3}$"},
            "settingInstance": {"oneOf": instances},
        },
        required=["settingInstance"],
        description="deviceManagementConfigurationSetting (one instance; a settingDefinitionId may appear once in a "
        "settings array: a second one is answered 409, as the operation's responses state)",
    )


def _settings(profile: Profile) -> dict[str, Any]:
    if not any(instance_schema(setting) is not None for setting in profile.settings):
        # Only group collections (firewall rules): described in configurationSettings, not here.
        return {"type": "array", "maxItems": 0, "description": "Group collections: see configurationSettings"}
    return {"type": "array", "items": setting_schema(list(profile.settings))}


def _template_reference(profile: Profile) -> dict[str, Any]:
    return obj(
        {
            "templateId": _const(profile.template_id),
            "templateFamily": _const(profile.template_family),
            "templateDisplayName": nullable({"type": "string", "pattern": NAME_PATTERN}),
            "templateDisplayVersion": nullable({"type": "string", "pattern": NAME_PATTERN}),
        },
        required=["templateId"],
    )


def policy_create_schema(catalog: Catalog, assignments: dict[str, Any]) -> dict[str, Any]:
    """POST …/configurationPolicies: one shape per profile (template id, family and its settings)."""
    shapes = []
    for profile in catalog.profiles.values():
        shapes.append(
            obj(
                {
                    "@odata.type": _const("#microsoft.graph.deviceManagementConfigurationPolicy"),
                    "name": name_text(NAME_MAX, "Need not be unique: Graph allows duplicate names"),
                    "description": nullable(free_text(DESCRIPTION_MAX)),
                    "platforms": _const(GRAPH_PLATFORM[profile.platforms[0]]),
                    "technologies": {
                        "type": "string",
                        "enum": sorted({"mdm,microsoftSense", profile.technologies}),
                    },
                    "roleScopeTagIds": SCOPE_TAG_IDS,
                    "templateReference": _template_reference(profile),
                    "settings": _settings(profile),
                    "assignments": assignments,
                },
                required=["name", "platforms", "technologies", "templateReference"],
                description=f"A {profile.name} policy",
            )
        )
    return {
        "oneOf": shapes,
        "description": "A policy as the SDK (or an export) sends it. One shape per Endpoint security profile: the "
        "settings must be of the template's profile; macOS and Linux profiles (platforms macOS, linux) have their own "
        "templates. Their list settings (exclusions, threat type settings, device tags) are group collections, "
        "described in configurationSettings.",
    }


def policy_update_schema(catalog: Catalog, assignments: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    """PATCH/PUT: any profile's settings are well formed; ones of another profile than the policy's are 409."""
    every = [catalog.setting(s.id) for s in catalog.all_settings()]
    unique = list({s.id: s for s in every}.values())
    return obj(
        {
            "name": name_text(NAME_MAX),
            "description": nullable(free_text(DESCRIPTION_MAX)),
            "roleScopeTagIds": SCOPE_TAG_IDS,
            "settings": {"type": "array", "items": setting_schema(unique)},
            "assignments": assignments,
        },
        required=["name"] if replace else (),
        description="Name, description, settings (replaced when sent) and assignments (replaced when sent). "
        "templateReference, platforms and technologies may be sent unchanged. A setting, template or platform "
        "of another profile than the policy's conflicts with the policy: 409 (Graph's documentation is silent).",
    )
