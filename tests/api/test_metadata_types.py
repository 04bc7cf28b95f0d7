"""`$metadata` declares the complex types Graph declares for the settings model (issue 14, round two, item 4):
every `@odata.type` the server returns inside a policy's settings and a template's setting templates is a declared
complex type (with its base types) holding every property the JSON has, so OData clients get typed values."""

from __future__ import annotations

from xml.etree import ElementTree

from tests.api.shapes import AV_TEMPLATE, av_body, strings

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
NS = "microsoft.graph."


def _declared(ga_api) -> tuple[dict[str, dict[str, str]], dict[str, ElementTree.Element]]:
    """complex type -> {property: type}, with inherited properties; and the entity types by name."""
    root = ElementTree.fromstring(ga_api.get("/beta/$metadata").content)
    raw = {e.get("Name"): e for e in root.iter(f"{EDM}ComplexType")}
    entities = {e.get("Name"): e for e in root.iter(f"{EDM}EntityType")}

    def props(name: str) -> dict[str, str]:
        element = raw[name]
        base = element.get("BaseType")
        inherited = props(base.removeprefix(NS)) if base else {}
        return {**inherited, **{p.get("Name"): p.get("Type") for p in element.iter(f"{EDM}Property")}}

    return {name: props(name) for name in raw}, entities


def _typed_objects(node: object, found: list[dict]) -> list[dict]:
    if isinstance(node, dict):
        if "@odata.type" in node:
            found.append(node)
        for value in node.values():
            _typed_objects(value, found)
    elif isinstance(node, list):
        for item in node:
            _typed_objects(item, found)
    return found


def _assert_declared(objects: list[dict], complex_types: dict[str, dict[str, str]]) -> set[str]:
    names = set()
    for obj in objects:
        name = obj["@odata.type"].lstrip("#").removeprefix(NS)
        assert name in complex_types, f"{name} is not declared in $metadata"
        missing = {k for k in obj if k != "@odata.type"} - set(complex_types[name])
        assert not missing, f"{name} lacks {missing}"
        names.add(name)
    return names


def test_the_settings_and_assignments_of_a_policy_are_typed_in_metadata(ga_api, make_group):
    complex_types, entities = _declared(ga_api)
    extensions = "device_vendor_msft_policy_config_defender_excludedextensions"
    pilot, others = make_group("Pilot"), make_group("Others")
    targets = [
        {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": str(pilot.group_id)}},
        {"target": {"@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": str(others.group_id)}},
    ]  # fmt: skip
    created = ga_api.post(
        "/beta/deviceManagement/configurationPolicies",
        av_body(settings=[strings(extensions, [".log"])], assignments=targets),
    ).json()
    assignments = ga_api.get(
        f"/beta/deviceManagement/configurationPolicies/{created['id']}/assignments"
    ).json()
    assert {"groupAssignmentTarget", "exclusionGroupAssignmentTarget"} <= _assert_declared(
        _typed_objects(assignments["value"], []), complex_types
    )
    target = next(
        p for p in entities["deviceManagementConfigurationPolicyAssignment"].iter(f"{EDM}Property")
        if p.get("Name") == "target"
    )  # fmt: skip
    assert target.get("Type") == NS + "deviceAndAppManagementAssignmentTarget"
    settings = ga_api.get(f"/beta/deviceManagement/configurationPolicies/{created['id']}/settings").json()
    names = _assert_declared(_typed_objects(settings["value"], []), complex_types)
    assert {"deviceManagementConfigurationSimpleSettingCollectionInstance",
            "deviceManagementConfigurationStringSettingValue"} <= names  # fmt: skip
    setting = entities["deviceManagementConfigurationSetting"]
    instance = next(p for p in setting.iter(f"{EDM}Property") if p.get("Name") == "settingInstance")
    assert instance.get("Type") == NS + "deviceManagementConfigurationSettingInstance"
    policy = entities["deviceManagementConfigurationPolicy"]
    navigation = {p.get("Name"): p.get("Type") for p in policy.iter(f"{EDM}NavigationProperty")}
    assert navigation["settings"] == f"Collection({NS}deviceManagementConfigurationSetting)"


def test_the_setting_templates_and_their_defaults_are_typed_in_metadata(ga_api):
    complex_types, _ = _declared(ga_api)
    url = f"/beta/deviceManagement/configurationPolicyTemplates/{AV_TEMPLATE}/settingTemplates"
    items, params = [], {"$top": "999"}
    while url:
        body = ga_api.get(url, **params).json()
        items += body["value"]
        url, params = body.get("@odata.nextLink", "").replace("http://testserver", ""), {}
    names = _assert_declared(_typed_objects(items, []), complex_types)
    assert {"deviceManagementConfigurationChoiceSettingValueConstantDefaultTemplate",
            "deviceManagementConfigurationIntegerSettingValueConstantDefaultTemplate"} <= names  # fmt: skip
    assert complex_types["deviceManagementConfigurationIntegerSettingValueConstantDefaultTemplate"]["constantValue"] == "Edm.Int32"  # fmt: skip
