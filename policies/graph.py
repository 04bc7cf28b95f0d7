"""Microsoft Graph settings-catalog shape of policy values (pure Python, no Django).

``to_graph_settings`` turns flat values (see the shared contract) into the ``settings`` array of a
``deviceManagementConfigurationPolicy`` exactly as graph-api-shapes.md shows; ``from_graph_settings`` is its
inverse and accepts what msgraph-beta-sdk and hand-written PowerShell scripts send (extra keys such as ``id``,
``settingInstanceTemplateReference`` or ``settingValueTemplateReference`` are ignored).

Structure:
* plain settings are top-level instances; choice values are sent as the option's item id;
* ASR rules are ONE groupSettingCollectionInstance (the rules group) whose single element's children are the
  rule choice instances; a rule's per-rule exclusions are a child of that rule's choiceSettingValue;
* threat severity default actions are likewise one groupSettingCollectionInstance with one element;
* firewall rules are one groupSettingCollectionInstance with one element per rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.catalog import Catalog, Option, PolicyValues, Profile, SettingDef, Value
from policies.validation import SettingValidationError, validate_values_with

GRAPH = "#microsoft.graph."
CHOICE_INSTANCE = GRAPH + "deviceManagementConfigurationChoiceSettingInstance"
CHOICE_COLLECTION_INSTANCE = GRAPH + "deviceManagementConfigurationChoiceSettingCollectionInstance"
SIMPLE_INSTANCE = GRAPH + "deviceManagementConfigurationSimpleSettingInstance"
SIMPLE_COLLECTION_INSTANCE = GRAPH + "deviceManagementConfigurationSimpleSettingCollectionInstance"
GROUP_INSTANCE = GRAPH + "deviceManagementConfigurationGroupSettingInstance"
GROUP_COLLECTION_INSTANCE = GRAPH + "deviceManagementConfigurationGroupSettingCollectionInstance"
CHOICE_VALUE = GRAPH + "deviceManagementConfigurationChoiceSettingValue"
STRING_VALUE = GRAPH + "deviceManagementConfigurationStringSettingValue"
INTEGER_VALUE = GRAPH + "deviceManagementConfigurationIntegerSettingValue"
SECRET_VALUE = GRAPH + "deviceManagementConfigurationSecretSettingValue"
GROUP_VALUE = GRAPH + "deviceManagementConfigurationGroupSettingValue"

# setting type -> (instance @odata.type, value property)
_INSTANCE_OF_TYPE = {
    "choice": (CHOICE_INSTANCE, "choiceSettingValue"),
    "choice_collection": (CHOICE_COLLECTION_INSTANCE, "choiceSettingCollectionValue"),
    "integer": (SIMPLE_INSTANCE, "simpleSettingValue"),
    "string": (SIMPLE_INSTANCE, "simpleSettingValue"),
    "string_collection": (SIMPLE_COLLECTION_INSTANCE, "simpleSettingCollectionValue"),
    "group_collection": (GROUP_COLLECTION_INSTANCE, "groupSettingCollectionValue"),
}
_VALUE_PROPERTY_KIND = {
    "choiceSettingValue": CHOICE_INSTANCE,
    "choiceSettingCollectionValue": CHOICE_COLLECTION_INSTANCE,
    "simpleSettingValue": SIMPLE_INSTANCE,
    "simpleSettingCollectionValue": SIMPLE_COLLECTION_INSTANCE,
    "groupSettingValue": GROUP_INSTANCE,
    "groupSettingCollectionValue": GROUP_COLLECTION_INSTANCE,
}


# --------------------------------------------------------------------------------------------------------------
# to Graph


def _option(setting: SettingDef, value: object) -> Option:
    option = setting.option_for(value)
    if option is None:
        raise ValueError(f"{setting.id}: {value!r} is not an option value")
    return option


def _choice_value(option: Option, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@odata.type": CHOICE_VALUE, "children": children, "value": option.item_id}


def _simple_value(setting: SettingDef, value: object) -> dict[str, Any]:
    if setting.type == "integer":
        return {"@odata.type": INTEGER_VALUE, "value": value}
    return {"@odata.type": STRING_VALUE, "value": value}


def _value_instance(setting: SettingDef, value: Value, children: list[dict[str, Any]]) -> dict[str, Any]:
    instance_type, prop = _INSTANCE_OF_TYPE[setting.type]
    instance: dict[str, Any] = {"@odata.type": instance_type, "settingDefinitionId": setting.id}
    if setting.type == "choice":
        instance[prop] = _choice_value(_option(setting, value), children)
    elif setting.type == "choice_collection":
        if not isinstance(value, list):
            raise ValueError(f"{setting.id}: a choice collection needs a list")
        instance[prop] = [_choice_value(_option(setting, item), []) for item in value]
    elif setting.type in ("integer", "string"):
        instance[prop] = _simple_value(setting, value)
    elif setting.type == "string_collection":
        if not isinstance(value, list):
            raise ValueError(f"{setting.id}: a string collection needs a list")
        instance[prop] = [{"@odata.type": STRING_VALUE, "value": item} for item in value]
    else:
        raise ValueError(f"{setting.id}: cannot serialise a {setting.type} as a value")
    return instance


def to_graph_settings(
    catalog: Catalog, values: Mapping[str, Value], *, include_ids: bool = True
) -> list[dict[str, Any]]:
    """The Graph ``settings`` array for valid flat ``values`` (each element ``{"id": str(i), "settingInstance"}``).

    Top-level order follows ``values`` (a group appears where its first member does). ``include_ids=False``
    leaves out the ``id`` keys, as the SDK does on POST. Raises ``ValueError``/``KeyError`` for values that are
    not valid (validate them first).
    """
    children_of: dict[str, list[str]] = {}
    roots: list[str] = []

    def add_root(setting_id: str) -> None:
        if setting_id not in roots:
            roots.append(setting_id)

    for key in values:
        setting = catalog.setting(key)
        if not setting.is_value_key:
            raise ValueError(f"{key}: a group parent is not a value key; set its children")
        if setting.parent_id is None:
            add_root(key)
            continue
        parent = catalog.setting(setting.parent_id)
        if parent.is_instance_collection:
            raise ValueError(f"{key}: firewall rule fields belong inside a rule of {parent.id}")
        if parent.is_group:
            add_root(parent.id)
        elif parent.id not in values:
            raise ValueError(f"{key}: needs its parent setting {parent.id} to be set")
        children_of.setdefault(parent.id, []).append(key)

    def build(setting_id: str) -> dict[str, Any]:
        setting = catalog.setting(setting_id)
        if setting.is_instance_collection:
            rules = values[setting_id]
            if not isinstance(rules, list):
                raise ValueError(f"{setting_id}: firewall rules need a list of rules")
            elements = [
                {
                    "@odata.type": GROUP_VALUE,
                    "children": [_value_instance(catalog.setting(cid), v, []) for cid, v in rule.items()],
                }
                for rule in rules
            ]
        elif setting.is_group:
            elements = [
                {
                    "@odata.type": GROUP_VALUE,
                    "children": [build(cid) for cid in children_of.get(setting_id, [])],
                }
            ]
        else:
            children = [build(cid) for cid in children_of.get(setting_id, [])]
            return _value_instance(setting, values[setting_id], children)
        return {
            "@odata.type": GROUP_COLLECTION_INSTANCE,
            "settingDefinitionId": setting_id,
            "groupSettingCollectionValue": elements,
        }

    settings = []
    for index, root in enumerate(roots):
        element: dict[str, Any] = {"id": str(index)} if include_ids else {}
        element["settingInstance"] = build(root)
        settings.append(element)
    return settings


# --------------------------------------------------------------------------------------------------------------
# from Graph


SETTING_TYPE = GRAPH + "deviceManagementConfigurationSetting"  # a settings array's element (the wrapper)
SETTING_ID = re.compile(r"^[0-9]{1,3}$")  # a wrapper's id: its position, as served (the schema's pattern)


def _odata(obj: Mapping[str, Any]) -> str | None:
    """Normalised ``@odata.type`` ("#microsoft.graph.x"), tolerant of a missing '#' / namespace; None if absent.

    A sent one that is no type name (null, "", a number) is returned as its JSON text, which matches no type.
    """
    if "@odata.type" not in obj:
        return None
    raw = obj["@odata.type"]
    if not isinstance(raw, str) or not raw.strip():
        return json.dumps(raw)[:40]
    name = raw.strip().lstrip("#")
    if name.lower().startswith("microsoft.graph."):
        name = name[len("microsoft.graph.") :]
    return GRAPH + name


def _is(sent_type: str | None, expected: str) -> bool:
    return sent_type is not None and sent_type.lower() == expected.lower()


def sent_type_is(obj: Mapping[str, Any], expected: str) -> bool:
    """Whether an object's ``@odata.type``, when it sends one, is ``expected`` (normalised as ``_odata`` does)."""
    return "@odata.type" not in obj or _is(_odata(obj), expected)


def _short_type(odata_type: str) -> str:
    return odata_type.rsplit(".", 1)[-1]


# A settingDefinitionId sent twice in one settings array: the one rule a request schema cannot state (OpenAPI's
# JSON Schema has no "unique by property"). The API answers it with its own documented status, 409.
SENT_TWICE = "is sent more than once; keep one instance"


class _Decoder:
    def __init__(self, catalog: Catalog, profile: Profile | None) -> None:
        self.catalog = catalog
        self.profile = profile
        self.errors: list[SettingValidationError] = []

    def lookup(self, setting_id: str) -> SettingDef | None:
        return self.profile.get(setting_id) if self.profile is not None else self.catalog.get(setting_id)

    def error(self, setting_id: str, message: str) -> None:
        self.errors.append(SettingValidationError(setting_id, message))

    def store(self, into: dict[str, Any], setting: SettingDef, value: Any) -> None:
        if setting.id in into:
            self.error(setting.id, f"“{setting.display_name}” {SENT_TWICE}.")
            return
        into[setting.id] = value

    # -- instances ---------------------------------------------------------------------------------------------

    def instance(self, inst: object, parent_id: str | None, into: dict[str, Any]) -> None:
        if not isinstance(inst, Mapping):
            self.error(parent_id or "", "A setting instance must be a JSON object.")
            return
        setting_id = inst.get("settingDefinitionId")
        if not isinstance(setting_id, str) or not setting_id:
            self.error(parent_id or "", "A setting instance has no settingDefinitionId.")
            return
        setting = self.lookup(setting_id)
        if setting is None:
            scope = f"the {self.profile.name} profile" if self.profile is not None else "the setting catalog"
            self.error(setting_id, f"“{setting_id}” isn't a setting of {scope}.")
            return
        if not self.placed_correctly(setting, parent_id):
            return
        expected_type, prop = _INSTANCE_OF_TYPE[setting.type]
        sent_type = _odata(inst) or next(
            (kind for key, kind in _VALUE_PROPERTY_KIND.items() if key in inst), None
        )
        accepted = [expected_type]
        if setting.is_group and not setting.is_instance_collection:
            accepted.append(GROUP_INSTANCE)
        if not any(_is(sent_type, kind) for kind in accepted):
            got = _short_type(sent_type) if sent_type else "no @odata.type and no value"
            self.error(
                setting_id,
                f"“{setting.display_name}” is a {setting.type.replace('_', ' ')} setting: send a "
                f"{_short_type(expected_type)}, not {got}.",
            )
            return
        if _is(sent_type, GROUP_INSTANCE):
            prop = "groupSettingValue"
        if prop not in inst or inst[prop] is None:
            self.error(setting_id, f"“{setting.display_name}” has no {prop}.")
            return
        handler = getattr(self, "_" + setting.type)
        handler(setting, inst[prop], into)

    def placed_correctly(self, setting: SettingDef, parent_id: str | None) -> bool:
        if setting.parent_id is not None:
            if parent_id == setting.parent_id:
                return True
            parent = self.lookup(setting.parent_id)
            parent_name = parent.display_name if parent else setting.parent_id
            self.error(
                setting.id,
                f"“{setting.display_name}” must be sent inside “{parent_name}” ({setting.parent_id}).",
            )
            return False
        if parent_id is None:
            return True
        parent = self.lookup(parent_id)
        if parent is not None and parent.type == "choice":
            return True  # generic nesting under a choice (e.g. firewall profile settings) is flattened
        self.error(
            setting.id,
            f"“{setting.display_name}” doesn't belong inside {parent_id}; send it at the top level.",
        )
        return False

    # -- values by setting type ----------------------------------------------------------------------------------

    def option(self, setting: SettingDef, choice_value: object) -> Option | None:
        if not isinstance(choice_value, Mapping):
            self.error(setting.id, f"“{setting.display_name}”: a choice value must be a JSON object.")
            return None
        sent_type = _odata(choice_value)
        if sent_type is not None and not _is(sent_type, CHOICE_VALUE):
            self.error(
                setting.id,
                f"“{setting.display_name}”: expected a ChoiceSettingValue, not {_short_type(sent_type)}.",
            )
            return None
        item_id = choice_value.get("value")
        option = setting.option_by_item_id(item_id) if isinstance(item_id, str) else None
        if option is None:
            ids = ", ".join(o.item_id for o in setting.options)
            self.error(
                setting.id, f"{item_id!r} isn't an option of “{setting.display_name}”. Options: {ids}."
            )
        return option

    def _choice(self, setting: SettingDef, choice_value: object, into: dict[str, Any]) -> None:
        option = self.option(setting, choice_value)
        if option is None:
            return
        self.store(into, setting, option.value)
        children = choice_value.get("children") if isinstance(choice_value, Mapping) else None
        if children is None:
            return
        if not isinstance(children, list):
            self.error(setting.id, f"“{setting.display_name}”: children must be a list.")
            return
        for child in children:
            self.instance(child, setting.id, into)

    def _choice_collection(self, setting: SettingDef, items: object, into: dict[str, Any]) -> None:
        if not isinstance(items, list):
            self.error(setting.id, f"“{setting.display_name}”: choiceSettingCollectionValue must be a list.")
            return
        options = [self.option(setting, item) for item in items]
        if all(option is not None for option in options):
            self.store(into, setting, [option.value for option in options if option is not None])

    def simple(self, setting: SettingDef, simple_value: object) -> tuple[bool, object]:
        if not isinstance(simple_value, Mapping):
            self.error(setting.id, f"“{setting.display_name}”: a simple setting value must be a JSON object.")
            return False, None
        sent_type = _odata(simple_value)
        value = simple_value.get("value")
        if setting.type == "integer":
            if sent_type is not None and not _is(sent_type, INTEGER_VALUE):
                self.error(
                    setting.id,
                    f"“{setting.display_name}” is an integer setting: send an IntegerSettingValue, "
                    f"not {_short_type(sent_type)}.",
                )
                return False, None
            if isinstance(value, bool) or not isinstance(value, int):
                self.error(setting.id, f"“{setting.display_name}” needs an integer value, not {value!r}.")
                return False, None
            return True, value
        if sent_type is not None and not (_is(sent_type, STRING_VALUE) or _is(sent_type, SECRET_VALUE)):
            self.error(
                setting.id,
                f"“{setting.display_name}” is a string setting: send a StringSettingValue, not {_short_type(sent_type)}.",
            )
            return False, None
        if not isinstance(value, str):
            self.error(setting.id, f"“{setting.display_name}” needs a string value, not {value!r}.")
            return False, None
        return True, value

    def _integer(self, setting: SettingDef, simple_value: object, into: dict[str, Any]) -> None:
        ok, value = self.simple(setting, simple_value)
        if ok:
            self.store(into, setting, value)

    _string = _integer

    def _string_collection(self, setting: SettingDef, items: object, into: dict[str, Any]) -> None:
        if not isinstance(items, list):
            self.error(setting.id, f"“{setting.display_name}”: simpleSettingCollectionValue must be a list.")
            return
        decoded = [self.simple(setting, item) for item in items]
        if all(ok for ok, _ in decoded):
            self.store(into, setting, [value for _, value in decoded])

    def _group_collection(self, setting: SettingDef, elements: object, into: dict[str, Any]) -> None:
        if isinstance(elements, Mapping):  # groupSettingValue of a GroupSettingInstance
            elements = [elements]
        if not isinstance(elements, list):
            self.error(setting.id, f"“{setting.display_name}”: groupSettingCollectionValue must be a list.")
            return
        rules: list[dict[str, Any]] = []
        for element in elements:
            if not isinstance(element, Mapping) or not isinstance(element.get("children", []), list):
                self.error(
                    setting.id, f"“{setting.display_name}”: each group value must hold a list of children."
                )
                continue
            sent_type = _odata(element)
            if sent_type is not None and not _is(sent_type, GROUP_VALUE):
                self.error(
                    setting.id,
                    f"“{setting.display_name}”: expected a GroupSettingValue, not {_short_type(sent_type)}.",
                )
                continue
            target: dict[str, Any] = {} if setting.is_instance_collection else into
            for child in element.get("children") or []:
                self.instance(child, setting.id, target)
            if setting.is_instance_collection:
                rules.append(target)
        if setting.is_instance_collection:
            self.store(into, setting, rules)


def from_graph_settings(
    catalog: Catalog, profile: Profile | str | None, settings: object
) -> tuple[PolicyValues, list[SettingValidationError]]:
    """Flat values and every problem (each with its settingDefinitionId) of a Graph ``settings`` array.

    ``profile`` (a Profile, its name or slug) limits the accepted ids to that profile; None accepts any catalog
    setting. Elements may be ``{"settingInstance": {...}}`` wrappers or bare instances. Decoded values are then
    validated like form input (``validate_policy_values``); only valid values are returned.
    """
    if isinstance(profile, str):
        profile = catalog.profile(profile)
    decoder = _Decoder(catalog, profile)
    raw: dict[str, Any] = {}
    if not isinstance(settings, Sequence) or isinstance(settings, str | bytes):
        decoder.error("", "settings must be a list of setting objects.")
        return {}, decoder.errors
    for index, element in enumerate(settings):
        if isinstance(element, Mapping) and "settingInstance" in element:
            if not sent_type_is(element, SETTING_TYPE):
                sent = str(element["@odata.type"])[:80]
                decoder.error("", f"Setting #{index}: @odata.type must be {SETTING_TYPE}, not {sent!r}.")
                continue
            if "id" in element and not (isinstance(element["id"], str) and SETTING_ID.search(element["id"])):
                decoder.error(
                    "",
                    f"Setting #{index}: id must be its position, 0 to 999 (as listed), not {element['id']!r:.80}.",
                )
                continue
            instance = element["settingInstance"]
        elif isinstance(element, Mapping) and "settingDefinitionId" in element:
            instance = element
        else:
            decoder.error("", f"Setting #{index} has no settingInstance.")
            continue
        decoder.instance(instance, None, raw)
    if profile is not None:
        clean, errors = validate_values_with(profile.get, f"the {profile.name} profile", raw, catalog)
    else:
        clean, errors = validate_values_with(catalog.get, "the setting catalog", raw, catalog)
    return clean, decoder.errors + errors


# --------------------------------------------------------------------------------------------------------------
# template references (settingInstanceTemplateReference / settingValueTemplateReference)

INSTANCE_REFERENCE = "settingInstanceTemplateReference"
VALUE_REFERENCE = "settingValueTemplateReference"
_SINGLE_VALUES = ("choiceSettingValue", "simpleSettingValue", "groupSettingValue")
_VALUE_LISTS = ("choiceSettingCollectionValue", "simpleSettingCollectionValue", "groupSettingCollectionValue")
References = dict[str, dict[str, Any]]


def _walk_instances(settings: object, visit) -> None:
    """Call ``visit(path, holder, kind)`` for every instance and value of a settings array, where ``path`` names
    the place by settingDefinitionIds and element positions (the same in a request and in what the server
    generates from its values) and ``kind`` is "instance" or "value"."""

    def instance(inst: object, prefix: str) -> None:
        if not isinstance(inst, Mapping) or not isinstance(inst.get("settingDefinitionId"), str):
            return
        path = f"{prefix}/{inst['settingDefinitionId']}"
        visit(path, inst, "instance")
        for prop in _SINGLE_VALUES:
            if isinstance(inst.get(prop), Mapping):
                value(inst[prop], f"{path}@")
        for prop in _VALUE_LISTS:
            if isinstance(inst.get(prop), list):
                for index, item in enumerate(inst[prop]):
                    if isinstance(item, Mapping):
                        value(item, f"{path}@{index}")

    def value(val: Mapping[str, Any], path: str) -> None:
        visit(path, val, "value")
        for child in val.get("children") or []:
            instance(child, path)

    if not isinstance(settings, list):
        return
    for element in settings:
        if isinstance(element, Mapping):
            instance(element.get("settingInstance", element), "")


def _reference_problem(kind: str, ref: object) -> str:
    if not isinstance(ref, Mapping):
        return f"{kind} must be an object or null."
    key = "settingInstanceTemplateId" if kind == INSTANCE_REFERENCE else "settingValueTemplateId"
    allowed = {key, "@odata.type"} | ({"useTemplateDefault"} if kind == VALUE_REFERENCE else set())
    if not isinstance(ref.get(key), str) or not ref[key].strip() or len(ref[key]) > 100:
        return f"{kind} needs {key} (a template id)."
    if "useTemplateDefault" in ref and not isinstance(ref["useTemplateDefault"], bool):
        return f"{kind}.useTemplateDefault must be true or false."
    extra = sorted(set(ref) - allowed)
    if extra:
        return f"Property '{str(extra[0])[:60]}' does not exist on {kind}."
    return ""


def template_references(settings: object) -> tuple[References, list[str]]:
    """The template references a settings array carries, by place, and every malformed one (a message each).

    Graph stores and returns them as sent; this console keeps them beside the flat values (which have no place
    for them) and puts them back on the array it generates (:func:`apply_template_references`).
    """
    found: References = {}
    problems: list[str] = []

    def visit(path: str, holder: Mapping[str, Any], kind: str) -> None:
        prop = INSTANCE_REFERENCE if kind == "instance" else VALUE_REFERENCE
        ref = holder.get(prop)
        if ref is None:
            return
        problem = _reference_problem(prop, ref)
        if problem:
            problems.append(f"{path.strip('/').split('/')[-1].split('@')[0]}: {problem}")
            return
        found.setdefault(path, {})[prop] = {k: v for k, v in ref.items() if k != "@odata.type"}

    _walk_instances(settings, visit)
    return found, problems


def apply_template_references(settings: list[dict[str, Any]], references: References) -> None:
    """Put references back, in place, on the instances and values at the places they were sent for."""
    if not references:
        return

    def visit(path: str, holder: dict[str, Any], kind: str) -> None:
        prop = INSTANCE_REFERENCE if kind == "instance" else VALUE_REFERENCE
        ref = references.get(path, {}).get(prop)
        if ref is not None:
            holder[prop] = dict(ref)

    _walk_instances(settings, visit)
