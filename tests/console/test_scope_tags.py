"""Intune's scope tags: tags on policies and device groups, carried by role assignments, decide what an admin
sees; Tenant administration › Scope tags manages them, audit-logged with before and after."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from console import rbac, scopetags
from console.audit import Actor, acting_as
from console.models import AuditEvent, ScopeTag
from devices import services as device_services
from devices.models import Group
from policies import services, wizard
from policies.catalog import get_catalog
from policies.models import Policy

pytestmark = pytest.mark.django_db
AV = "Microsoft Defender Antivirus"
READ_POLICIES = ["Endpoint security policies: Read", "Groups: Read"]


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _admin(client, username: str, tags: list[ScopeTag], actions=READ_POLICIES, scope_groups=()):
    role = rbac.create_role(name=f"{username} role", actions=list(actions))
    user = get_user_model().objects.create_user(username, password="x-Unused-1234")
    rbac.create_assignment(
        name=f"{username} holds", role=role, members=[user], scope_groups=list(scope_groups), scope_tags=tags
    )
    client.force_login(user)
    return user


def _policy(name: str, tags=()) -> Policy:
    return services.create_policy(AV, "windows", name, "", {}, scope_tags=list(tags))


def _listed_policies(client) -> list[str]:
    page = client.get(reverse("policies:list", kwargs={"policy_type": "antivirus"}))
    return sorted(r.record.name for r in page.context["table"].rows)


def test_an_admin_sees_only_policies_that_share_a_tag_with_their_assignment(client):
    paris, berlin = scopetags.create_tag(name="Paris"), scopetags.create_tag(name="Berlin")
    _policy("AV untagged")
    _policy("AV Paris", [paris])
    _policy("AV Berlin", [berlin])
    _policy("AV Paris and Berlin", [paris, berlin])
    _admin(client, "pia", [paris])

    assert _listed_policies(client) == ["AV Paris", "AV Paris and Berlin"]
    hidden = Policy.objects.get(name="AV Berlin")
    assert client.get(reverse("policies:detail", kwargs={"policy_id": hidden.policy_id})).status_code == 404
    overview = client.get(reverse("policies:overview"))
    assert overview.context["total"] == 2


def test_an_assignment_without_tags_has_the_default_tag_and_sees_untagged_objects(client):
    paris = scopetags.create_tag(name="Paris")
    _policy("AV untagged")
    _policy("AV Paris", [paris])
    Group.objects.create(name="Untagged servers")
    Group.objects.create(name="Paris servers").scope_tags.set([paris])
    _admin(client, "dee", [])

    assert _listed_policies(client) == ["AV untagged"]
    groups = client.get(reverse("devices:group_list"))
    assert [r.record.name for r in groups.context["table"].rows] == ["Untagged servers"]
    hidden = Group.objects.get(name="Paris servers")
    assert client.get(reverse("devices:group_detail", args=[hidden.pk])).status_code == 404


def test_a_global_administrator_sees_every_tagged_object(ga_client):
    paris = scopetags.create_tag(name="Paris")
    _policy("AV untagged")
    _policy("AV Paris", [paris])
    assert _listed_policies(ga_client) == ["AV Paris", "AV untagged"]


def test_a_global_administrator_assignment_sees_everything_whatever_its_tags(client):
    paris = scopetags.create_tag(name="Paris")
    _policy("AV untagged")
    _policy("AV Paris", [paris])
    user = get_user_model().objects.create_user("gail", password="x-Unused-1234")
    rbac.create_assignment(
        name="Global",
        role=rbac.get_role("Global Administrator"),
        members=[user],
        scope_groups=[],
        scope_tags=[paris],
    )
    client.force_login(user)
    assert _listed_policies(client) == ["AV Paris", "AV untagged"]


def test_the_scope_tags_page_creates_edits_and_deletes_with_before_and_after(ga_client):
    created = ga_client.post(reverse("scope_tag_create"), {"name": "Paris", "description": "Paris office"})
    assert created.status_code == 302
    tag = ScopeTag.objects.get(name="Paris")
    listed = ga_client.get(reverse("scope_tags")).content.decode()
    assert "Paris office" in listed and "Default" in listed

    ga_client.post(
        reverse("scope_tag_detail", args=[tag.pk]), {"name": "Paris HQ", "description": "Paris office"}
    )
    update = AuditEvent.objects.get(action="scopetag.update")
    assert update.before == {"name": "Paris"} and update.after == {"name": "Paris HQ"}

    ga_client.post(reverse("scope_tag_delete", args=[tag.pk]))
    assert not ScopeTag.objects.filter(pk=tag.pk).exists()
    assert AuditEvent.objects.get(action="scopetag.delete").before["name"] == "Paris HQ"
    assert AuditEvent.objects.get(action="scopetag.create").after["name"] == "Paris"


def test_the_scope_tags_page_refuses_a_taken_name_and_keeps_the_input(ga_client):
    scopetags.create_tag(name="Paris")
    response = ga_client.post(reverse("scope_tag_create"), {"name": "paris", "description": "typed text"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "already exists" in page and "typed text" in page
    assert ScopeTag.objects.filter(name__iexact="paris").count() == 1


def test_a_tag_in_use_is_not_deleted_and_the_page_says_where(ga_client):
    paris = scopetags.create_tag(name="Paris")
    _policy("AV Paris", [paris])
    response = ga_client.post(reverse("scope_tag_delete", args=[paris.pk]), follow=True)
    assert "still on 1 policies" in response.content.decode()
    assert ScopeTag.objects.filter(pk=paris.pk).exists()


def test_the_default_tag_cannot_be_changed_or_deleted(ga_client):
    default = scopetags.default_tag()
    assert (
        ga_client.post(reverse("scope_tag_detail", args=[default.pk]), {"name": "Other"}).status_code == 403
    )
    ga_client.post(reverse("scope_tag_delete", args=[default.pk]))
    assert ScopeTag.objects.filter(pk=default.pk, name="Default").exists()


def test_the_wizard_basics_step_offers_only_the_admins_tags_and_stores_the_choice(client):
    paris, berlin = scopetags.create_tag(name="Paris"), scopetags.create_tag(name="Berlin")
    user = _admin(client, "cal", [paris], actions=[*READ_POLICIES, "Endpoint security policies: Create"])
    draft = wizard.new_create_draft(user, get_catalog().profile(AV), "windows")
    url = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "basics"})
    page = client.get(url)
    choices = [label for _, label in page.context["form"].fields["scope_tags"].choices]
    assert choices == ["Paris"]
    assert page.context["form"].initial["scope_tags"] == [paris.pk]

    refused = client.post(url, {"name": "AV Berlin", "scope_tags": [berlin.pk], "nav": "next"})
    assert refused.status_code == 200 and "scope_tags" in refused.context["form"].errors
    client.post(url, {"name": "AV Paris", "scope_tags": [paris.pk], "nav": "next"})
    draft.refresh_from_db()
    assert wizard.state(draft)["scope_tags"] == [paris.pk]
    with acting_as(Actor(user=user, name="cal", source="ui")):
        policy = wizard.commit(draft, user)
    assert scopetags.names_of(policy) == ["Paris"]
    assert AuditEvent.objects.get(action="policy.create").after["scope_tags"] == ["Paris"]


def test_a_policy_created_without_a_choice_gets_the_creators_tags():
    paris = scopetags.create_tag(name="Paris")
    user = get_user_model().objects.create_user("pat", password="x-Unused-1234")
    role = rbac.create_role(name="Creators", actions=["Endpoint security policies: Create"])
    rbac.create_assignment(
        name="Paris creators", role=role, members=[user], scope_groups=[], scope_tags=[paris]
    )
    with acting_as(Actor(user=user, name="pat", source="ui")):
        policy = services.create_policy(AV, "windows", "AV by pat", "", {})
        with pytest.raises(services.PolicyError, match="isn't one of yours"):
            services.create_policy(AV, "windows", "AV default", "", {}, scope_tags=[scopetags.default_tag()])
    assert scopetags.names_of(policy) == ["Paris"]


def test_a_group_form_sets_tags_and_the_change_is_audited(ga_client):
    paris = scopetags.create_tag(name="Paris")
    response = ga_client.post(
        reverse("devices:group_create"),
        {
            "name": "Paris servers",
            "object_kind": "device",
            "membership_type": "assigned",
            "scope_tags": [paris.pk],
        },
    )
    assert response.status_code == 302, response.content
    group = Group.objects.get(name="Paris servers")
    assert scopetags.names_of(group) == ["Paris"]
    ga_client.post(
        reverse("devices:group_edit", args=[group.pk]),
        {"name": "Paris servers", "object_kind": "device", "membership_type": "assigned", "scope_tags": []},
    )
    assert scopetags.names_of(group) == ["Default"]
    update = AuditEvent.objects.get(action="group.update")
    assert update.before["scope_tags"] == ["Paris"] and update.after["scope_tags"] == ["Default"]


def test_the_wizard_group_picker_offers_only_groups_in_the_admins_scope(client):
    servers, kiosks = Group.objects.create(name="Servers"), Group.objects.create(name="Kiosks")
    paris = scopetags.create_tag(name="Paris")
    Group.objects.create(name="Paris servers").scope_tags.set([paris])
    user = _admin(
        client,
        "sam",
        [],
        actions=[*READ_POLICIES, "Endpoint security policies: Create", "Endpoint security policies: Assign"],
        scope_groups=[servers],
    )
    draft = wizard.new_create_draft(user, get_catalog().profile(AV), "windows")
    url = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "assignments"})
    page = client.get(url)
    assert [row.group.name for row in page.context["group_rows"]] == ["Servers"]
    assert page.context["group_total"] == 1
    refused = client.post(url, {"shown_group": [kiosks.pk], "include": [kiosks.pk], "nav": "next"})
    assert "outside the scope of your role assignment" in refused.content.decode()


def test_a_tag_hidden_group_is_refused_as_a_target_on_save():
    paris = scopetags.create_tag(name="Paris")
    hidden = Group.objects.create(name="Paris servers")
    with acting_as(Actor(name="system")):
        device_services.update_group(hidden, scope_tags=[paris])
    user = get_user_model().objects.create_user("tim", password="x-Unused-1234")
    role = rbac.create_role(
        name="Authors", actions=["Endpoint security policies: Create", "Endpoint security policies: Assign"]
    )
    rbac.create_assignment(name="Default authors", role=role, members=[user], scope_groups=[])
    with (
        acting_as(Actor(user=user, name="tim", source="ui")),
        pytest.raises(services.PolicyError, match="outside"),
    ):
        services.create_policy(AV, "windows", "AV", "", {}, {"include": [hidden.pk]})


def test_a_hidden_policys_report_pages_are_not_found_for_an_admin_without_its_tag(client):
    paris = scopetags.create_tag(name="Paris")
    hidden = _policy("AV Paris", [paris])
    shown = _policy("AV untagged")
    _admin(client, "rex", [])
    for name in ("reports:policy_monitor", "reports:policy_devices"):
        assert client.get(reverse(name, kwargs={"policy_id": hidden.policy_id})).status_code == 404
        assert client.get(reverse(name, kwargs={"policy_id": shown.policy_id})).status_code == 200
    issues = client.get(reverse("reports:issue_devices"))
    choices = issues.context["filterset"].form.fields["policy"].choices
    assert [label for value, label in choices if value] == ["AV untagged"]
