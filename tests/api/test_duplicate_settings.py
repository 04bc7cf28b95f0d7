"""A settingDefinitionId sent twice in one settings array (issue 14, round two, item 3): the server keeps refusing
it, and since OpenAPI 3.0's JSON Schema cannot state "unique by property", the refusal is a response the schema
states for the operation (409 Conflict, described), so schemathesis needs no filter for it."""

from __future__ import annotations

import json

from policies.models import Policy
from tests.api.shapes import CPU_LOAD, REALTIME, assert_graph_error, av_body, choice, integer

POLICIES = "/beta/deviceManagement/configurationPolicies"
PATH = "/beta/deviceManagement/configurationPolicies"
WSE_SETTING = "device_vendor_msft_policy_config_windowsdefendersecuritycenter_disableenhancednotifications"


def test_a_setting_sent_twice_is_a_409_on_create_and_nothing_is_saved(ga_api):
    body = av_body(settings=[choice(REALTIME, "1"), choice(REALTIME, "0")])
    assert_graph_error(ga_api.post(POLICIES, body), 409, "Conflict", text="more than once")
    assert not Policy.objects.exists()


def test_a_setting_sent_twice_with_another_mistake_is_a_400(ga_api):
    body = av_body(settings=[choice(REALTIME, "1"), choice(REALTIME, "0"), integer(CPU_LOAD, 1000)])
    assert_graph_error(ga_api.post(POLICIES, body), 400)


def test_a_setting_sent_twice_is_a_409_on_patch_and_put_and_the_policy_is_unchanged(ga_api):
    created = ga_api.post(POLICIES, av_body()).json()
    twice = [integer(CPU_LOAD, 20), integer(CPU_LOAD, 30)]
    assert_graph_error(
        ga_api.patch(f"{POLICIES}/{created['id']}", {"settings": twice}), 409, text="more than once"
    )
    put = {"name": "AV", "settings": twice}
    assert_graph_error(ga_api.put(f"{POLICIES}/{created['id']}", put), 409, text="more than once")
    assert Policy.objects.get(policy_id=created["id"]).values[CPU_LOAD] == 40


def test_the_schema_states_the_409_for_a_setting_sent_twice(client, db):
    paths = json.loads(client.get("/api/schema/").content)["paths"]
    for method, path in (("post", PATH), ("patch", PATH + "/{policy_id}"), ("put", PATH + "/{policy_id}"),
                         ("post", PATH + "/{policy_id}/settings")):  # fmt: skip
        conflict = paths[path][method]["responses"]["409"]
        assert "more than once" in conflict["description"], (method, path)


def test_a_setting_sent_twice_beside_another_profiles_setting_is_still_a_409(ga_api):
    from policies.catalog import get_catalog

    created = ga_api.post(POLICIES, av_body()).json()
    other = get_catalog().setting(WSE_SETTING)
    foreign = choice(WSE_SETTING, str(other.options[0].value))
    body = {"settings": [integer(CPU_LOAD, 20), integer(CPU_LOAD, 30), foreign]}
    assert_graph_error(ga_api.patch(f"{POLICIES}/{created['id']}", body), 409)
