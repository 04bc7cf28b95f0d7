"""Single sign-on with OpenID Connect, end to end against a real provider on loopback.

The provider is django-oauth-toolkit in a second Django process (tests/oidc_provider): its own SQLite database, an
RSA key generated here, users whose groups it sends as the "roles" claim and whose security groups it sends as the
"groups" claim (object ids, as Entra does), and the console registered as a confidential client. A real Chromium signs in through the provider's own login form.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from playwright.sync_api import expect

from console import rbac
from console.models import AuditEvent, SingleSignOnIdentity
from console.roles import ENDPOINT_SECURITY_MANAGER, GLOBAL_ADMIN, READ_ONLY_OPERATOR, sync_roles
from devices import membership
from devices.models import Device
from devices.models import Group as DeviceGroup
from tests.helpers import PASSWORD, ROOT, child_process, wait_for

PROVIDER_PASSWORD = "contoso-provider-passphrase-1"
CUSTOM_ROLE = "Tier 2 Operator"
SERVER_OPS_GROUP_ID = (
    "3f2b7c1e-8d4a-4e5b-9c6f-1a2b3c4d5e6f"  # an Entra group's object id, as "groups" sends it
)
PROVIDER_USERS = {
    "alice": {"email": "alice@contoso.test", "groups": ["console-admins", "everyone"]},
    "sam": {"email": "sam@contoso.test", "groups": ["secops"]},
    "olga": {"email": "olga@contoso.test", "groups": ["tier2"]},
    "mallory": {"email": "mallory@contoso.test", "groups": ["marketing"]},
    "gail": {"email": "gail@contoso.test", "groups": [], "security_groups": [SERVER_OPS_GROUP_ID]},
}
ROLE_MAP = {
    "console-admins": GLOBAL_ADMIN,
    "secops": ENDPOINT_SECURITY_MANAGER,
    "tier2": CUSTOM_ROLE,
}


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    env: dict = field(default_factory=dict, compare=False)

    def set_groups(self, username: str, groups: list[str]) -> None:
        """Change a provider user's groups, as an administrator at the provider would ("group:<id>": security)."""
        command = [
            sys.executable,
            "-m",
            "django",
            "set_provider_groups",
            username,
            f"--groups={json.dumps(groups)}",
        ]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_keys(folder) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (folder / "rsa.pem").write_bytes(pem)
    (folder / "secret_key").write_text(secrets.token_urlsafe(50))


@pytest.fixture(scope="session")
def oidc_provider(live_server, tmp_path_factory):
    """django-oauth-toolkit's OpenID Connect provider in its own process, on a loopback host name other than the
    console's (browsers keep cookies per host, not per port: two session cookies on one host would clash)."""
    data = tmp_path_factory.mktemp("oidc-provider")
    _write_keys(data)
    console = urlparse(live_server.url)
    host = "127.0.0.1" if console.hostname != "127.0.0.1" else "localhost"
    port = _free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OIDC_PROVIDER_DATA": str(data),
    }
    provider = Provider(f"http://{host}:{port}/o", "mde-console", secrets.token_urlsafe(32), env)
    django = [sys.executable, "-m", "django"]
    with child_process([*django, "migrate", "--noinput"], env, data / "migrate.log") as proc:
        assert proc.wait(timeout=120) == 0, (data / "migrate.log").read_text()
    setup = [
        *django,
        "setup_provider",
        f"--redirect-uri={live_server.url}/login/sso/callback/",
        f"--client-id={provider.client_id}",
        f"--client-secret={provider.client_secret}",
        f"--password={PROVIDER_PASSWORD}",
        f"--users={json.dumps(PROVIDER_USERS)}",
    ]
    with child_process(setup, env, data / "setup.log") as proc:
        assert proc.wait(timeout=60) == 0, (data / "setup.log").read_text()
    serve = [*django, "runserver", f"{host}:{port}", "--noreload", "--skip-checks"]
    with child_process(serve, env, data / "provider.log"):
        wait_for(lambda: _answers(f"{provider.issuer}/.well-known/openid-configuration"), timeout=60)
        yield provider


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def sso(settings, oidc_provider, transactional_db):
    """The console configured for the provider, as the OIDC_* environment variables would configure it."""
    sync_roles()
    custom = Group.objects.create(name=CUSTOM_ROLE)  # a custom role: any group can be a role
    custom.permissions.set(Permission.objects.filter(codename__in=["view_device", "view_policy"]))
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_CLIENT_ID = oidc_provider.client_id
    settings.OIDC_CLIENT_SECRET = oidc_provider.client_secret
    settings.OIDC_PROVIDER_NAME = "Contoso ID"
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "console.sso.OIDCBackend"]
    return oidc_provider


def _sign_in_at_provider(page, live_server, username: str, path: str = "/"):
    page.goto(f"{live_server.url}/login/?next={path}")
    page.get_by_role("link", name="Sign in with Contoso ID").click()
    expect(page.locator("h1")).to_have_text("Contoso ID")  # the provider's own login form
    page.fill("#id_username", username)
    page.fill("#id_password", PROVIDER_PASSWORD)
    page.click("#contoso-sign-in")
    page.wait_for_load_state("networkidle")
    return page


@pytest.mark.browser
def test_it_signs_in_through_the_provider_and_lands_with_the_mapped_role(sso, page, live_server):
    _sign_in_at_provider(page, live_server, "alice", path="/tenant-admin/roles/")

    expect(page).to_have_url(f"{live_server.url}/tenant-admin/roles/")  # a Global Administrator's page
    expect(page.locator("h1")).to_have_text("Roles")
    user = get_user_model().objects.get(email="alice@contoso.test")
    assert list(user.groups.values_list("name", flat=True)) == [GLOBAL_ADMIN]
    assert not user.has_usable_password()
    identity = SingleSignOnIdentity.objects.get(user=user)
    assert identity.issuer == sso.issuer and identity.last_sign_in_at is not None
    signed_in = AuditEvent.objects.get(action="login.succeeded", actor=user)
    assert signed_in.after == {"method": "sso (Contoso ID)", "roles": [GLOBAL_ADMIN]}
    assert AuditEvent.objects.filter(action="user.create", object_id=str(user.pk)).exists()


@pytest.mark.browser
def test_it_refuses_someone_whose_claims_map_to_no_role(sso, page, live_server):
    _sign_in_at_provider(page, live_server, "mallory")

    expect(page.locator(".banner-error")).to_contain_text("you have no role here")
    expect(page.locator(".banner-error")).to_contain_text("mallory@contoso.test")
    assert not get_user_model().objects.filter(email="mallory@contoso.test").exists()
    assert AuditEvent.objects.filter(action="login.refused").count() == 1
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")  # not signed in


@pytest.mark.browser
def test_it_matches_an_existing_user_by_email_and_gives_a_custom_role(sso, page, live_server):
    olga = get_user_model().objects.create_user("olga.local", email="OLGA@contoso.test", password=PASSWORD)
    olga.groups.add(Group.objects.get(name=GLOBAL_ADMIN))  # the provider decides: this role goes

    _sign_in_at_provider(page, live_server, "olga", path="/devices/")

    expect(page).to_have_url(f"{live_server.url}/devices/")
    assert list(olga.groups.values_list("name", flat=True)) == [CUSTOM_ROLE]
    assert SingleSignOnIdentity.objects.get(user=olga).subject
    assert get_user_model().objects.filter(email__iexact="olga@contoso.test").count() == 1
    change = AuditEvent.objects.get(action="user.roles.update", object_id=str(olga.pk))
    assert (change.before, change.after) == ({"roles": [GLOBAL_ADMIN]}, {"roles": [CUSTOM_ROLE]})
    page.goto(f"{live_server.url}/tenant-admin/roles/")
    expect(page.locator("h1")).to_have_text("Access denied")


@pytest.mark.browser
def test_it_signs_the_same_subject_in_as_the_same_user_every_time(sso, page, live_server, browser):
    _sign_in_at_provider(page, live_server, "sam")
    expect(page.locator("h1")).to_have_text("Home")
    first = get_user_model().objects.get(email="sam@contoso.test")
    first.email = "sam.renamed@contoso.test"  # the subject, not the e-mail, is what identifies them
    first.save()

    second = browser.new_page()
    try:
        _sign_in_at_provider(second, live_server, "sam")
        expect(second.locator("h1")).to_have_text("Home")
    finally:
        second.close()
    assert get_user_model().objects.filter(sso_identities__issuer=sso.issuer).count() == 1
    assert AuditEvent.objects.filter(action="login.succeeded", actor=first).count() == 2


@pytest.mark.browser
def test_it_explains_a_wrong_client_secret_after_the_provider_sign_in(sso, settings, page, live_server):
    settings.OIDC_CLIENT_SECRET = "not-the-registered-secret"

    _sign_in_at_provider(page, live_server, "alice")

    expect(page.locator(".banner-error")).to_contain_text("Contoso ID refused the console's request")
    expect(page.locator(".banner-error")).to_contain_text("OIDC_CLIENT_SECRET")
    assert not get_user_model().objects.filter(email="alice@contoso.test").exists()


@pytest.mark.browser
def test_it_refuses_a_disabled_console_account_and_changes_nothing(sso, page, live_server):
    alice = get_user_model().objects.create_user("alice.local", email="alice@contoso.test", is_active=False)
    alice.groups.add(Group.objects.get(name=ENDPOINT_SECURITY_MANAGER))

    _sign_in_at_provider(page, live_server, "alice")

    expect(page.locator(".banner-error")).to_contain_text("Your console account is disabled")
    assert list(alice.groups.values_list("name", flat=True)) == [ENDPOINT_SECURITY_MANAGER]
    assert not SingleSignOnIdentity.objects.exists()


@pytest.mark.browser
def test_a_group_claim_gives_the_role_assigned_to_the_mapped_admin_group_until_the_claim_is_gone(
    sso, settings, page, live_server, browser
):
    settings.OIDC_GROUP_MAP = {SERVER_OPS_GROUP_ID: "Server operators"}
    server = Device.objects.create(display_name="SRV-SSO-1", os="windows")
    Device.objects.create(display_name="WS-SSO-1", os="windows")
    servers = DeviceGroup.objects.create(name="Servers")
    membership.add_members(servers, [server.pk])
    operators = rbac.create_admin_group(name="Server operators")
    rbac.create_assignment(
        name="Server operators: servers",
        role=Group.objects.get(name=READ_ONLY_OPERATOR),
        members=[],
        member_groups=[operators],
        scope_groups=[servers],
    )

    _sign_in_at_provider(page, live_server, "gail", path="/devices/")

    expect(page).to_have_url(f"{live_server.url}/devices/")
    expect(page.locator("main")).to_contain_text("SRV-SSO-1")  # the role, within the assignment's scope
    expect(page.locator("main")).not_to_contain_text("WS-SSO-1")
    gail = get_user_model().objects.get(email="gail@contoso.test")
    assert list(gail.admin_groups.values_list("name", flat=True)) == ["Server operators"]
    assert list(gail.groups.all()) == []  # no direct role: the role comes through the admin group
    assert rbac.role_names(gail) == [READ_ONLY_OPERATOR]
    joined = AuditEvent.objects.get(action="user.admin_groups.update", object_id=str(gail.pk))
    assert (joined.before, joined.after) == ({"admin_groups": []}, {"admin_groups": ["Server operators"]})

    sso.set_groups("gail", [])  # taken out of the group at the provider
    second = browser.new_page()
    try:
        _sign_in_at_provider(second, live_server, "gail", path="/devices/")
        expect(second.locator(".banner-error")).to_contain_text("you have no role here")
    finally:
        second.close()

    assert not gail.admin_groups.exists()
    assert rbac.role_names(gail) == []
    left = AuditEvent.objects.filter(action="user.admin_groups.update", object_id=str(gail.pk)).latest("id")
    assert (left.before, left.after) == ({"admin_groups": ["Server operators"]}, {"admin_groups": []})
    page.goto(f"{live_server.url}/devices/")  # the session still open in the first browser has lost it too
    expect(page.locator("h1")).to_have_text("Access denied")
