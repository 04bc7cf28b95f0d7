"""Setting a deployment up without a browser: manage.py create_user and create_api_token."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from console.models import ApiToken, AuditEvent, RoleAssignment
from console.tokens import check_token
from devices.models import Group

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_user_assigns_the_role_over_the_scope_group_and_prints_the_link_once():
    Group.objects.create(name="Servers")
    out = _run("create_user", "dana", "--role", "Read Only Operator", "--scope-group", "Servers")
    assert "over Servers" in out
    link = out.strip().splitlines()[-1]
    assert link.startswith("http://127.0.0.1:8000/invite/")
    assignment = RoleAssignment.objects.get(members__username="dana")
    assert [g.name for g in assignment.scope_groups.all()] == ["Servers"]
    assert AuditEvent.objects.filter(action="user.create", actor_name="manage.py create_user").exists()


def test_create_user_names_an_unknown_role_or_group_and_creates_nothing():
    with pytest.raises(CommandError, match="Unknown role 'Boss'.*Read Only Operator"):
        _run("create_user", "erin", "--role", "Boss")
    with pytest.raises(CommandError, match="No device group named 'Nope'"):
        _run("create_user", "erin", "--role", "Read Only Operator", "--scope-group", "Nope")
    assert not get_user_model().objects.filter(username="erin").exists()


def test_create_api_token_prints_a_working_token_once_and_stores_only_its_hash():
    out = _run("create_api_token", "--role", "Read Only Operator", "--name", "Terraform")
    secret = out.strip().splitlines()[-1]
    token = check_token(secret)
    assert token is not None and token.role.name == "Read Only Operator"
    assert secret not in ApiToken.objects.get(pk=token.pk).token_hash
    assert token.owner.username == "svc-terraform" and not token.owner.has_usable_password()


def test_create_api_token_refuses_an_unknown_role():
    with pytest.raises(CommandError, match="Unknown role"):
        _run("create_api_token", "--role", "Boss")
    assert not ApiToken.objects.exists()
