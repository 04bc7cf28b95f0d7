"""Graph's configurationPolicyTemplates, their settingTemplates and the setting definitions
(configurationSettings), generated from the one setting catalog (pure Python, no Django).

The wizard, validation (policies.validation) and the API all read the same ``Catalog``, so a template, a
definition's options and ranges, and what a create request may hold cannot disagree. Ids that Graph assigns and
the catalog does not hold (settingInstanceTemplateId, settingValueTemplateId) are stable GUIDs derived from the
template id and the setting id (uuid5), so they are the same on every server and every run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from policies.catalog import Catalog, Option, Profile, SettingDef

# Graph's platforms value of each platform (policies.models.GRAPH_PLATFORM; definitions stay free of models).
GRAPH_PLATFORM = {"windows": "windows10", "macos": "macOS", "linux": "linux"}

GRAPH = "#microsoft.graph."
MDE_TECHNOLOGIES = "mdm,microsoftSense"
_IDS = uuid.UUID("6b1f7b0e-55c1-4a55-9c55-0e1d5ec0a7a1")  # namespace of the derived template GUIDs

# setting type -> (definition @odata.type, instance template @odata.type, value template property)
_KINDS = {
    "choice": ("ChoiceSettingDefinition", "ChoiceSettingInstanceTemplate", "choiceSettingValueTemplate"),
    "choice_collection": (
        "ChoiceSettingCollectionDefinition",
        "ChoiceSettingCollectionInstanceTemplate",
        "choiceSettingCollectionValueTemplate",
    ),
    "integer": ("SimpleSettingDefinition", "SimpleSettingInstanceTemplate", "simpleSettingValueTemplate"),
    "string": ("SimpleSettingDefinition", "SimpleSettingInstanceTemplate", "simpleSettingValueTemplate"),
    "string_collection": (
        "SimpleSettingCollectionDefinition",
        "SimpleSettingCollectionInstanceTemplate",
        "simpleSettingCollectionValueTemplate",
    ),
    "group_collection": (
        "SettingGroupCollectionDefinition",
        "GroupSettingCollectionInstanceTemplate",
        "groupSettingCollectionValueTemplate",
    ),
}


def _type(name: str) -> str:
    return f"{GRAPH}deviceManagementConfiguration{name}"


def instance_template_id(template_id: str, setting_id: str) -> str:
    return str(uuid.uuid5(_IDS, f"{template_id}/{setting_id}/instance"))


def value_template_id(template_id: str, setting_id: str) -> str:
    return str(uuid.uuid5(_IDS, f"{template_id}/{setting_id}/value"))


# ------------------------------------------------------------------------------------------------ definitions


def _value(value: object) -> dict[str, Any]:
    kind = (
        "IntegerSettingValue"
        if isinstance(value, int) and not isinstance(value, bool)
        else "StringSettingValue"
    )
    return {"@odata.type": _type(kind), "settingValueTemplateReference": None, "value": value}


def _options(setting: SettingDef) -> list[dict[str, Any]]:
    return [
        {
            "itemId": option.item_id,
            "description": None,
            "helpText": None,
            "name": str(option.value),
            "displayName": option.label,
            "optionValue": _value(option.value),
            "dependentOn": [],
            "dependedOnBy": [],
        }
        for option in setting.options
    ]


def _value_definition(setting: SettingDef) -> dict[str, Any]:
    if setting.type == "integer":
        return {
            "@odata.type": _type("IntegerSettingValueDefinition"),
            "minimumValue": setting.min if setting.min is not None else -(2**31),
            "maximumValue": setting.max if setting.max is not None else 2**31 - 1,
        }
    return {
        "@odata.type": _type("StringSettingValueDefinition"),
        "format": "none",
        "inputValidationSchema": setting.input_validation,
        "isSecret": False,
        "maximumLength": setting.max_length if setting.max_length is not None else 87516,
        "minimumLength": 0,
    }


def _platform(catalog: Catalog, setting: SettingDef) -> str:
    """Graph's platform of a setting: its profile's (windows10, macOS or linux)."""
    return GRAPH_PLATFORM[catalog.profile_of(setting.id).platforms[0]]


def _technologies(setting: SettingDef) -> str:
    return ",".join(setting.technologies) or MDE_TECHNOLOGIES


def definition_json(catalog: Catalog, setting: SettingDef) -> dict[str, Any]:
    """A deviceManagementConfigurationSettingDefinition (the subtype of its setting type)."""
    odata_type, _, _ = _KINDS[setting.type]
    root = setting
    while root.parent_id is not None:
        root = catalog.setting(root.parent_id)
    csp = setting.csp_path
    data: dict[str, Any] = {
        "@odata.type": _type(odata_type),
        "id": setting.id,
        "name": csp.rstrip("/").rsplit("/", 1)[-1],
        "displayName": setting.display_name,
        "description": setting.description,
        "helpText": setting.description,
        "baseUri": csp.rsplit("/", 1)[0] if "/" in csp else csp,
        "offsetUri": csp.rstrip("/").rsplit("/", 1)[-1],
        "rootDefinitionId": root.id,
        "categoryId": setting.category,
        "settingUsage": "configuration",
        "uxBehavior": "default",
        "visibility": "settingsCatalog,template",
        "accessTypes": "replace",
        "keywords": [],
        "infoUrls": [setting.learn_more_url],
        "version": "1",
        "referredSettingInformationList": [],
        "occurrence": {"minDeviceOccurrence": 0, "maxDeviceOccurrence": 1},
        "applicability": {
            "@odata.type": _type("WindowsSettingApplicability"),
            "description": None,
            "platform": _platform(catalog, setting),
            "deviceMode": "none",
            "technologies": _technologies(setting),
            "configurationServiceProviderVersion": "1.0",
            "maximumSupportedVersion": None,
            "minimumSupportedVersion": None,
            "requiredAzureAdTrustType": "none",
            "requiresAzureAd": False,
            "windowsSkus": [],
        },
    }
    if setting.type == "choice":
        default = setting.option_for(setting.default) if setting.default is not None else None
        data["options"] = _options(setting)
        data["defaultOptionId"] = default.item_id if default else None
    elif setting.type == "choice_collection":
        defaults = _collection_defaults(setting)
        data["options"] = _options(setting)
        data["defaultOptionId"] = defaults[0].item_id if len(defaults) == 1 else None
        data["minimumCount"] = 0
        data["maximumCount"] = len(setting.options)
    elif setting.type in ("integer", "string"):
        data["valueDefinition"] = _value_definition(setting)
        data["defaultValue"] = _value(setting.default) if setting.default is not None else None
        data["dependentOn"] = []
        data["dependedOnBy"] = []
    elif setting.type == "string_collection":
        data["simpleSetting"] = {
            **_value_definition(setting),
            "@odata.type": _type("StringSettingValueDefinition"),
        }
        data["minimumCount"] = 0
        data["maximumCount"] = 600
    else:
        data["childIds"] = list(setting.children)
        data["minimumCount"] = 0
        data["maximumCount"] = 100 if setting.is_instance_collection else 1
        data["dependentOn"] = []
        data["dependedOnBy"] = []
    return data


def unique_settings(catalog: Catalog) -> Iterator[SettingDef]:
    """Every setting definition once (a few Defender settings are in two profiles), in catalog order."""
    seen: set[str] = set()
    for setting in catalog.all_settings():
        if setting.id not in seen:
            seen.add(setting.id)
            yield catalog.setting(setting.id)


def descendants(profile: Profile, setting: SettingDef) -> list[SettingDef]:
    """The setting and every setting nested below it in the profile (children of groups and of choices)."""
    found = [setting]
    for candidate in profile.settings:
        if candidate.parent_id == setting.id:
            found.extend(descendants(profile, candidate))
    return found


def definitions_of_instance(catalog: Catalog, instance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The definitions of every settingDefinitionId in a stored setting instance (root first): what
    `…/settings?$expand=settingDefinitions` adds to each setting."""
    ids: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            setting_id = node.get("settingDefinitionId")
            if isinstance(setting_id, str) and setting_id not in ids:
                ids.append(setting_id)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(instance)
    return [definition_json(catalog, catalog.setting(i)) for i in ids if catalog.get(i) is not None]


# ------------------------------------------------------------------------------------------------ templates


def template_json(profile: Profile) -> dict[str, Any]:
    """A deviceManagementConfigurationPolicyTemplate for a profile of the catalog."""
    base_id, _, version = profile.template_id.rpartition("_")
    return {
        "id": profile.template_id,
        "baseId": base_id,
        "version": int(version) if version.isdigit() else 1,
        "displayName": profile.name,
        "description": f"Endpoint security › {profile.name} (Security Management for Microsoft Defender for "
        "Endpoint).",
        "displayVersion": f"Version {int(version) if version.isdigit() else 1}",
        "lifecycleState": "active" if profile.mde_supported else "deprecated",
        "platforms": GRAPH_PLATFORM[profile.platforms[0]],
        "technologies": profile.technologies,
        "templateFamily": profile.template_family,
        "allowUnmanagedSettings": False,
        "settingTemplateCount": len(roots(profile)),
    }


def roots(profile: Profile) -> list[SettingDef]:
    return [s for s in profile.settings if s.parent_id is None]


def _default_template(profile: Profile, setting: SettingDef) -> dict[str, Any] | None:
    """Graph's `defaultValue` of a single value template, from the catalog's default: the default option's itemId
    for a choice (with the instance templates of the settings below it), the constant for an integer or a string.
    None where the reference data gives no default, or a default that isn't one of the setting's options or
    within its range (defaults are never made up)."""
    default = setting.default
    if default is None:
        return None
    if setting.type == "choice":
        option = setting.option_for(default)
        if option is None:
            return None
        return _choice_default(profile, setting, option)
    if setting.type == "integer":
        if isinstance(default, bool) or not isinstance(default, int):
            return None
        if (setting.min is not None and default < setting.min) or (
            setting.max is not None and default > setting.max
        ):
            return None
        return {"@odata.type": _type("IntegerSettingValueConstantDefaultTemplate"), "constantValue": default}
    if setting.type == "string" and isinstance(default, str):
        return {"@odata.type": _type("StringSettingValueConstantDefaultTemplate"), "constantValue": default}
    return None


def _choice_default(profile: Profile, setting: SettingDef, option: Option) -> dict[str, Any]:
    return {
        "@odata.type": _type("ChoiceSettingValueConstantDefaultTemplate"),
        "settingDefinitionOptionId": option.item_id,
        "children": [instance_template_json(profile, child) for child in _nested(profile, setting)],
    }


def _collection_defaults(setting: SettingDef) -> list[Option]:
    """The options a choice collection has by default (the catalog keeps a collection's default as a list)."""
    values = setting.default if isinstance(setting.default, list | tuple) else [setting.default]
    found = [setting.option_for(v) for v in values if v is not None]
    return [o for o in found if o is not None] if all(found) else []


def _nested(profile: Profile, setting: SettingDef) -> list[SettingDef]:
    """The settings directly below a choice setting (e.g. an ASR rule's per-rule exclusions)."""
    return [s for s in profile.settings if s.parent_id == setting.id and s.id not in setting.children]


def _value_template(profile: Profile, setting: SettingDef) -> dict[str, Any] | list | None:
    template_id = profile.template_id
    if setting.type in ("choice", "integer", "string"):
        kind = {"choice": "ChoiceSettingValueTemplate", "integer": "IntegerSettingValueTemplate",
                "string": "StringSettingValueTemplate"}[setting.type]  # fmt: skip
        template = {
            "@odata.type": _type(kind),
            "settingValueTemplateId": value_template_id(template_id, setting.id),
            "defaultValue": _default_template(profile, setting),
        }
        if setting.type != "string":  # Graph's string value template has no value definitions
            template["recommendedValueDefinition"] = None
            template["requiredValueDefinition"] = None
        return template
    if setting.type == "choice_collection":
        # One value template per default option; none when the catalog gives no default.
        return [
            {
                "@odata.type": _type("ChoiceSettingValueTemplate"),
                "settingValueTemplateId": value_template_id(template_id, f"{setting.id}/{option.item_id}"),
                "defaultValue": _choice_default(profile, setting, option),
                "recommendedValueDefinition": None,
                "requiredValueDefinition": None,
            }
            for option in _collection_defaults(setting)
        ]
    if setting.type == "group_collection":
        return [
            {
                "@odata.type": _type("GroupSettingValueTemplate"),
                "settingValueTemplateId": value_template_id(template_id, setting.id),
                "children": [
                    instance_template_json(profile, profile.setting(child))
                    for child in setting.children
                    if child in profile
                ],
            }
        ]
    return None  # a collection of simple values has no value template


def instance_template_json(profile: Profile, setting: SettingDef) -> dict[str, Any]:
    _, odata_type, value_property = _KINDS[setting.type]
    data: dict[str, Any] = {
        "@odata.type": _type(odata_type),
        "settingInstanceTemplateId": instance_template_id(profile.template_id, setting.id),
        "settingDefinitionId": setting.id,
        "isRequired": False,
    }
    value = _value_template(profile, setting)
    if value is not None:
        data[value_property] = value
    return data


def setting_template_json(
    catalog: Catalog, profile: Profile, setting: SettingDef, *, expand: bool = False
) -> dict[str, Any]:
    """A deviceManagementConfigurationSettingTemplate: one root setting of the template, its instance template
    and (expanded) the definitions of the setting and everything nested below it."""
    data: dict[str, Any] = {
        "id": instance_template_id(profile.template_id, setting.id),
        "settingInstanceTemplate": instance_template_json(profile, setting),
    }
    if expand:
        data["settingDefinitions"] = [definition_json(catalog, s) for s in descendants(profile, setting)]
    return data
