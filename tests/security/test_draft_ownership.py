"""Issue 12, item 6: a wizard draft belongs to the person who started it.

Seen: a user with the add-policy permission could write into another user's draft by knowing its id. Every draft
URL (each wizard step, GET and POST, the htmx posts the wizard makes as it goes, the firewall-rule editor, removing
a rule, the impact preview) now answers 404 to anyone but the author, and the draft is left exactly as it was.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from policies.catalog import FIREWALL_RULE_GROUP_ID
from policies.models import Policy, PolicyDraft

pytestmark = pytest.mark.django_db

R = FIREWALL_RULE_GROUP_ID + "_"
HTMX = {"HTTP_HX_REQUEST": "true"}
STEPS = ["basics", "settings", "assignments", "review"]


def step_url(draft: PolicyDraft, step: str) -> str:
    return reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": step})


def rule_url(draft: PolicyDraft, index) -> str:
    return reverse("policies:wizard_rule", kwargs={"draft_id": draft.draft_id, "index": index})


def impact_url(draft: PolicyDraft) -> str:
    return reverse("policies:wizard_impact", kwargs={"draft_id": draft.draft_id})


@pytest.fixture
def author(client, global_admin) -> Client:
    client.force_login(global_admin)
    return client


@pytest.fixture
def intruder(security_manager) -> Client:
    """Another person who may create policies (add_policy and change_policy), so only ownership stops them."""
    assert security_manager.has_perm("policies.add_policy")
    assert security_manager.has_perm("policies.change_policy")
    other = Client()
    other.force_login(security_manager)
    return other


@pytest.fixture
def firewall_draft(author) -> PolicyDraft:
    """The author's Firewall Rules draft with a name and one rule, created through the wizard."""
    response = author.post(
        reverse("policies:create", kwargs={"policy_type": "firewall"}),
        {"platform": "windows", "profile": "microsoft-defender-firewall-rules"},
    )
    assert response.status_code == 302
    draft = PolicyDraft.objects.latest("id")
    author.post(step_url(draft, "basics"), {"name": "Mine", "description": "", "nav": "stay"})
    author.post(
        rule_url(draft, "new"), {R + "name": "RDP", R + "protocol": "6", R + "localportranges": "3389"}
    )
    draft.refresh_from_db()
    assert draft.data["name"] == "Mine" and len(draft.data["values"][FIREWALL_RULE_GROUP_ID]) == 1
    return draft


def unchanged(draft: PolicyDraft) -> bool:
    before = (draft.data, draft.step, draft.updated_at)
    fresh = PolicyDraft.objects.get(pk=draft.pk)
    return (fresh.data, fresh.step, fresh.updated_at) == before


@pytest.mark.parametrize("step", STEPS)
def test_it_hides_every_step_of_another_users_draft(intruder, firewall_draft, step):
    assert intruder.get(step_url(firewall_draft, step)).status_code == 404
    assert intruder.get(step_url(firewall_draft, step), **HTMX).status_code == 404


@pytest.mark.parametrize(
    ("step", "post"),
    [
        ("basics", {"name": "Hijacked", "description": "by someone else", "nav": "next"}),
        ("settings", {"remove_rule": "0"}),
        ("settings", {"shown": [], "nav": "stay"}),
        ("assignments", {"include": [], "nav": "next"}),
        ("review", {"nav": "create"}),
    ],
)
def test_it_refuses_writes_to_another_users_draft_and_changes_nothing(intruder, firewall_draft, step, post):
    assert intruder.post(step_url(firewall_draft, step), post).status_code == 404
    assert intruder.post(step_url(firewall_draft, step), post, **HTMX).status_code == 404  # the htmx autosave
    assert unchanged(firewall_draft)


def test_it_hides_the_firewall_rule_editor_and_impact_preview_of_another_users_draft(
    intruder, firewall_draft
):
    assert intruder.get(rule_url(firewall_draft, "new")).status_code == 404
    assert intruder.get(rule_url(firewall_draft, 0), **HTMX).status_code == 404
    rule = {R + "name": "Backdoor", R + "protocol": "6", R + "localportranges": "4444", R + "direction": "in"}
    assert intruder.post(rule_url(firewall_draft, "new"), rule).status_code == 404
    assert intruder.post(rule_url(firewall_draft, 0), rule, **HTMX).status_code == 404
    assert intruder.get(impact_url(firewall_draft)).status_code == 404
    assert unchanged(firewall_draft)


def test_it_hides_another_users_edit_draft_of_an_existing_policy(author, intruder, firewall_draft):
    for step in ("settings", "assignments", "review"):
        author.post(step_url(firewall_draft, step), {"nav": "next"})
    author.post(step_url(firewall_draft, "review"), {"nav": "create"})
    policy = Policy.objects.get(name="Mine")
    response = author.get(
        reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": "basics"})
    )
    edit_draft = PolicyDraft.objects.exclude(pk=firewall_draft.pk).get(policy=policy)  # not the finished one
    assert response["Location"] == step_url(edit_draft, "basics")
    assert intruder.get(step_url(edit_draft, "basics")).status_code == 404
    assert (
        intruder.post(step_url(edit_draft, "basics"), {"name": "Renamed", "nav": "next"}).status_code == 404
    )
    assert unchanged(edit_draft)


def test_it_still_lets_the_author_work_on_their_draft(author, firewall_draft):
    for step in STEPS:
        assert author.get(step_url(firewall_draft, step)).status_code == 200
    assert author.get(rule_url(firewall_draft, 0)).status_code == 200
    assert author.get(impact_url(firewall_draft)).status_code == 200
    response = author.post(step_url(firewall_draft, "basics"), {"name": "Still mine", "nav": "stay"}, **HTMX)
    assert response.status_code == 200
    assert PolicyDraft.objects.get(pk=firewall_draft.pk).data["name"] == "Still mine"


def test_it_opens_each_persons_own_edit_draft_of_the_same_policy(author, intruder, firewall_draft):
    author.post(step_url(firewall_draft, "review"), {"nav": "create"})
    policy = Policy.objects.get(name="Mine")
    edit = reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": "basics"})
    mine, theirs = author.get(edit)["Location"], intruder.get(edit)["Location"]
    assert mine != theirs
    assert intruder.get(theirs).status_code == 200 and intruder.get(mine).status_code == 404


def test_it_tells_a_read_only_operator_they_cannot_change_policies(reader, firewall_draft):
    other = Client()
    other.force_login(reader)
    assert other.get(step_url(firewall_draft, "basics")).status_code == 403
    assert other.post(step_url(firewall_draft, "basics"), {"name": "x", "nav": "next"}).status_code == 403
    assert unchanged(firewall_draft)
