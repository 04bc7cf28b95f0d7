"""deviceManagement/configurationPolicies: list, get, create, PATCH/PUT, delete, settings, assign, assignments."""

from __future__ import annotations

import pytest

from console.models import AuditEvent
from policies.models import Policy, PolicyVersion
from tests.api.shapes import (
    AV_TEMPLATE,
    CPU_LOAD,
    GRAPH,
    REALTIME,
    assert_graph_error,
    av_body,
    choice,
    exclusions_body,
    integer,
)

BASE = "/beta/deviceManagement/configurationPolicies"
SAMPLE_SHARING = "device_vendor_msft_windowsadvancedthreatprotection_configuration_samplesharing"


def _instance(setting: dict) -> dict:
    return setting["settingInstance"]


def test_it_creates_a_policy_from_the_sdks_body_with_201(ga_api, global_admin):
    response = ga_api.post(BASE, av_body())
    assert response.status_code == 201, response.content
    data = response.json()
    policy = Policy.objects.get(policy_id=data["id"])
    assert response["Location"].endswith(f"{BASE}/{data['id']}")
    assert data["name"] == policy.name == "AV - created by the API"
    assert data["platforms"] == "windows10"
    assert data["technologies"] == "mdm,microsoftSense"
    assert data["templateReference"]["templateId"] == AV_TEMPLATE
    assert data["templateReference"]["templateFamily"] == "endpointSecurityAntivirus"
    assert data["templateReference"]["templateDisplayName"] == "Microsoft Defender Antivirus"
    assert data["isAssigned"] is False
    assert data["settingCount"] == 2 == len(data["settings"])
    assert [s["id"] for s in data["settings"]] == ["0", "1"]
    assert policy.values == {REALTIME: 1, CPU_LOAD: 40}
    # The same services as the wizard: a version and an audit record attributed to the token's owner (source API).
    assert PolicyVersion.objects.filter(policy=policy, number=1).exists()
    event = AuditEvent.objects.get(action="policy.create")
    assert event.actor == global_admin and event.source == "api"
    assert "API token" in event.actor_name


def test_it_accepts_what_powershell_scripts_add(ga_api):
    body = av_body()
    body["@odata.type"] = GRAPH + "deviceManagementConfigurationPolicy"
    body["roleScopeTagIds"] = ["0"]
    for index, setting in enumerate(body["settings"]):
        setting["@odata.type"] = GRAPH + "deviceManagementConfigurationSetting"
        setting["id"] = str(index)
        setting["settingInstance"]["settingInstanceTemplateReference"] = {"settingInstanceTemplateId": "x"}
    body["settings"][0]["settingInstance"]["choiceSettingValue"]["settingValueTemplateReference"] = {
        "settingValueTemplateId": "y",
        "useTemplateDefault": False,
    }
    assert ga_api.post(BASE, body).status_code == 201


def test_settings_of_another_profile_are_refused_with_the_setting_named(ga_api):
    # Sample sharing is a setting of the Endpoint detection and response profile.
    body = av_body(settings=[choice(SAMPLE_SHARING, "1")])
    assert_graph_error(ga_api.post(BASE, body), 400, "BadRequest", SAMPLE_SHARING)
    assert not Policy.objects.exists()


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"name": ""}, "Enter a name"),
        ({"platforms": "iOS"}, "platforms"),
        ({"technologies": "mdm"}, "technologies"),
        ({"templateReference": {"templateId": "nope_1"}}, "isn't one of the endpoint security templates"),
        ({"settings": [integer(CPU_LOAD, 1000)]}, CPU_LOAD),
        ({"settings": "all"}, "list"),
        ({"roleScopeTagIds": ["0", "0"]}, "lists a scope tag twice"),
        ({"roleScopeTagIds": []}, "at least one scope tag"),
        ({"roleScopeTagIds": ["Default"]}, "scope tag ids"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_policies_are_refused_with_the_graph_envelope(ga_api, change, text):
    assert_graph_error(ga_api.post(BASE, av_body() | change), 400, text=text)
    assert not Policy.objects.exists()


def test_a_body_that_is_not_a_json_object_is_400(ga_api):
    assert_graph_error(ga_api.post(BASE, "[1, 2]"), 400, text="JSON object")
    assert_graph_error(ga_api.post(BASE, "{not json"), 400, text="JSON")


def test_get_expands_settings_and_assignments(ga_api, make_group):
    group = make_group("Workstations")
    body = av_body(
        assignments=[
            {"target": {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}}
        ]
    )
    policy_id = ga_api.post(BASE, body).json()["id"]
    plain = ga_api.get(f"{BASE}/{policy_id}").json()
    assert "settings" not in plain and "assignments" not in plain
    assert plain["isAssigned"] is True
    full = ga_api.get(f"{BASE}/{policy_id}", **{"$expand": "settings,assignments"}).json()
    assert (
        _instance(full["settings"][0])["@odata.type"]
        == GRAPH + "deviceManagementConfigurationChoiceSettingInstance"
    )
    assert full["assignments"] == [
        {
            "id": f"{policy_id}_{group.group_id}",
            "source": "direct",
            "sourceId": policy_id,
            "target": {
                "@odata.type": GRAPH + "groupAssignmentTarget",
                "groupId": str(group.group_id),
                "deviceAndAppManagementAssignmentFilterId": None,
                "deviceAndAppManagementAssignmentFilterType": "none",
            },
        }
    ]
    selected = ga_api.get(f"{BASE}/{policy_id}", **{"$select": "name"}).json()
    assert set(selected) == {"id", "name"}


def test_list_filters_on_the_properties_scripts_use(ga_api, make_group):
    ga_api.post(BASE, av_body("Alpha"))
    ga_api.post(BASE, exclusions_body("Beta"))
    group = make_group()
    gamma = av_body(
        "Gamma",
        assignments=[
            {"target": {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}}
        ],
    )
    ga_api.post(BASE, gamma)

    def names(flt: str, **more) -> list[str]:
        response = ga_api.get(BASE, **{"$filter": flt, **more})
        assert response.status_code == 200, response.content
        return [p["name"] for p in response.json()["value"]]

    assert names("name eq 'Alpha'") == ["Alpha"]
    assert names("startswith(name,'G') or name eq 'Beta'") == ["Beta", "Gamma"]
    assert names("platforms eq 'windows10'") == ["Alpha", "Beta", "Gamma"]
    assert names("platforms eq 'macOS'") == []
    assert names("technologies has 'microsoftSense'") == ["Alpha", "Beta", "Gamma"]
    assert names("templateReference/templateFamily eq 'endpointSecurityAntivirus'") == [
        "Alpha",
        "Beta",
        "Gamma",
    ]
    assert names(f"templateReference/templateId eq '{AV_TEMPLATE}'") == ["Alpha", "Gamma"]
    assert names("isAssigned eq true") == ["Gamma"]
    assert names("isAssigned eq false", **{"$orderby": "name desc"}) == ["Beta", "Alpha"]


@pytest.mark.parametrize(
    "query",
    [
        {"$filter": "nope eq 1"},
        {"$filter": "createdDateTime gt 'yesterday'"},
        {"$filter": "id eq 5"},
        {"$filter": "isAssigned eq 'yes'"},
        {"$orderby": "settingCount"},
        {"$expand": "secrets"},
        {"$select": "password"},
        {"$top": "-1"},
    ],
)
def test_bad_odata_options_are_400_not_500(ga_api, query):
    assert_graph_error(ga_api.get(BASE, **query), 400, "BadRequest")


def test_paging_follows_absolute_next_links(ga_api):
    for n in range(5):
        ga_api.post(BASE, av_body(f"Policy {n}"))
    seen, url = [], f"{BASE}?$top=2&$select=name"
    while url:
        page = ga_api.client.get(url, headers=ga_api.headers).json()
        seen += [p["name"] for p in page["value"]]
        url = page.get("@odata.nextLink")
        assert url is None or url.startswith("http://testserver/beta/")
    assert seen == [f"Policy {n}" for n in range(5)]
    counted = ga_api.get(BASE, **{"$count": "true", "$top": "1"}).json()
    assert counted["@odata.count"] == 5 and len(counted["value"]) == 1


def test_patch_changes_basics_and_settings_through_the_services(ga_api):
    policy_id = ga_api.post(BASE, av_body()).json()["id"]
    response = ga_api.patch(
        f"{BASE}/{policy_id}", {"description": "changed", "settings": [choice(REALTIME, "0")]}
    )
    assert response.status_code == 200, response.content
    policy = Policy.objects.get(policy_id=policy_id)
    assert policy.description == "changed" and policy.name == "AV - created by the API"
    assert policy.values == {REALTIME: 0}
    assert policy.version == 3  # one version for the basics, one for the settings, as in the wizard
    assert response.json()["settingCount"] == 1


def test_put_replaces_the_policy_as_the_portal_does(ga_api):
    policy_id = ga_api.post(BASE, av_body()).json()["id"]
    body = av_body("Renamed", settings=[integer(CPU_LOAD, 25)])
    body.pop("description")
    assert ga_api.put(f"{BASE}/{policy_id}", body).status_code == 200
    policy = Policy.objects.get(policy_id=policy_id)
    assert (policy.name, policy.description, policy.values) == ("Renamed", "", {CPU_LOAD: 25})


@pytest.mark.parametrize(
    ("change", "status"),
    [
        # Another profile's template, platform or setting conflicts with the policy's template: 409.
        ({"templateReference": {"templateId": "45fea5e9-280d-4da1-9792-fb5736da0ca9_1"}}, 409),
        ({"platforms": "linux"}, 409),
        ({"settings": [choice(SAMPLE_SHARING, "1")]}, 409),
        ({"settings": [choice("device_vendor_msft_policy_config_defender_nope", "1")]}, 400),
        ({"name": ""}, 400),
    ],
)
def test_a_bad_update_changes_nothing(ga_api, change, status):
    policy_id = ga_api.post(BASE, av_body()).json()["id"]
    before = Policy.objects.values().get(policy_id=policy_id)
    assert_graph_error(ga_api.patch(f"{BASE}/{policy_id}", {"description": "x", **change}), status)
    assert Policy.objects.values().get(policy_id=policy_id) == before


def test_delete_is_204_then_404(ga_api):
    policy_id = ga_api.post(BASE, av_body()).json()["id"]
    assert ga_api.delete(f"{BASE}/{policy_id}").status_code == 204
    assert not Policy.objects.exists()
    assert AuditEvent.objects.filter(action="policy.delete", source="api").exists()
    assert_graph_error(ga_api.delete(f"{BASE}/{policy_id}"), 404, "ResourceNotFound")
    assert_graph_error(ga_api.get(f"{BASE}/not-a-guid"), 404, "ResourceNotFound")


def test_settings_are_served_with_ids_and_post_adds_one(ga_api):
    policy_id = ga_api.post(BASE, av_body(settings=[choice(REALTIME, "1")])).json()["id"]
    listed = ga_api.get(f"{BASE}/{policy_id}/settings").json()["value"]
    assert [(s["id"], _instance(s)["settingDefinitionId"]) for s in listed] == [("0", REALTIME)]
    added = ga_api.post(
        f"{BASE}/{policy_id}/settings",
        {"@odata.type": GRAPH + "deviceManagementConfigurationSetting", **integer(CPU_LOAD, 30)},
    )
    assert added.status_code == 201, added.content
    assert _instance(added.json())["simpleSettingValue"]["value"] == 30
    assert Policy.objects.get(policy_id=policy_id).values == {REALTIME: 1, CPU_LOAD: 30}
    one = ga_api.get(f"{BASE}/{policy_id}/settings/{added.json()['id']}").json()
    assert _instance(one)["settingDefinitionId"] == CPU_LOAD
    assert_graph_error(ga_api.get(f"{BASE}/{policy_id}/settings/99"), 404)
    assert_graph_error(ga_api.post(f"{BASE}/{policy_id}/settings", {"settingInstance": "x"}), 400)


def test_a_setting_whose_odata_type_is_not_a_setting_is_refused(ga_api):
    # Seen with random schemathesis seeds: POST …/settings with "@odata.type": "__not_in_enum__" answered 201.
    policy_id = ga_api.post(BASE, av_body(settings=[choice(REALTIME, "1")])).json()["id"]
    wrong = {**integer(CPU_LOAD, 30), "@odata.type": "__not_in_enum__"}
    assert_graph_error(ga_api.post(f"{BASE}/{policy_id}/settings", wrong), 400, text="@odata.type")
    assert_graph_error(ga_api.post(BASE, av_body(settings=[wrong])), 400, text="@odata.type")
    assert Policy.objects.get(policy_id=policy_id).values == {REALTIME: 1}
    assert Policy.objects.count() == 1


@pytest.mark.parametrize("setting_id", ["71*", "1000", "", 5])
def test_a_setting_whose_id_is_not_a_position_is_refused(ga_api, setting_id):
    # Seen with random schemathesis seeds: POST …/settings with "id": "71*" (the schema's pattern: 0 to 999)
    # answered 201.
    policy_id = ga_api.post(BASE, av_body(settings=[choice(REALTIME, "1")])).json()["id"]
    wrong = {**integer(CPU_LOAD, 30), "id": setting_id}
    assert_graph_error(
        ga_api.post(f"{BASE}/{policy_id}/settings", wrong), 400, text="id must be its position"
    )
    assert Policy.objects.get(policy_id=policy_id).values == {REALTIME: 1}
    assert ga_api.post(f"{BASE}/{policy_id}/settings", {**wrong, "id": "71"}).status_code == 201


@pytest.mark.parametrize("sent", ["", "   ", None, 5])
def test_a_setting_value_whose_odata_type_is_blank_or_no_text_is_refused(ga_api, sent):
    # Seen with random schemathesis seeds: a choiceSettingValue with "@odata.type": "" (the schema's enum names
    # the one type) answered 201: a blank type counted as none sent.
    policy_id = ga_api.post(BASE, av_body(settings=[choice(REALTIME, "1")])).json()["id"]
    wrong = integer(CPU_LOAD, 30)
    wrong["settingInstance"]["simpleSettingValue"]["@odata.type"] = sent
    assert_graph_error(ga_api.post(f"{BASE}/{policy_id}/settings", wrong), 400, text="IntegerSettingValue")
    blank_choice = choice(REALTIME, "0")
    blank_choice["settingInstance"]["choiceSettingValue"]["@odata.type"] = sent
    assert_graph_error(ga_api.post(BASE, av_body(settings=[blank_choice])), 400, text="ChoiceSettingValue")
    assert Policy.objects.get(policy_id=policy_id).values == {REALTIME: 1}


def test_a_policy_whose_odata_type_is_not_a_policy_is_refused(ga_api):
    # Seen with random schemathesis seeds: POST configurationPolicies with another @odata.type answered 201.
    body = av_body(**{"@odata.type": "#microsoft.graph.deviceManagementConfigurationSetting"})
    assert_graph_error(ga_api.post(BASE, body), 400, text="@odata.type")
    assert not Policy.objects.exists()
    typed = av_body(**{"@odata.type": GRAPH + "deviceManagementConfigurationPolicy"})
    assert ga_api.post(BASE, typed).status_code == 201


@pytest.mark.parametrize("shown", ["", "   ", 7, ["x"], "Antivirus\u202e"])
def test_a_template_display_name_or_version_that_is_not_plain_text_is_refused(ga_api, shown):
    # Seen with a schemathesis seed: a templateDisplayVersion outside the schema's anyOf answered 201.
    for key in ("templateDisplayName", "templateDisplayVersion"):
        reference = {"templateFamily": "endpointSecurityAntivirus", "templateId": AV_TEMPLATE, key: shown}
        assert_graph_error(ga_api.post(BASE, av_body(templateReference=reference)), 400, text=key)
    assert not Policy.objects.exists()
    reference = {
        "templateFamily": "endpointSecurityAntivirus",
        "templateId": AV_TEMPLATE,
        "templateDisplayName": "Microsoft Defender Antivirus",
        "templateDisplayVersion": "Version 1",
    }
    assert ga_api.post(BASE, av_body(templateReference=reference)).status_code == 201


def test_assign_replaces_the_whole_set_and_assignments_lists_it(ga_api, make_group):
    include, exclude, other = make_group("Include"), make_group("Exclude"), make_group("Other")
    policy_id = ga_api.post(BASE, av_body()).json()["id"]

    def assign(*targets):
        body = {
            "assignments": [
                {"target": {"@odata.type": GRAPH + kind, "groupId": str(g.group_id)}} for kind, g in targets
            ]
        }
        return ga_api.post(f"{BASE}/{policy_id}/assign", body)

    first = assign(("groupAssignmentTarget", include), ("exclusionGroupAssignmentTarget", exclude))
    assert first.status_code == 200, first.content
    kinds = [(a["target"]["@odata.type"], a["target"]["groupId"]) for a in first.json()["value"]]
    assert kinds == [
        (GRAPH + "groupAssignmentTarget", str(include.group_id)),
        (GRAPH + "exclusionGroupAssignmentTarget", str(exclude.group_id)),
    ]
    assert assign(("groupAssignmentTarget", other)).status_code == 200
    listed = ga_api.get(f"{BASE}/{policy_id}/assignments").json()["value"]
    assert [a["target"]["groupId"] for a in listed] == [str(other.group_id)]
    one = ga_api.get(f"{BASE}/{policy_id}/assignments/{listed[0]['id']}")
    assert one.json()["target"]["groupId"] == str(other.group_id)
    assert ga_api.post(f"{BASE}/{policy_id}/assign", {"assignments": []}).json() == {"value": []}
    assert ga_api.get(f"{BASE}/{policy_id}").json()["isAssigned"] is False
    assert AuditEvent.objects.filter(action="policy.assign", source="api").count() == 3


def test_assigning_a_user_group_is_refused_with_the_seeds_reason(ga_api, make_group):
    users = make_group("Helpdesk users", kind="user")
    policy_id = ga_api.post(BASE, av_body()).json()["id"]
    body = {
        "assignments": [
            {"target": {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(users.group_id)}}
        ]
    }
    assert_graph_error(
        ga_api.post(f"{BASE}/{policy_id}/assign", body),
        400,
        text="Only Device Objects are applicable for Microsoft Defender for Endpoint management",
    )
    assert not Policy.objects.get(policy_id=policy_id).assignments.exists()


@pytest.mark.parametrize(
    "target",
    [
        {"@odata.type": GRAPH + "allDevicesAssignmentTarget"},
        {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": "not-a-guid"},
        {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": "11111111-1111-1111-1111-111111111111"},
        {
            "@odata.type": GRAPH + "groupAssignmentTarget",
            "groupId": "x",
            "deviceAndAppManagementAssignmentFilterType": "maybe",
        },
    ],
)
def test_bad_assignment_targets_are_400(ga_api, target):
    policy_id = ga_api.post(BASE, av_body()).json()["id"]
    missing_group = target.get("groupId") == "11111111-1111-1111-1111-111111111111"
    assert_graph_error(
        ga_api.post(f"{BASE}/{policy_id}/assign", {"assignments": [{"target": target}]}),
        404 if missing_group else 400,  # a group that doesn't exist is a missing object, not a malformed body
    )
    assert_graph_error(ga_api.post(f"{BASE}/{policy_id}/assign", {"nothing": 1}), 400)


def test_assignment_filters_round_trip_on_included_groups(ga_api, make_group):
    from policies.models import AssignmentFilter

    group = make_group("Windows 11")
    flt = AssignmentFilter.objects.create(name="Win11", rule='(device.osVersion -startsWith "10.0.22")')
    policy_id = ga_api.post(BASE, av_body()).json()["id"]
    target = {
        "@odata.type": GRAPH + "groupAssignmentTarget",
        "groupId": str(group.group_id),
        "deviceAndAppManagementAssignmentFilterId": str(flt.filter_id),
        "deviceAndAppManagementAssignmentFilterType": "include",
    }
    response = ga_api.post(f"{BASE}/{policy_id}/assign", {"assignments": [{"target": target}]})
    assert response.status_code == 200, response.content
    assert response.json()["value"][0]["target"] == target
    assignment = Policy.objects.get(policy_id=policy_id).assignments.get()
    assert (assignment.filter, assignment.filter_mode) == (flt, "include")
