from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from console.models import ApiToken, AuditEvent
from console.roles import READ_ONLY_OPERATOR
from console.tokens import check_token, create_token, revoke_token, token_permissions


def test_a_token_is_stored_hashed_and_checks_back(global_admin):
    token, secret = create_token(name="terraform", owner=global_admin, role=READ_ONLY_OPERATOR)
    assert secret.startswith(f"mdec_{token.prefix}_")
    assert secret.split("_", 2)[2] not in token.token_hash
    assert check_token(secret) == token
    assert AuditEvent.objects.filter(action="apitoken.create").exists()


def test_the_token_carries_its_roles_permissions(global_admin):
    token, _ = create_token(name="reader", owner=global_admin, role=READ_ONLY_OPERATOR)
    perms = token_permissions(token)
    assert "devices.view_device" in perms
    assert "policies.add_policy" not in perms


@pytest.mark.parametrize("raw", ["", "x", "mdec_abc", "mdec_nope_secret", "other_a_b"])
def test_malformed_or_unknown_tokens_are_refused(db, raw):
    assert check_token(raw) is None


def test_a_wrong_secret_is_refused(global_admin):
    token, secret = create_token(name="t", owner=global_admin, role=READ_ONLY_OPERATOR)
    assert check_token(secret[:-2] + "xx") is None


def test_revoked_and_expired_tokens_are_refused(global_admin):
    token, secret = create_token(name="t", owner=global_admin, role=READ_ONLY_OPERATOR)
    revoke_token(token)
    assert check_token(secret) is None
    token2, secret2 = create_token(name="t2", owner=global_admin, role=READ_ONLY_OPERATOR)
    ApiToken.objects.filter(pk=token2.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert check_token(secret2) is None


@pytest.mark.parametrize(("kwargs", "message"), [({"name": " "}, "name"), ({"role": "God"}, "Unknown role"),
                                                 ({"days": 0}, "1 to 730")])  # fmt: skip
def test_bad_token_requests_say_what_is_wrong(global_admin, kwargs, message):
    args = {"name": "ok", "owner": global_admin, "role": READ_ONLY_OPERATOR, **kwargs}
    with pytest.raises(ValueError, match=message):
        create_token(**args)


def test_a_global_administrator_creates_a_token_in_the_ui(ga_client):
    form = {"name": "ci", "role": READ_ONLY_OPERATOR, "days": 30}
    response = ga_client.post("/tenant-admin/api-tokens/new/", form)
    assert response.status_code == 200
    assert b"will not be shown again" in response.content
    assert ApiToken.objects.get().name == "ci"


def test_an_endpoint_security_manager_cannot_create_tokens(esm_client):
    form = {"name": "x", "role": READ_ONLY_OPERATOR, "days": 3}
    assert esm_client.post("/tenant-admin/api-tokens/new/", form).status_code == 403
    assert not ApiToken.objects.exists()


def test_a_bad_token_form_shows_errors_and_creates_nothing(ga_client):
    response = ga_client.post("/tenant-admin/api-tokens/new/", {"name": "", "role": "nope", "days": 9999})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()
