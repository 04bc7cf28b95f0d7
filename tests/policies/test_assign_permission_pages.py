"""The console keeps Intune's Assign apart from Update: the edit pages, the wizard and version restore."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from console import rbac
from devices.models import Group
from policies import services, wizard
from policies.catalog import get_catalog
from policies.models import PolicyAssignment

pytestmark = pytest.mark.django_db
AV = "Microsoft Defender Antivirus"
READ = "Endpoint security policies: Read"


def _person(client, username: str, actions: list[str]):
    role = rbac.create_role(name=f"{username} role", actions=actions)
    user = get_user_model().objects.create_user(username, password="x-Unused-1234")
    rbac.create_assignment(name=f"{username} holds", role=role, members=[user], scope_groups=[])
    client.force_login(user)
    return user


@pytest.fixture
def policy():
    return services.create_policy(AV, "windows", "AV pages", "", {})


def _edit(client, policy, section: str):
    return client.get(reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": section}))


def test_update_without_assign_opens_settings_but_not_assignments(client, policy):
    _person(client, "ed", [READ, "Endpoint security policies: Update"])
    assert _edit(client, policy, "settings").status_code == 302
    assert _edit(client, policy, "assignments").status_code == 403
    detail = client.get(reverse("policies:detail", kwargs={"policy_id": policy.policy_id})).content.decode()
    assert "/edit/settings/" in detail and "/edit/assignments/" not in detail


def test_assign_without_update_opens_assignments_but_not_settings_and_saves_them(client, policy):
    user = _person(client, "ash", [READ, "Endpoint security policies: Assign"])
    servers = Group.objects.create(name="Servers")
    assert _edit(client, policy, "settings").status_code == 403
    assert _edit(client, policy, "basics").status_code == 403
    opened = _edit(client, policy, "assignments")
    assert opened.status_code == 302
    draft = wizard.edit_draft(user, policy, "assignments")
    step = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "assignments"})
    client.post(step, {"shown_group": [servers.pk], "include": [servers.pk], "nav": "next"})
    review = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "review"})
    client.post(review, {})
    assert list(PolicyAssignment.objects.filter(policy=policy).values_list("group__name", flat=True)) == [
        "Servers"
    ]


def test_a_creator_without_assign_is_told_and_cannot_target_groups_in_the_wizard(client):
    user = _person(client, "cy", [READ, "Endpoint security policies: Create"])
    servers = Group.objects.create(name="Servers")
    draft = wizard.new_create_draft(user, get_catalog().profile(AV), "windows")
    step = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "assignments"})
    page = client.get(step).content.decode()
    assert "lacks the Assign permission" in page
    refused = client.post(step, {"shown_group": [servers.pk], "include": [servers.pk], "nav": "next"})
    assert "lacks the Assign permission" in refused.content.decode()
    draft.refresh_from_db()
    assert wizard.state(draft)["assignments"]["include"] == []


def test_restoring_a_version_with_other_assignments_needs_assign(client, policy):
    servers = Group.objects.create(name="Servers")
    services.set_assignments(policy, {"include": [servers.pk]})
    services.set_assignments(policy, {"include": []})
    _person(client, "ro", [READ, "Endpoint security policies: Update"])
    url = reverse("policies:restore", kwargs={"policy_id": policy.policy_id, "number": 2})
    response = client.post(url)
    assert "lacks the Assign permission" in response.content.decode()
    assert not PolicyAssignment.objects.filter(policy=policy).exists()
