"""Admin groups (security groups of users) as role assignment members: their users hold the role and its scope
while they are members; managed on Tenant administration › Admin groups, audit-logged with before and after."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from console import rbac
from console.models import AdminGroup, AuditEvent
from devices import membership
from devices.models import Device, Group
from devices.scope import visible_devices

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(name: str):
    return get_user_model().objects.create_user(name, password="x-Unused-1234")


def test_a_member_of_an_admin_group_holds_the_assigned_role_and_scope(client):
    inside = Device.objects.create(display_name="SRV-1", os="windows")
    Device.objects.create(display_name="WS-1", os="windows")
    servers = Group.objects.create(name="Servers")
    membership.add_members(servers, [inside.pk])
    ann = _user("ann")
    helpdesk = rbac.create_admin_group(name="Helpdesk", members=[ann])
    role = rbac.create_role(name="Device readers", actions=["Managed devices: Read"])
    rbac.create_assignment(
        name="Helpdesk servers", role=role, members=[], member_groups=[helpdesk], scope_groups=[servers]
    )

    assert ann.has_perm("devices.view_device")
    assert list(visible_devices(ann).values_list("display_name", flat=True)) == ["SRV-1"]
    client.force_login(ann)
    assert client.get(reverse("devices:list")).status_code == 200
    assert rbac.role_names(ann) == ["Device readers"]


def test_leaving_the_admin_group_takes_the_role_away_at_once(client):
    ann = _user("ann")
    helpdesk = rbac.create_admin_group(name="Helpdesk", members=[ann])
    rbac.create_assignment(
        name="Helpdesk readers",
        role=rbac.get_role("Read Only Operator"),
        members=[],
        member_groups=[helpdesk],
        scope_groups=[],
    )
    client.force_login(ann)
    assert client.get(reverse("devices:list")).status_code == 200
    rbac.update_admin_group(helpdesk, name="Helpdesk", description="", members=[])
    assert client.get(reverse("devices:list")).status_code == 403
    update = AuditEvent.objects.get(action="admingroup.update")
    assert update.before == {"members": ["ann"]} and update.after == {"members": []}


def test_the_admin_groups_page_creates_edits_and_deletes(ga_client):
    ann, bob = _user("ann"), _user("bob")
    created = ga_client.post(
        reverse("admin_group_create"), {"name": "Helpdesk", "description": "Tier 1", "members": [ann.pk]}
    )
    assert created.status_code == 302
    group = AdminGroup.objects.get(name="Helpdesk")
    assert "Helpdesk" in ga_client.get(reverse("admin_groups")).content.decode()
    ga_client.post(
        reverse("admin_group_detail", args=[group.pk]),
        {"name": "Helpdesk", "description": "Tier 1", "members": [ann.pk, bob.pk]},
    )
    assert sorted(group.members.values_list("username", flat=True)) == ["ann", "bob"]
    assert AuditEvent.objects.get(action="admingroup.create").after["members"] == ["ann"]
    ga_client.post(reverse("admin_group_delete", args=[group.pk]))
    assert not AdminGroup.objects.exists()
    assert AuditEvent.objects.get(action="admingroup.delete").before["members"] == ["ann", "bob"]


def test_a_role_assignment_takes_admin_groups_as_members_on_the_role_page(ga_client):
    helpdesk = rbac.create_admin_group(name="Helpdesk")
    role = rbac.get_role("Read Only Operator")
    response = ga_client.post(
        reverse("assignment_create", args=[role.pk]),
        {"name": "Helpdesk readers", "member_groups": [helpdesk.pk]},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="roleassignment.create")
    assert event.after["member_groups"] == ["Helpdesk"] and event.after["members"] == []
    refused = ga_client.post(reverse("assignment_create", args=[role.pk]), {"name": "Nobody"})
    assert refused.status_code == 400 and "at least one member" in refused.content.decode()


def test_an_admin_group_that_is_an_assignments_only_member_is_not_deleted():
    helpdesk = rbac.create_admin_group(name="Helpdesk")
    rbac.create_assignment(
        name="Helpdesk readers",
        role=rbac.get_role("Read Only Operator"),
        members=[],
        member_groups=[helpdesk],
        scope_groups=[],
    )
    with pytest.raises(rbac.RbacError, match="only member of the role assignment Helpdesk readers"):
        rbac.delete_admin_group(helpdesk)
    assert AdminGroup.objects.filter(pk=helpdesk.pk).exists()


def test_an_admin_group_whose_members_follow_sso_group_claims_says_so(ga_client, settings):
    settings.OIDC_ISSUER = "https://login.contoso.test/o"
    settings.OIDC_PROVIDER_NAME = "Contoso ID"
    settings.OIDC_GROUP_MAP = {"3f2b7c1e": "Server operators"}
    operators = rbac.create_admin_group(name="Server operators")
    helpdesk = rbac.create_admin_group(name="Helpdesk")

    listing = ga_client.get(reverse("admin_groups")).content.decode()
    assert listing.count("Members follow Contoso ID group claims") == 1
    managed = ga_client.get(reverse("admin_group_detail", args=[operators.pk])).content.decode()
    assert 'id="sso-managed"' in managed
    assert (
        'id="sso-managed"'
        not in ga_client.get(reverse("admin_group_detail", args=[helpdesk.pk])).content.decode()
    )
