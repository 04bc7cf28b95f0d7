"""The sign-in page and the single sign-on pages without a provider: what is offered, every refusal explained,
sign-ins and sign-in setting changes audited, bad configuration refused at start. (End to end: test_sso.py.)"""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from console import rbac, sso
from console.models import AdminGroup, AuditEvent
from console.roles import GLOBAL_ADMIN, READ_ONLY_OPERATOR, sync_roles
from tests.console.test_settings_env import load_settings
from tests.helpers import PASSWORD

ISSUER = "https://login.contoso.test/o"


@pytest.fixture
def sso_on(settings):
    settings.OIDC_ISSUER = ISSUER
    settings.OIDC_CLIENT_ID = "mde-console"
    settings.OIDC_CLIENT_SECRET = "a-client-secret"
    settings.OIDC_PROVIDER_NAME = "Contoso ID"
    settings.OIDC_ROLE_MAP = {"console-admins": GLOBAL_ADMIN, "auditors": READ_ONLY_OPERATOR}
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "console.sso.OIDCBackend"]
    return settings


@pytest.fixture
def passwords_off(sso_on):
    sso_on.OIDC_LOCAL_PASSWORDS = False
    sso_on.AUTHENTICATION_BACKENDS = [
        "console.backends.RoleAssignmentPermissionsBackend"
        if b == "console.backends.RoleAssignmentBackend"
        else b
        for b in sso_on.AUTHENTICATION_BACKENDS
    ]
    return sso_on


def test_it_offers_no_sso_button_when_sso_is_not_configured(client, db):
    page = client.get("/login/").content.decode()
    assert "Sign in with" not in page
    assert 'id="id_password"' in page


def test_it_offers_the_sso_button_beside_the_password_form(client, sso_on, db):
    page = client.get("/login/?next=/devices/").content.decode()
    assert "Sign in with Contoso ID" in page
    assert 'href="/login/sso/?next=/devices/"' in page
    assert 'id="id_password"' in page


def test_it_shows_only_the_sso_button_when_local_passwords_are_off(client, passwords_off, global_admin):
    page = client.get("/login/").content.decode()
    assert "Sign in with Contoso ID" in page
    assert 'id="id_password"' not in page

    response = client.post("/login/", {"username": "ga", "password": PASSWORD})
    assert response.status_code == 403
    assert "Password sign-in is turned off" in response.content.decode()
    assert client.get("/").status_code == 302  # not signed in


@pytest.mark.parametrize("name", ["/login/sso/", "/login/sso/callback/"])
def test_the_sso_pages_say_so_when_sso_is_not_configured(client, db, name):
    response = client.get(name)
    assert response.status_code == 404
    assert "Single sign-on is not configured" in response.content.decode()


def test_it_explains_a_provider_that_cannot_be_reached(client, sso_on, db):
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sso_on.OIDC_ISSUER = f"http://127.0.0.1:{port}/o"
    response = client.get("/login/sso/")
    assert response.status_code == 502
    assert "Contoso ID could not be reached to sign you in" in response.content.decode()


def test_it_explains_a_callback_for_a_sign_in_it_did_not_start(client, sso_on, db):
    response = client.get("/login/sso/callback/?code=stolen&state=guessed")
    assert response.status_code == 401
    assert "did not complete" in response.content.decode()
    assert AuditEvent.objects.filter(action="login.refused").exists()


def test_it_shows_the_providers_own_error(client, sso_on, db):
    response = client.get("/login/sso/callback/?error=access_denied&error_description=The+user+cancelled")
    assert response.status_code == 401
    assert "did not complete: The user cancelled" in response.content.decode()


def test_it_audits_a_password_sign_in(client, global_admin):
    client.post("/login/", {"username": "ga", "password": PASSWORD})
    event = AuditEvent.objects.get(action="login.succeeded")
    assert event.actor == global_admin
    assert event.after == {"method": "password", "roles": [GLOBAL_ADMIN]}


def test_it_audits_a_change_of_sign_in_settings_once(client, sso_on, db):
    client.get("/login/")
    client.get("/login/")
    event = AuditEvent.objects.get(action="signin.settings.update")
    assert event.before == sso.NEVER_CONFIGURED
    assert event.after["issuer"] == ISSUER
    assert event.after["role_map"] == {"console-admins": GLOBAL_ADMIN, "auditors": READ_ONLY_OPERATOR}
    assert "a-client-secret" not in str(event.after)

    sso_on.OIDC_LOCAL_PASSWORDS = False
    client.get("/login/")
    latest = AuditEvent.objects.filter(action="signin.settings.update").order_by("-id").first()
    assert (latest.before["local_passwords"], latest.after["local_passwords"]) == (True, False)


def test_it_records_nothing_when_sso_was_never_configured(client, db):
    client.get("/login/")
    assert not AuditEvent.objects.filter(action="signin.settings.update").exists()


def test_it_maps_claim_values_to_any_role_that_exists_as_a_group(sso_on, db):
    sync_roles()
    Group.objects.create(name="Helpdesk")
    sso_on.OIDC_ROLE_MAP = {"console-admins": GLOBAL_ADMIN, "helpdesk": "Helpdesk"}
    claims = {"sub": "1", "roles": ["helpdesk", "console-admins", "unrelated"]}
    assert [role.name for role in sso.mapped_roles(claims)] == [GLOBAL_ADMIN, "Helpdesk"]
    assert [role.name for role in sso.mapped_roles({"sub": "1", "roles": "helpdesk"})] == ["Helpdesk"]


def test_it_refuses_a_mapping_to_a_role_that_does_not_exist_and_says_which(sso_on, db):
    sso_on.OIDC_ROLE_MAP = {"ops": "Night Shift"}
    claims = {"sub": "1", "email": "x@contoso.test", "roles": ["ops"]}
    user = get_user_model().objects.create_user("x")
    sso.follow_claims(user, claims, sso.audit.SYSTEM)
    assert sso.mapped_roles(claims) == []
    assert "Night Shift, which is not a role in this console" in sso.no_role_reason(user, claims)


def test_group_claims_set_membership_of_the_mapped_admin_groups_and_leave_the_others(sso_on, db):
    sync_roles()
    sso_on.OIDC_GROUP_MAP = {"3f2b7c1e": "Server operators", "helpdesk": "Helpdesk", "gone": "Night Shift"}
    operators = rbac.create_admin_group(name="Server operators")
    helpdesk = rbac.create_admin_group(name="Helpdesk")
    rbac.create_admin_group(name="Auditors (managed in the console)")
    user = get_user_model().objects.create_user("ann")
    user.admin_groups.add(helpdesk, AdminGroup.objects.get(name="Auditors (managed in the console)"))

    # Entra: security groups as object ids in "groups", app roles in "roles"; both are consulted
    sso.follow_claims(
        user, {"sub": "1", "groups": ["3f2b7c1e", "unmapped"], "roles": "gone"}, sso.audit.SYSTEM
    )

    assert sorted(user.admin_groups.values_list("name", flat=True)) == [
        "Auditors (managed in the console)",  # not in OIDC_GROUP_MAP: untouched
        "Server operators",
    ]
    change = AuditEvent.objects.get(action="user.admin_groups.update")
    assert change.before == {"admin_groups": ["Auditors (managed in the console)", "Helpdesk"]}
    assert change.after == {"admin_groups": ["Auditors (managed in the console)", "Server operators"]}
    assert list(user.groups.all()) == []  # OIDC_ROLE_MAP: nothing in the role claim maps, so no direct role

    sso.follow_claims(user, {"sub": "1", "groups": ["3f2b7c1e"]}, sso.audit.SYSTEM)  # nothing changes
    assert AuditEvent.objects.filter(action="user.admin_groups.update").count() == 1
    assert operators.members.filter(pk=user.pk).exists()


def test_it_says_why_a_mapped_admin_group_gives_no_role(sso_on, db):
    sso_on.OIDC_ROLE_MAP = {}
    sso_on.OIDC_GROUP_MAP = {"ops": "Server operators", "night": "Night Shift"}
    rbac.create_admin_group(name="Server operators")
    user = get_user_model().objects.create_user("ann")

    no_assignment = {"sub": "1", "email": "ann@contoso.test", "groups": ["ops"]}
    sso.follow_claims(user, no_assignment, sso.audit.SYSTEM)
    reason = sso.no_role_reason(user, no_assignment)
    assert "member of Server operators, but no role assignment is made to that admin group" in reason
    assert "OIDC_GROUP_MAP" in reason

    unknown = {"sub": "1", "email": "ann@contoso.test", "groups": ["night"]}
    sso.follow_claims(user, unknown, sso.audit.SYSTEM)
    assert "Night Shift, which is not an admin group in this console" in sso.no_role_reason(user, unknown)
    assert "none of your “groups” or “roles” claims" in sso.no_role_reason(
        user, {"sub": "1", "groups": ["x"]}
    )


def test_a_role_assignment_to_the_mapped_admin_group_is_a_role(sso_on, db):
    sync_roles()
    sso_on.OIDC_ROLE_MAP = {}
    sso_on.OIDC_GROUP_MAP = {"ops": "Server operators"}
    operators = rbac.create_admin_group(name="Server operators")
    rbac.create_assignment(
        name="Operators",
        role=rbac.get_role(READ_ONLY_OPERATOR),
        members=[],
        member_groups=[operators],
        scope_groups=[],
    )
    user = get_user_model().objects.create_user("ann")
    claims = {"sub": "1", "groups": ["ops"]}
    sso.follow_claims(user, claims, sso.audit.SYSTEM)
    assert sso.no_role_reason(user, claims) == ""
    assert rbac.role_names(user) == [READ_ONLY_OPERATOR]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"OIDC_ROLE_MAP": "admins"}, "OIDC_ROLE_MAP entry 'admins' is not 'claim value=Role name'"),
        ({"OIDC_LOCAL_PASSWORDS": "off"}, "OIDC_LOCAL_PASSWORDS=off needs single sign-on"),
        ({"OIDC_ISSUER": ISSUER}, "OIDC_CLIENT_ID or OIDC_CLIENT_SECRET is not"),
        (
            {"OIDC_ISSUER": ISSUER, "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "s"},
            "OIDC_ROLE_MAP is empty and so is OIDC_GROUP_MAP",
        ),
        (
            {"OIDC_GROUP_MAP": "3f2b7c1e"},
            "OIDC_GROUP_MAP entry '3f2b7c1e' is not 'claim value=Admin group name'",
        ),
        (
            {"OIDC_GROUP_MAP": "ops=Server operators", "OIDC_GROUP_CLAIMS": " , "},
            "OIDC_GROUP_CLAIMS names no claim",
        ),
        (
            {
                "OIDC_ISSUER": "http://login.contoso.test/o",
                "OIDC_CLIENT_ID": "c",
                "OIDC_CLIENT_SECRET": "s",
                "OIDC_ROLE_MAP": "a=Global Administrator",
            },
            "OIDC_ISSUER must be an https:// URL in production",
        ),
    ],
)
def test_it_refuses_to_start_on_bad_sign_in_settings_and_says_why(tmp_path, overrides, message):
    result = load_settings(tmp_path, **overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_it_starts_with_only_group_claims_mapped(tmp_path):
    result = load_settings(
        tmp_path,
        OIDC_ISSUER=ISSUER,
        OIDC_CLIENT_ID="mde-console",
        OIDC_CLIENT_SECRET="s3cret",
        OIDC_GROUP_MAP="3f2b7c1e-8d4a-4e5b-9c6f-1a2b3c4d5e6f=Server operators; helpdesk=Helpdesk",
        OIDC_GROUP_CLAIMS="groups",
    )
    assert result.returncode == 0, result.stderr


def test_it_starts_with_sso_configured_and_local_passwords_off(tmp_path):
    result = load_settings(
        tmp_path,
        OIDC_ISSUER=ISSUER,
        OIDC_CLIENT_ID="mde-console",
        OIDC_CLIENT_SECRET="s3cret",
        OIDC_ROLE_MAP="console-admins=Global Administrator; secops=Endpoint Security Manager",
        OIDC_LOCAL_PASSWORDS="off",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("role", [None, "ga", "esm", "ro"])
def test_the_sso_pages_are_public_for_everyone(client, sso_on, global_admin, security_manager, reader, role):
    if role:
        client.force_login({"ga": global_admin, "esm": security_manager, "ro": reader}[role])
    response = client.get("/login/sso/callback/")
    assert response.status_code == 401  # the page itself, not a redirect to sign in or an access denied
    assert "did not complete" in response.content.decode()


def test_a_single_sign_on_user_is_told_where_their_password_lives(client, db):
    user = get_user_model().objects.create_user("sso-user", email="sso@contoso.test")  # no password
    client.force_login(user)
    assert "Change password" not in client.get("/").content.decode()
    page = client.get("/account/password/").content.decode()
    assert "change it at your identity provider" in page
    assert 'name="old_password"' not in page
