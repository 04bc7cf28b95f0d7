"""Every URL, for every role: 200, 403 or a redirect to login. A new page cannot be added without a decision here.

Each app registers its pages in tests/access_<app>.py (merged into ACCESS below); `test_every_url_has_an_access_decision` fails for any named URL
that is missing, so nobody can add a page and forget who may see it.
"""

from __future__ import annotations

import importlib
import importlib.util
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.html import strip_tags

GA, ESM, RO = "ga", "esm", "ro"
ALL = {GA: 200, ESM: 200, RO: 200}
GA_ONLY = {GA: 200, ESM: 403, RO: 403}
NOT_RO = {GA: 200, ESM: 200, RO: 403}

# url name -> (kwargs factory or None, expected status per role). Only GET is walked here.
ACCESS: dict[str, tuple] = {
    "home": (None, ALL),
    "dashboard": (None, ALL),
    "password_change": (None, ALL),
    "password_change_done": (None, ALL),
    "preferences": (None, ALL),
    "tenant_admin": (None, ALL),
    "audit_logs": (None, ALL),
    "job_status": (lambda: {"pk": _job().pk}, ALL),
    "health_panel": (None, ALL),
    "api_tokens": (None, GA_ONLY),
    "api_token_create": (None, {GA: 302, ESM: 403, RO: 403}),
    "api_token_revoke": (lambda: {"pk": _token().pk}, {GA: 302, ESM: 403, RO: 403}),
    "lockouts": (None, GA_ONLY),
    "lockout_unlock": (lambda: {"pk": _attempt().pk}, {GA: 302, ESM: 403, RO: 403}),
}
# Each app keeps its own decisions in tests/access_<app>.py (a dict named ACCESS with the same shape).
for _module in (
    "tests.access_devices",
    "tests.access_policies",
    "tests.access_reports",
    "tests.access_reports_pages",
    "tests.access_people",
    "tests.access_lab",
):
    if importlib.util.find_spec(_module) is not None:
        ACCESS.update(importlib.import_module(_module).ACCESS)

# reachable without signing in; sso_start and sso_callback answer 404 while single sign-on is not configured
# (tests/console/test_sso_pages.py walks them with it configured)
PUBLIC = {"login", "sso_start", "sso_callback", "healthz", "metrics", "invite_accept", "invite_done"}
# Endpoints for load balancers, supervisors and Prometheus: the same answer signed in or not, for every role
# (/healthz is 503 while no worker beats; /metrics asks for METRICS_TOKEN only when one is set).
MACHINE_ACCESS = {"healthz": {200, 503}, "metrics": {200}}
POST_ONLY = {"logout"}


def _job():
    from console.models import Job

    return Job.objects.create(kind="test", total=1)


def _token():
    from django.contrib.auth import get_user_model

    from console.roles import READ_ONLY_OPERATOR
    from console.tokens import create_token

    owner, _ = get_user_model().objects.get_or_create(username="token-owner")
    return create_token(name="probe", owner=owner, role=READ_ONLY_OPERATOR)[0]


def _attempt():
    from axes.models import AccessAttempt

    return AccessAttempt.objects.create(
        username="someone", ip_address="192.0.2.1", failures_since_start=5, get_data="", post_data=""
    )


def _named_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            if entry.app_name in {"admin"}:
                continue
            yield from _named_patterns(entry, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{prefix}{entry.name}"


def test_every_url_has_an_access_decision():
    names = set(_named_patterns())
    missing = sorted(names - set(ACCESS) - PUBLIC - POST_ONLY)
    assert not missing, f"add these URL names to ACCESS in {__file__}: {missing}"


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ACCESS))
def test_anonymous_is_sent_to_login(client, name):
    factory, _ = ACCESS[name]
    url = reverse(name, kwargs=factory() if factory else None)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("name", sorted(ACCESS))
@pytest.mark.parametrize("role", [GA, ESM, RO])
def test_each_role_gets_its_decided_status(client, global_admin, security_manager, reader, name, role):
    user = {GA: global_admin, ESM: security_manager, RO: reader}[role]
    client.force_login(user)
    factory, expected = ACCESS[name]
    url = reverse(name, kwargs=factory() if factory else None)
    response = client.get(url)
    assert response.status_code == expected[role], f"{role} GET {url}"
    if response.status_code == 200 and response.get("Content-Type", "").startswith("text/html"):
        _assert_reads_well(response.content.decode(), url)


# The console's one date format (console/datetimes.py, en-US by default): 12/2/2026, 3:53:13 PM.
ONE_DATE_FORMAT = re.compile(r"\b\d{1,2}/\d{1,2}/\d{4}, \d{1,2}:\d{2}:\d{2}\s[AP]M")
OTHER_DATE_FORMATS = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?!T)\b"  # 2026-12-02 16:04:07 (ISO instants with a T are data, e.g. audit changes)
    r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b"  # 12/2/26, 12/02/2026 without the format's time
    r"|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, \d{4}"  # Dec. 2, 2026
    r"|\d{1,2}:\d{2}\s?[ap]\.m\."  # 3:53 p.m.
)


def _assert_reads_well(html: str, url: str) -> None:
    """Page text: dates only in the one format, and no internal ids ("(id 10)")."""
    text = strip_tags(html)
    assert "(id " not in text, f"GET {url} shows an internal id"
    others = OTHER_DATE_FORMATS.findall(ONE_DATE_FORMAT.sub("", text))
    assert not others, f"GET {url} shows dates in another format: {others[:3]}"


@pytest.mark.parametrize("name", sorted(MACHINE_ACCESS))
@pytest.mark.parametrize("role", [None, GA, ESM, RO])
def test_machine_endpoints_answer_everyone_without_signing_in(
    client, global_admin, security_manager, reader, name, role
):
    assert name in PUBLIC
    if role:
        client.force_login({GA: global_admin, ESM: security_manager, RO: reader}[role])
    response = client.get(reverse(name))
    assert response.status_code in MACHINE_ACCESS[name], f"{role or 'anonymous'} GET {reverse(name)}"


def _assigned_user(username: str, role):
    """A user who holds ``role`` only through a role assignment (all devices), not as a group member."""
    from django.contrib.auth import get_user_model

    from console.rbac import create_assignment

    user = get_user_model().objects.create_user(username=username, password="x-Unused-1234")
    create_assignment(name=f"{role.name} for {username}", role=role, members=[user], scope_groups=[])
    return user


@pytest.mark.parametrize("name", sorted(ACCESS))
@pytest.mark.parametrize("role", [ESM, RO])
def test_it_decides_a_custom_copy_of_a_role_like_the_role_itself(client, global_admin, settings, name, role):
    """Custom roles go through the same decision point: a copy, held through an assignment, gets the same answer."""
    from console.rbac import create_role, get_role
    from console.roles import ENDPOINT_SECURITY_MANAGER, READ_ONLY_OPERATOR

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    builtin = get_role({ESM: ENDPOINT_SECURITY_MANAGER, RO: READ_ONLY_OPERATOR}[role])
    client.force_login(_assigned_user("custom", create_role(name=f"Copy of {builtin.name}", copy_of=builtin)))
    factory, expected = ACCESS[name]
    url = reverse(name, kwargs=factory() if factory else None)
    assert client.get(url).status_code == expected[role], f"custom copy of {role} GET {url}"


@pytest.mark.parametrize("name", sorted(n for n, (_, expected) in ACCESS.items() if expected[RO] == 403))
def test_it_refuses_an_empty_custom_role_whatever_a_read_only_operator_cannot_see(
    client, global_admin, settings, name
):
    from console.rbac import create_role

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client.force_login(_assigned_user("nobody", create_role(name="Empty role", actions=[])))
    factory, _ = ACCESS[name]
    url = reverse(name, kwargs=factory() if factory else None)
    assert client.get(url).status_code in (403, 405), f"empty custom role GET {url}"
