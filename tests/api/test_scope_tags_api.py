"""Graph's roleScopeTags (create, read, update, delete) and roleScopeTagIds on configurationPolicies and
roleAssignments, in Graph's shapes."""

from __future__ import annotations

import pytest

from console import rbac, scopetags
from console.models import AuditEvent, RoleAssignment, ScopeTag
from console.tokens import create_token
from policies.models import Policy
from tests.api.conftest import Api
from tests.api.shapes import av_body

pytestmark = pytest.mark.django_db
TAGS = "/beta/deviceManagement/roleScopeTags"
POLICIES = "/beta/deviceManagement/configurationPolicies"


def test_it_creates_reads_renames_and_deletes_a_scope_tag(ga_api):
    created = ga_api.post(TAGS, {"displayName": "Paris", "description": "Paris office"})
    assert created.status_code == 201, created.content
    tag = created.json()
    assert tag == {
        "@odata.type": "#microsoft.graph.roleScopeTag",
        "id": tag["id"],
        "displayName": "Paris",
        "description": "Paris office",
        "isBuiltIn": False,
    }
    assert [t["displayName"] for t in ga_api.get(TAGS).json()["value"]] == ["Default", "Paris"]
    assert ga_api.get(f"{TAGS}/{tag['id']}").json()["displayName"] == "Paris"
    renamed = ga_api.patch(f"{TAGS}/{tag['id']}", {"displayName": "Paris HQ"})
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "Paris HQ"
    assert ga_api.post(TAGS, {"displayName": "paris hq"}).status_code == 409
    assert ga_api.delete(f"{TAGS}/{tag['id']}").status_code == 204
    assert ga_api.get(f"{TAGS}/{tag['id']}").status_code == 404
    assert AuditEvent.objects.filter(action__startswith="scopetag.", source="api").count() == 3


def test_the_default_tag_is_id_0_and_stays_built_in(ga_api):
    assert ga_api.get(f"{TAGS}/0").json()["isBuiltIn"] is True
    assert ga_api.patch(f"{TAGS}/0", {"displayName": "Other"}).status_code == 400
    assert ga_api.delete(f"{TAGS}/0").status_code == 400


def test_a_policy_carries_role_scope_tag_ids_and_hides_from_admins_without_the_tag(
    ga_api, client, django_user_model
):
    paris = scopetags.create_tag(name="Paris")
    created = ga_api.post(POLICIES, av_body(name="AV Paris", roleScopeTagIds=[str(paris.pk)]))
    assert created.status_code == 201, created.content
    assert created.json()["roleScopeTagIds"] == [str(paris.pk)]
    assert ga_api.post(POLICIES, av_body(name="AV nowhere", roleScopeTagIds=["999"])).status_code == 404
    untagged = ga_api.post(POLICIES, av_body(name="AV untagged")).json()
    assert untagged["roleScopeTagIds"] == ["0"]

    role = rbac.create_role(name="Policy readers", actions=["Endpoint security policies: Read"])
    owner = django_user_model.objects.create_user("reader-owner")
    rbac.create_assignment(name="Default readers", role=role, members=[owner], scope_groups=[])
    reader = Api(client, create_token(name="r", owner=owner, role=role.name)[1])
    assert [p["name"] for p in reader.get(POLICIES).json()["value"]] == ["AV untagged"]
    assert reader.get(f"{POLICIES}/{created.json()['id']}").status_code == 404

    patched = ga_api.patch(f"{POLICIES}/{created.json()['id']}", {"roleScopeTagIds": ["0"]})
    assert patched.status_code == 200 and patched.json()["roleScopeTagIds"] == ["0"]
    assert sorted(p["name"] for p in reader.get(POLICIES).json()["value"]) == ["AV Paris", "AV untagged"]
    assert Policy.objects.get(name="AV Paris").scope_tags.count() == 0


def test_a_role_assignment_carries_role_scope_tag_ids(ga_api, reader):
    paris = scopetags.create_tag(name="Paris")
    role = rbac.get_role("Read Only Operator")
    user = ga_api.get("/v1.0/users", **{"$filter": "userPrincipalName eq 'reader'"}).json()["value"][0]
    body = {
        "displayName": "Paris readers",
        "members": [user["id"]],
        "roleScopeTagIds": [str(paris.pk)],
        "roleDefinition@odata.bind": f"https://graph.microsoft.com/beta/deviceManagement/roleDefinitions/{role.definition.role_id}",
    }
    created = ga_api.post("/beta/deviceManagement/roleAssignments", body)
    assert created.status_code == 201, created.content
    assert created.json()["roleScopeTagIds"] == [str(paris.pk)]
    assert list(RoleAssignment.objects.get().scope_tags.values_list("name", flat=True)) == ["Paris"]
    assert AuditEvent.objects.get(action="roleassignment.create").after["scope_tags"] == ["Paris"]
    missing = ga_api.post(
        "/beta/deviceManagement/roleAssignments", {**body, "displayName": "Other", "roleScopeTagIds": ["998"]}
    )
    assert missing.status_code == 404


def test_only_global_administrators_read_and_change_scope_tags(esm_api, ro_api):
    for api in (esm_api, ro_api):
        assert api.get(TAGS).status_code == 403
        assert api.post(TAGS, {"displayName": "Nope"}).status_code == 403
    assert not ScopeTag.objects.filter(name="Nope").exists()
