"""The sign-in page and the single sign-on pages without a provider: what is offered, every refusal explained,
sign-ins and sign-in setting changes audited, bad configuration refused at start. (End to end: test_sso.py.)"""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from console import sso
from console.models import AuditEvent
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
    with pytest.raises(sso.SignInRefused, match="Night Shift, which is not a role in this console"):
        sso.mapped_roles({"sub": "1", "email": "x@contoso.test", "roles": ["ops"]})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"OIDC_ROLE_MAP": "admins"}, "OIDC_ROLE_MAP entry 'admins' is not 'claim value=Role name'"),
        ({"OIDC_LOCAL_PASSWORDS": "off"}, "OIDC_LOCAL_PASSWORDS=off needs single sign-on"),
        ({"OIDC_ISSUER": ISSUER}, "OIDC_CLIENT_ID or OIDC_CLIENT_SECRET is not"),
        (
            {"OIDC_ISSUER": ISSUER, "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "s"},
            "OIDC_ROLE_MAP is empty",
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
