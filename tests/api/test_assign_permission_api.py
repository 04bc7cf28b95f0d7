"""Intune's Assign permission is its own: Update changes a policy's settings, Assign changes whom it targets."""

from __future__ import annotations

import pytest

from console import rbac
from console.tokens import create_token
from policies import services
from policies.models import PolicyAssignment
from tests.api.conftest import Api
from tests.api.shapes import GRAPH, av_body

pytestmark = pytest.mark.django_db
BASE = "/beta/deviceManagement/configurationPolicies"
AV = "Microsoft Defender Antivirus"


def _api_for(client, django_user_model, name: str, actions: list[str]) -> Api:
    role = rbac.create_role(name=name, actions=actions)
    owner = django_user_model.objects.create_user(f"{name.replace(' ', '-').lower()}-owner")
    rbac.create_assignment(name=f"{name} holders", role=role, members=[owner], scope_groups=[])
    return Api(client, create_token(name=name, owner=owner, role=role.name)[1])


def _target(group) -> dict:
    return {"target": {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}}


@pytest.fixture
def policy():
    return services.create_policy(AV, "windows", "AV assign check", "", {})


def test_a_role_with_update_but_not_assign_edits_settings_but_not_assignments(
    client, django_user_model, make_group, policy
):
    api = _api_for(
        client,
        django_user_model,
        "Policy editors",
        ["Endpoint security policies: Read", "Endpoint security policies: Update"],
    )
    group = make_group("Servers")
    renamed = api.patch(f"{BASE}/{policy.policy_id}", {"name": "AV renamed by editor"})
    assert renamed.status_code == 200, renamed.content

    refused = api.post(f"{BASE}/{policy.policy_id}/assign", {"assignments": [_target(group)]})
    assert refused.status_code == 403
    patched = api.patch(f"{BASE}/{policy.policy_id}", {"assignments": [_target(group)]})
    assert patched.status_code == 403
    assert "Assign permission" in patched.json()["error"]["message"]
    assert not PolicyAssignment.objects.filter(policy=policy).exists()


def test_a_role_with_assign_but_not_update_assigns_but_cannot_edit_settings(
    client, django_user_model, make_group, policy
):
    api = _api_for(
        client,
        django_user_model,
        "Policy assigners",
        ["Endpoint security policies: Read", "Endpoint security policies: Assign"],
    )
    group = make_group("Servers")
    assigned = api.post(f"{BASE}/{policy.policy_id}/assign", {"assignments": [_target(group)]})
    assert assigned.status_code == 200, assigned.content
    assert list(PolicyAssignment.objects.filter(policy=policy).values_list("group__name", flat=True)) == [
        "Servers"
    ]
    assert api.patch(f"{BASE}/{policy.policy_id}", {"name": "AV renamed"}).status_code == 403
    policy.refresh_from_db()
    assert policy.name == "AV assign check"


def test_creating_a_policy_with_assignments_needs_assign(client, django_user_model, make_group):
    api = _api_for(
        client,
        django_user_model,
        "Policy creators",
        ["Endpoint security policies: Read", "Endpoint security policies: Create"],
    )
    group = make_group("Servers")
    with_targets = api.post(BASE, av_body(name="AV with targets", assignments=[_target(group)]))
    assert with_targets.status_code == 403, with_targets.content
    assert api.post(BASE, av_body(name="AV without targets")).status_code == 201


def test_built_in_roles_hold_assign_as_intune_has_it():
    from django.contrib.auth.models import Group

    from console.roles import ENDPOINT_SECURITY_MANAGER, GLOBAL_ADMIN, READ_ONLY_OPERATOR, sync_roles

    sync_roles()
    held = {
        name: rbac.actions_of(Group.objects.get(name=name))
        for name in (GLOBAL_ADMIN, ENDPOINT_SECURITY_MANAGER)
    }
    assert all("Endpoint security policies: Assign" in actions for actions in held.values())
    assert "Endpoint security policies: Assign" not in rbac.actions_of(
        Group.objects.get(name=READ_ONLY_OPERATOR)
    )
