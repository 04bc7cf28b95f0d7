"""Graph-shaped users, roleDefinitions, roleAssignments and roleScopeTags."""

from __future__ import annotations

import pytest

from console.models import AuditEvent, RoleAssignment
from console.roles import READ_ONLY_OPERATOR

pytestmark = pytest.mark.django_db


def test_it_lists_and_creates_users_in_graph_shape(ga_api):
    created = ga_api.post(
        "/v1.0/users", {"userPrincipalName": "frank", "displayName": "Frank", "mail": "f@contoso.com"}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["userPrincipalName"] == "frank" and body["accountEnabled"] is True
    assert "/invite/" in body["invitationRedeemUrl"]
    listed = ga_api.get("/v1.0/users", **{"$filter": "userPrincipalName eq 'frank'"}).json()
    assert [u["id"] for u in listed["value"]] == [body["id"]]
    assert listed["value"][0]["signInActivity"] == {"lastSignInDateTime": None}
    assert AuditEvent.objects.get(action="user.create").source == "api"


def test_it_refuses_a_bad_user_body_with_the_reason(ga_api):
    response = ga_api.post("/v1.0/users", {"userPrincipalName": 5})
    assert response.status_code == 400
    assert "userPrincipalName must be a string" in response.json()["error"]["message"]


def test_role_definitions_show_intune_resource_actions(ga_api):
    value = ga_api.get("/beta/deviceManagement/roleDefinitions").json()["value"]
    reader = next(r for r in value if r["displayName"] == READ_ONLY_OPERATOR)
    assert reader["isBuiltIn"] is True
    actions = reader["rolePermissions"][0]["resourceActions"][0]["allowedResourceActions"]
    assert "Microsoft.Intune_ManagedDevices_Read" in actions
    assert "Microsoft.Intune_ManagedDevices_Delete" not in actions


def test_it_creates_reads_and_deletes_a_scoped_role_assignment(ga_api, make_group, reader):
    servers = make_group("Servers")
    role = next(
        r
        for r in ga_api.get("/beta/deviceManagement/roleDefinitions").json()["value"]
        if r["displayName"] == READ_ONLY_OPERATOR
    )
    user = ga_api.get("/v1.0/users", **{"$filter": "userPrincipalName eq 'reader'"}).json()["value"][0]
    body = {
        "displayName": "Server readers",
        "members": [user["id"]],
        "resourceScopes": [str(servers.group_id)],
        "roleDefinition@odata.bind": f"https://graph.microsoft.com/beta/deviceManagement/roleDefinitions/{role['id']}",
    }
    created = ga_api.post("/beta/deviceManagement/roleAssignments", body)
    assert created.status_code == 201, created.content
    a = created.json()
    assert a["scopeType"] == "resourceScope" and a["resourceScopes"] == [str(servers.group_id)]
    assert a["members"] == [user["id"]] and a["roleDefinition"]["id"] == role["id"]
    path = f"/beta/deviceManagement/roleAssignments/{a['id']}"
    assert ga_api.get(path).json()["displayName"] == "Server readers"
    assert ga_api.delete(path).status_code == 204
    assert not RoleAssignment.objects.exists()
    assert [e.action for e in AuditEvent.objects.filter(object_type="Role assignment").order_by("at")] == [
        "roleassignment.create",
        "roleassignment.delete",
    ]


def test_role_assignment_with_an_unknown_member_is_a_404_and_creates_nothing(ga_api):
    role = ga_api.get("/beta/deviceManagement/roleDefinitions").json()["value"][0]
    body = {
        "displayName": "x",
        "members": ["00000000-0000-0000-0000-0000000fffff"],
        "roleDefinition@odata.bind": f"/beta/deviceManagement/roleDefinitions/{role['id']}",
    }
    assert ga_api.post("/beta/deviceManagement/roleAssignments", body).status_code == 404
    assert not RoleAssignment.objects.exists()


def test_role_scope_tags_list_the_default_tag(ga_api):
    value = ga_api.get("/beta/deviceManagement/roleScopeTags").json()["value"]
    assert value == [
        {
            "@odata.type": "#microsoft.graph.roleScopeTag",
            "id": "0",
            "displayName": "Default",
            "description": "The scope tag of objects without one",
            "isBuiltIn": True,
        }
    ]


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/v1.0/users"),
        ("post", "/v1.0/users"),
        ("get", "/beta/deviceManagement/roleDefinitions"),
        ("post", "/beta/deviceManagement/roleAssignments"),
    ],
)
def test_only_roles_with_people_permissions_reach_people_endpoints(esm_api, ro_api, method, path):
    for api in (esm_api, ro_api):
        assert getattr(api, method)(path, {} if method == "post" else None).status_code == 403


def test_people_endpoints_are_in_the_openapi_schema(client):
    paths = client.get("/api/schema/").json()["paths"]
    for path in (
        "/v1.0/users",
        "/beta/deviceManagement/roleDefinitions",
        "/beta/deviceManagement/roleAssignments",
        "/beta/deviceManagement/roleAssignments/{assignment_id}",
        "/beta/deviceManagement/roleScopeTags",
    ):
        assert path in paths, path
