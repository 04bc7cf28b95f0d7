"""`$metadata`: an OData CSDL (XML) document of the entity types, entity sets and actions this server serves,
generated from the OpenAPI schema at /api/schema/ (the same response and request schemas the views declare), so
the two descriptions cannot disagree.

Rules of the translation:
* an entity type is a response schema whose description starts with its Graph type name
  ("deviceManagementConfigurationPolicy", "managedDevice: …"); its properties come from the schema;
* the settings model is typed with the complex types Graph declares for it (COMPLEX_TYPES: setting instances,
  their values, template references, setting instance and value templates with their defaults, each with its
  base type), and so are assignment targets (TARGET_TYPES), so an OData client reading $metadata gets typed
  settings and assignments; other nested objects are
  ``Edm.Untyped`` (CSDL 4.01) rather than invented complex types;
* an entity set is a collection path with no path parameter (…/configurationPolicies, /groups);
* an action is a POST answering 200 or 204 (assign, syncDevice, the report actions); a POST answering 201 creates
  an entity instead. Its binding parameter is the entity of the parent path (or ``deviceManagementReports``).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from xml.etree import ElementTree as ET

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .common import GraphSchemaGenerator

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"
NAMESPACE = "microsoft.graph"
_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9]*)")
_PRIMITIVE = {
    "string": "Edm.String",
    "integer": "Edm.Int32",
    "boolean": "Edm.Boolean",
    "number": "Edm.Double",
}


_S = "Edm.String"
_DMC = "deviceManagementConfiguration"


def _c(name: str) -> str:
    return f"{NAMESPACE}.{_DMC}{name}"


def _many(name: str) -> str:
    return f"Collection({_c(name)})"


# Graph's complex types of the settings model (beta): name -> (base type, abstract, {property: type}). Names and
# properties as Graph's resource documentation states them (intune-deviceconfigv2-*, intune-shared-*).
COMPLEX_TYPES: dict[str, tuple[str | None, bool, dict[str, str]]] = {
    "SettingInstanceTemplateReference": (None, False, {"settingInstanceTemplateId": _S}),
    "SettingValueTemplateReference": (None, False, {"settingValueTemplateId": _S, "useTemplateDefault": "Edm.Boolean"}),
    "PolicyTemplateReference": (None, False, {"templateId": _S, "templateFamily": _S, "templateDisplayName": _S, "templateDisplayVersion": _S}),
    "SettingInstance": (None, True, {"settingDefinitionId": _S, "settingInstanceTemplateReference": _c("SettingInstanceTemplateReference")}),
    "ChoiceSettingInstance": ("SettingInstance", False, {"choiceSettingValue": _c("ChoiceSettingValue")}),
    "ChoiceSettingCollectionInstance": ("SettingInstance", False, {"choiceSettingCollectionValue": _many("ChoiceSettingValue")}),
    "SimpleSettingInstance": ("SettingInstance", False, {"simpleSettingValue": _c("SimpleSettingValue")}),
    "SimpleSettingCollectionInstance": ("SettingInstance", False, {"simpleSettingCollectionValue": _many("SimpleSettingValue")}),
    "GroupSettingInstance": ("SettingInstance", False, {"groupSettingValue": _c("GroupSettingValue")}),
    "GroupSettingCollectionInstance": ("SettingInstance", False, {"groupSettingCollectionValue": _many("GroupSettingValue")}),
    "SettingValue": (None, True, {"settingValueTemplateReference": _c("SettingValueTemplateReference")}),
    "ChoiceSettingValue": ("SettingValue", False, {"value": _S, "children": _many("SettingInstance")}),
    "GroupSettingValue": ("SettingValue", False, {"children": _many("SettingInstance")}),
    "SimpleSettingValue": ("SettingValue", True, {}),
    "IntegerSettingValue": ("SimpleSettingValue", False, {"value": "Edm.Int32"}),
    "StringSettingValue": ("SimpleSettingValue", False, {"value": _S}),
    "SettingInstanceTemplate": (None, True, {"settingInstanceTemplateId": _S, "settingDefinitionId": _S, "isRequired": "Edm.Boolean"}),
    "ChoiceSettingInstanceTemplate": ("SettingInstanceTemplate", False, {"choiceSettingValueTemplate": _c("ChoiceSettingValueTemplate")}),
    "ChoiceSettingCollectionInstanceTemplate": ("SettingInstanceTemplate", False, {"choiceSettingCollectionValueTemplate": _many("ChoiceSettingValueTemplate")}),
    "SimpleSettingInstanceTemplate": ("SettingInstanceTemplate", False, {"simpleSettingValueTemplate": _c("SimpleSettingValueTemplate")}),
    "SimpleSettingCollectionInstanceTemplate": ("SettingInstanceTemplate", False, {"simpleSettingCollectionValueTemplate": _many("SimpleSettingValueTemplate")}),
    "GroupSettingCollectionInstanceTemplate": ("SettingInstanceTemplate", False, {"groupSettingCollectionValueTemplate": _many("GroupSettingValueTemplate")}),
    "ChoiceSettingValueTemplate": (None, False, {"settingValueTemplateId": _S, "defaultValue": _c("ChoiceSettingValueDefaultTemplate"), "recommendedValueDefinition": _c("ChoiceSettingValueDefinitionTemplate"), "requiredValueDefinition": _c("ChoiceSettingValueDefinitionTemplate")}),
    "ChoiceSettingValueDefinitionTemplate": (None, False, {"allowedOptions": _many("OptionDefinitionTemplate")}),
    "OptionDefinitionTemplate": (None, False, {"itemId": _S, "children": _many("SettingInstanceTemplate")}),
    "ChoiceSettingValueDefaultTemplate": (None, True, {}),
    "ChoiceSettingValueConstantDefaultTemplate": ("ChoiceSettingValueDefaultTemplate", False, {"settingDefinitionOptionId": _S, "children": _many("SettingInstanceTemplate")}),
    "GroupSettingValueTemplate": (None, False, {"settingValueTemplateId": _S, "children": _many("SettingInstanceTemplate")}),
    "SimpleSettingValueTemplate": (None, True, {"settingValueTemplateId": _S}),
    "IntegerSettingValueTemplate": ("SimpleSettingValueTemplate", False, {"defaultValue": _c("IntegerSettingValueDefaultTemplate"), "recommendedValueDefinition": _c("IntegerSettingValueDefinitionTemplate"), "requiredValueDefinition": _c("IntegerSettingValueDefinitionTemplate")}),
    "IntegerSettingValueDefinitionTemplate": (None, False, {"minValue": "Edm.Int32", "maxValue": "Edm.Int32"}),
    "IntegerSettingValueDefaultTemplate": (None, True, {}),
    "IntegerSettingValueConstantDefaultTemplate": ("IntegerSettingValueDefaultTemplate", False, {"constantValue": "Edm.Int32"}),
    "StringSettingValueTemplate": ("SimpleSettingValueTemplate", False, {"defaultValue": _c("StringSettingValueDefaultTemplate")}),
    "StringSettingValueDefaultTemplate": (None, True, {}),
    "StringSettingValueConstantDefaultTemplate": ("StringSettingValueDefaultTemplate", False, {"constantValue": _S}),
}  # fmt: skip
# Graph's assignment targets this server serves (a policy's assignments), with their base type.
TARGET_TYPES: dict[str, tuple[str | None, bool, dict[str, str]]] = {
    "deviceAndAppManagementAssignmentTarget": (None, True, {"deviceAndAppManagementAssignmentFilterId": _S, "deviceAndAppManagementAssignmentFilterType": _S}),
    "groupAssignmentTarget": ("deviceAndAppManagementAssignmentTarget", False, {"groupId": _S}),
    "exclusionGroupAssignmentTarget": ("groupAssignmentTarget", False, {}),
}  # fmt: skip
# Entity properties that hold one of them (what the views' schemas describe as nested objects).
TYPED_PROPERTIES = {
    "settingInstance": _c("SettingInstance"),
    "settingInstanceTemplate": _c("SettingInstanceTemplate"),
    "templateReference": _c("PolicyTemplateReference"),
    "target": f"{NAMESPACE}.deviceAndAppManagementAssignmentTarget",
}

# Entity properties that are Graph navigation properties to another entity type of this document.
NAVIGATION = {
    "settings": "deviceManagementConfigurationSetting",
    "assignments": "deviceManagementConfigurationPolicyAssignment",
    "settingDefinitions": "deviceManagementConfigurationSettingDefinition",
}


def _type_name(schema: dict[str, Any]) -> str | None:
    """The Graph type a schema describes, from the first word of its description."""
    description = schema.get("description") or ""
    match = _NAME.match(description)
    if not match or not match.group(1)[0].islower():
        return None
    return match.group(1)


def _edm(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "array":
        return f"Collection({_edm(schema.get('items') or {})})"
    if kind == "string" and schema.get("format") == "date-time":
        return "Edm.DateTimeOffset"
    return _PRIMITIVE.get(kind, "Edm.Untyped")


def _success(operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for code in ("200", "201", "204"):
        response = operation.get("responses", {}).get(code)
        if response is not None:
            content = response.get("content") or {}
            schema = next(iter(content.values()), {}).get("schema", {}) if content else {}
            return code, schema
    return "", {}


def _entity(schema: dict[str, Any]) -> tuple[str | None, bool]:
    """(entity type name, is a collection) of a response schema."""
    if "value" in schema.get("properties", {}) and schema["properties"]["value"].get("type") == "array":
        return _type_name(schema["properties"]["value"].get("items") or {}), True
    return _type_name(schema), False


class _Model:
    def __init__(self) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self.sets: dict[str, str] = {}
        self.actions: dict[tuple[str, str], dict[str, Any]] = {}
        self.entity_of_path: dict[str, str] = {}

    def add_type(self, name: str, schema: dict[str, Any]) -> None:
        properties = self.types.setdefault(name, {})
        for prop, sub in (schema.get("properties") or {}).items():
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prop):
                properties.setdefault(prop, sub)


def _model(schema: dict[str, Any], version: str) -> _Model:
    model = _Model()
    prefix = f"/{version}/"
    paths = {p: item for p, item in schema.get("paths", {}).items() if p.startswith(prefix)}
    for path, item in paths.items():
        for method in ("get", "post", "patch"):
            operation = item.get(method)
            if not operation:
                continue
            code, body = _success(operation)
            name, many = _entity(body)
            if name and code in ("200", "201"):
                target = body["properties"]["value"]["items"] if many else body
                model.add_type(name, target)
                if method == "get":
                    model.entity_of_path[path] = name
                    if many and "{" not in path:
                        model.sets[path.rstrip("/").rsplit("/", 1)[-1]] = name
    for path, item in paths.items():
        operation = item.get("post")
        if not operation or _success(operation)[0] not in ("200", "204") or path.endswith("$ref"):
            continue
        parent, _, action = path.rpartition("/")
        bound = model.entity_of_path.get(parent) or (
            "deviceManagementReports" if parent.endswith("/reports") else None
        )
        if bound is None:
            continue
        model.types.setdefault(bound, {})
        request = (operation.get("requestBody") or {}).get("content", {})
        parameters = (
            next(iter(request.values()), {}).get("schema", {}).get("properties", {}) if request else {}
        )
        code, returned = _success(operation)
        model.actions[(action, bound)] = {"parameters": parameters, "code": code, "returns": returned}
    return model


def _element(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{EDM}}}{tag}", {k: v for k, v in attrs.items() if v is not None})


def _return_type(spec: dict[str, Any]) -> str | None:
    if spec["code"] == "204":
        return None
    name, many = _entity(spec["returns"])
    if name:
        return f"Collection({NAMESPACE}.{name})" if many else f"{NAMESPACE}.{name}"
    if "TotalRowCount" in (spec["returns"].get("properties") or {}):
        return "Edm.Stream"  # Graph's report actions return a stream of the JSON table
    return "Edm.Untyped"


def csdl(schema: dict[str, Any], version: str) -> bytes:
    """The CSDL document of one API version (beta or v1.0) of an OpenAPI schema."""
    ET.register_namespace("edmx", EDMX)
    ET.register_namespace("", EDM)
    model = _model(schema, version)
    root = ET.Element(f"{{{EDMX}}}Edmx", {"Version": "4.0"})
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    edm_schema = _element(services, "Schema", Namespace=NAMESPACE, Alias="graph")
    for name in sorted(model.types):
        entity = _element(edm_schema, "EntityType", Name=name)
        key = _element(entity, "Key")
        _element(key, "PropertyRef", Name="id")
        properties = {"id": {"type": "string"}, **model.types[name]}
        for prop, sub in properties.items():
            edm_type = _edm(sub)
            target = NAVIGATION.get(prop)
            if target in model.types and edm_type == "Collection(Edm.Untyped)":
                _element(
                    entity,
                    "NavigationProperty",
                    Name=prop,
                    Type=f"Collection({NAMESPACE}.{target})",
                    ContainsTarget="true",
                )
                continue
            if edm_type == "Edm.Untyped" and prop in TYPED_PROPERTIES:
                edm_type = TYPED_PROPERTIES[prop]
            _element(
                entity,
                "Property",
                Name=prop,
                Type=edm_type,
                Nullable="false" if prop == "id" else ("true" if sub.get("nullable") else None),
            )
    declared = {
        _DMC + name: (_DMC + base if base else None, *rest) for name, (base, *rest) in COMPLEX_TYPES.items()
    }
    for name, (base, abstract, props) in sorted({**declared, **TARGET_TYPES}.items()):
        complex_type = _element(
            edm_schema,
            "ComplexType",
            Name=name,
            BaseType=f"{NAMESPACE}.{base}" if base else None,
            Abstract="true" if abstract else None,
        )
        for prop, edm_type in props.items():
            _element(complex_type, "Property", Name=prop, Type=edm_type)
    for (action, bound), spec in sorted(model.actions.items()):
        node = _element(edm_schema, "Action", Name=action, IsBound="true")
        _element(node, "Parameter", Name="bindingParameter", Type=f"{NAMESPACE}.{bound}", Nullable="false")
        for prop, sub in spec["parameters"].items():
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prop):
                _element(node, "Parameter", Name=prop, Type=_edm(sub))
        returns = _return_type(spec)
        if returns:
            _element(node, "ReturnType", Type=returns)
    container = _element(edm_schema, "EntityContainer", Name="GraphService")
    for name, entity in sorted(model.sets.items()):
        _element(container, "EntitySet", Name=name, EntityType=f"{NAMESPACE}.{entity}")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False
    )


@cache
def _document(version: str) -> bytes:
    return csdl(GraphSchemaGenerator().get_schema(request=None, public=True), version)


@csrf_exempt
def metadata(request, version: str) -> HttpResponse:
    """GET /{version}/$metadata: public, like Graph's."""
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(status=405)
        response["Allow"] = "GET, HEAD"
        return response
    return HttpResponse(_document(version), content_type="application/xml; charset=utf-8")


metadata.login_required = False
