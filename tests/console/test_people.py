"""Tenant administration › Users, Roles and role assignments: each change works, refuses bad input with the
reason, and leaves an audit record with before and after."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from console import rbac
from console.models import AuditEvent, RoleAssignment
from console.roles import ENDPOINT_SECURITY_MANAGER, READ_ONLY_OPERATOR
from devices import membership
from devices.models import Device, Group
from devices.scope import visible_devices

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _group(name: str, *devices: Device) -> Group:
    group = Group.objects.create(name=name)
    membership.add_members(group, [d.pk for d in devices])
    return group


def test_it_creates_a_user_with_a_one_time_invitation_link_that_sets_the_password(ga_client, client):
    response = ga_client.post(reverse("user_create"), {"username": "alex", "email": "alex@contoso.com"})
    assert response.status_code == 200
    link = response.context["invite"]
    user = get_user_model().objects.get(username="alex")
    assert not user.has_usable_password()
    event = AuditEvent.objects.get(action="user.create")
    assert event.after["email"] == "alex@contoso.com" and event.actor_name == "ga"

    ga_client.logout()
    page = client.get(link, follow=True)  # Django swaps the token for a session-bound form URL
    assert page.context["validlink"]
    done = client.post(
        page.redirect_chain[-1][0], {"new_password1": "Zq8!long-pass", "new_password2": "Zq8!long-pass"}
    )
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("Zq8!long-pass")
    assert not client.get(link, follow=True).context["validlink"]  # used once


def test_it_refuses_a_duplicate_user_name_and_keeps_the_form(ga_client, reader):
    response = ga_client.post(reverse("user_create"), {"username": "READER", "email": "r@contoso.com"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert response.context["form"]["email"].value() == "r@contoso.com"


def test_it_disables_enables_resets_and_deletes_a_user_with_audit(ga_client, global_admin, reader):
    ga_client.post(reverse("user_enable", args=[reader.pk]), {"enabled": "false"})
    reader.refresh_from_db()
    assert not reader.is_active
    ga_client.post(reverse("user_enable", args=[reader.pk]), {"enabled": "true"})
    reader.refresh_from_db()
    assert reader.is_active
    reset = ga_client.post(reverse("user_reset_password", args=[reader.pk]))
    assert "/invite/" in reset.context["invite"]
    reader.refresh_from_db()
    assert not reader.has_usable_password()
    ga_client.post(reverse("user_delete", args=[reader.pk]))
    assert not get_user_model().objects.filter(pk=reader.pk).exists()
    actions = list(AuditEvent.objects.filter(object_type="User").values_list("action", "before", "after"))
    assert [a for a, _, _ in actions] == ["user.delete", "user.reset_password", "user.enable", "user.disable"]
    assert actions[-1][1:] == ({"enabled": True}, {"enabled": False})


def test_it_refuses_to_disable_or_delete_yourself(ga_client, global_admin):
    ga_client.post(reverse("user_enable", args=[global_admin.pk]), {"enabled": "false"})
    ga_client.post(reverse("user_delete", args=[global_admin.pk]))
    global_admin.refresh_from_db()
    assert global_admin.is_active


def test_it_lists_users_with_filters_roles_and_last_sign_in(ga_client, reader, security_manager):
    response = ga_client.get(reverse("users"), {"role": READ_ONLY_OPERATOR})
    rows = [r.record.username for r in response.context["table"].rows]
    assert rows == ["reader"]
    csv = b"".join(ga_client.get(reverse("users"), {"export": "csv"}).streaming_content).decode()
    assert "esm" in csv and ENDPOINT_SECURITY_MANAGER in csv and "Last sign-in" in csv


def test_it_keeps_built_in_roles_read_only(global_admin):
    with pytest.raises(rbac.RbacError, match="built-in"):
        rbac.update_role(rbac.get_role(READ_ONLY_OPERATOR), description="", actions=[])
    with pytest.raises(rbac.RbacError, match="built-in"):
        rbac.delete_role(rbac.get_role(READ_ONLY_OPERATOR))


def test_it_creates_a_custom_role_from_intune_permission_groups_and_audits_the_change(
    ga_client, global_admin
):
    response = ga_client.post(
        reverse("role_create"),
        {"name": "Device reader", "permissions": ["Managed devices: Read", "Groups: Read"]},
    )
    role = rbac.get_role("Device reader")
    assert response.status_code == 302
    assert rbac.actions_of(role) == ["Managed devices: Read", "Groups: Read"]
    ga_client.post(
        reverse("role_detail", args=[role.pk]), {"description": "x", "permissions": ["Managed devices: Read"]}
    )
    update = AuditEvent.objects.get(action="role.update")
    assert update.before["permissions"] == ["Managed devices: Read", "Groups: Read"]
    assert update.after["permissions"] == ["Managed devices: Read"]


def test_it_refuses_an_unknown_permission_with_its_name():
    with pytest.raises(rbac.RbacError, match="Unknown permission 'Devices: Wipe'"):
        rbac.perms_for_actions(["Devices: Wipe"])


def test_a_scoped_assignment_limits_what_the_member_sees_and_does(client, global_admin):
    servers = _group("Servers", Device.objects.create(display_name="SRV-1", os="windows"))
    Device.objects.create(display_name="WS-1", os="windows")
    role = rbac.create_role(
        name="Server operators", actions=["Managed devices: Read", "Managed devices: Delete"]
    )
    bob = get_user_model().objects.create_user("bob", password="x-Unused-1234")
    rbac.create_assignment(name="Servers only", role=role, members=[bob], scope_groups=[servers])
    client.force_login(bob)

    listed = [r.record.display_name for r in client.get(reverse("devices:list")).context["table"].rows]
    assert listed == ["SRV-1"]
    outside = Device.objects.get(display_name="WS-1")
    assert client.get(reverse("devices:detail", args=[outside.pk])).status_code == 404
    assert client.post(reverse("devices:delete", args=[outside.pk])).status_code == 404
    assert Device.objects.filter(pk=outside.pk).exists()
    assert client.get(reverse("devices:group_list")).status_code == 403  # Groups: Read not granted
    assert AuditEvent.objects.get(action="roleassignment.create").after["scope"] == ["Servers"]


def test_deleting_an_assignment_takes_the_role_away_at_once(client, global_admin):
    role = rbac.get_role(READ_ONLY_OPERATOR)
    carol = get_user_model().objects.create_user("carol", password="x-Unused-1234")
    a = rbac.create_assignment(name="Readers", role=role, members=[carol], scope_groups=[])
    client.force_login(carol)
    assert client.get(reverse("devices:list")).status_code == 200
    rbac.delete_assignment(a)
    assert client.get(reverse("devices:list")).status_code == 403
    assert AuditEvent.objects.get(action="roleassignment.delete").before["members"] == ["carol"]
    assert not RoleAssignment.objects.exists()


def test_a_disabled_user_is_signed_out_and_cannot_sign_in(client, reader):
    from tests.helpers import PASSWORD

    client.force_login(reader)
    rbac.set_enabled(reader, False)
    assert client.get(reverse("devices:list")).status_code == 302
    refused = client.post(reverse("login"), {"username": "reader", "password": PASSWORD})
    assert refused.status_code == 200 and not refused.context["user"].is_authenticated


def test_an_unscoped_person_sees_every_device(security_manager):
    Device.objects.create(display_name="A", os="windows")
    assert visible_devices(security_manager).count() == 1


def test_a_scoped_admin_can_target_only_groups_in_scope():
    from console.audit import Actor, acting_as
    from policies import services
    from policies.services import PolicyError

    servers, kiosks = Group.objects.create(name="Servers"), Group.objects.create(name="Kiosks")
    role = rbac.create_role(name="Server policy authors", actions=["Endpoint security policies: Create"])
    pat = get_user_model().objects.create_user("pat", password="x-Unused-1234")
    rbac.create_assignment(name="Servers policies", role=role, members=[pat], scope_groups=[servers])
    av = "Microsoft Defender Antivirus"
    with acting_as(Actor(user=pat, name="pat", source="ui")):
        with pytest.raises(PolicyError, match="“Kiosks” is outside the scope of your role assignment"):
            services.create_policy(av, "windows", "AV kiosks", "", {}, {"include": [kiosks.pk]})
        policy = services.create_policy(av, "windows", "AV servers", "", {}, {"include": [servers.pk]})
    assert policy.pk


def test_a_scoped_admin_reports_and_exports_only_devices_in_scope(client, global_admin):
    from datetime import timedelta

    from django.utils import timezone

    late = timezone.now() - timedelta(days=1)
    srv = Device.objects.create(display_name="SRV-LATE", os="windows", next_checkin_at=late)
    Device.objects.create(display_name="WS-LATE", os="windows", next_checkin_at=late)
    servers = _group("Servers", srv)
    role = rbac.create_role(name="Server report readers", actions=["Endpoint security policies: Read"])
    quinn = get_user_model().objects.create_user("quinn", password="x-Unused-1234")
    rbac.create_assignment(name="Server reports", role=role, members=[quinn], scope_groups=[servers])
    client.force_login(quinn)
    page = client.get(reverse("reports:late_devices"))
    assert [r.record.display_name for r in page.context["table"].rows] == ["SRV-LATE"]
    export = b"".join(
        client.get(reverse("reports:late_devices"), {"export": "csv"}).streaming_content
    ).decode()
    assert "SRV-LATE" in export and "WS-LATE" not in export


def test_a_scoped_admin_cannot_bulk_delete_or_sync_devices_outside_scope(client, global_admin):
    inside = Device.objects.create(display_name="SRV-1", os="windows")
    outside = Device.objects.create(display_name="WS-1", os="windows")
    servers = _group("Servers", inside)
    role = rbac.create_role(
        name="Server cleaners", actions=["Managed devices: Read", "Managed devices: Delete"]
    )
    rae = get_user_model().objects.create_user("rae", password="x-Unused-1234")
    rbac.create_assignment(name="Server cleanup", role=role, members=[rae], scope_groups=[servers])
    client.force_login(rae)
    ids = f"{inside.pk},{outside.pk}"
    client.post(reverse("devices:bulk"), {"action": "delete", "ids": ids, "confirm": "yes"})
    assert list(Device.objects.values_list("display_name", flat=True)) == ["WS-1"]
