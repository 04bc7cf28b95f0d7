"""Fixtures of the Graph API tests: bearer tokens per role, a JSON client, MDE-managed devices and groups."""

from __future__ import annotations

import json
from itertools import count

import pytest

_names = count(1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Users here sign in with tokens, not passwords: don't spend a second hashing each one's password."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_throttle_buckets():
    """The tenant's throttle buckets live in the cache: start every test with empty ones."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


class Api:
    """The Django test client speaking JSON with a bearer token (None: no Authorization header)."""

    def __init__(self, client, secret: str | None):
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

    def _call(self, method: str, path: str, body=None, headers=None, **params):
        kwargs = {"headers": {**self.headers, **(headers or {})}}
        if body is not None:
            kwargs["data"] = body if isinstance(body, str | bytes) else json.dumps(body)
            kwargs["content_type"] = "application/json"
        if params:
            from urllib.parse import urlencode

            path = f"{path}?{urlencode(params)}"
        return getattr(self.client, method)(path, **kwargs)

    def get(self, path, headers=None, **params):
        return self._call("get", path, headers=headers, **params)

    def post(self, path, body=None, headers=None, **params):
        return self._call("post", path, body, headers, **params)

    def patch(self, path, body=None, headers=None):
        return self._call("patch", path, body, headers)

    def put(self, path, body=None, headers=None):
        return self._call("put", path, body, headers)

    def delete(self, path, headers=None):
        return self._call("delete", path, headers=headers)


@pytest.fixture
def token_for(make_user):
    from console.tokens import create_token

    def make(role: str) -> str:
        user = make_user(f"api-owner-{next(_names)}", role)
        return create_token(name="tests", owner=user, role=role)[1]

    return make


@pytest.fixture
def ga_api(client, global_admin):
    from console.roles import GLOBAL_ADMIN
    from console.tokens import create_token

    return Api(client, create_token(name="ga", owner=global_admin, role=GLOBAL_ADMIN)[1])


@pytest.fixture
def esm_api(client, security_manager):
    from console.roles import ENDPOINT_SECURITY_MANAGER
    from console.tokens import create_token

    return Api(client, create_token(name="esm", owner=security_manager, role=ENDPOINT_SECURITY_MANAGER)[1])


@pytest.fixture
def ro_api(client, reader):
    from console.roles import READ_ONLY_OPERATOR
    from console.tokens import create_token

    return Api(client, create_token(name="ro", owner=reader, role=READ_ONLY_OPERATOR)[1])


@pytest.fixture
def anon_api(client, db):
    return Api(client, None)


@pytest.fixture
def tenant_on(db):
    """Both sides switched on for Windows clients and servers (the seed's "Configure your tenant")."""
    from console.models import TenantSettings

    tenant = TenantSettings.load()
    tenant.windows_client_enabled = True
    tenant.windows_server_enabled = True
    tenant.allow_mde_enforcement = True
    tenant.configmgr_manages_security = False
    tenant.save()
    return tenant


@pytest.fixture
def make_device(tenant_on):
    """A device onboarded through the real onboarding flow (MDE-managed unless its facts say otherwise)."""
    from devices import services
    from devices.models import Device, JoinType

    def make(name: str | None = None, os: str = "windows", **facts) -> Device:
        facts.setdefault("join_type", JoinType.ENTRA_JOINED)
        device = Device.objects.create(
            display_name=name or f"WS-{next(_names):04d}", os=os, os_version="10.0.22631.4751", **facts
        )
        services.reevaluate_device(device)
        device.refresh_from_db()
        return device

    return make


@pytest.fixture
def make_group(db):
    from devices import membership
    from devices.models import Group

    def make(name: str | None = None, *, rule: str = "", kind: str = "device", members=()) -> Group:
        group = Group.objects.create(
            name=name or f"Group {next(_names)}",
            membership_type=Group.Membership.DYNAMIC if rule else Group.Membership.ASSIGNED,
            object_kind=kind,
            membership_rule=rule,
        )
        if rule:
            membership.recompute_group(group)
        elif members:
            membership.add_members(group, [d.pk for d in members])
        group.refresh_from_db()
        return group

    return make
