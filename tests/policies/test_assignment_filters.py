"""Tenant administration › Filters (Intune's assignment filters): create, edit, delete with audit, preview devices,
refusal to delete a filter in use, and filters chosen per group assignment in the wizard."""

from __future__ import annotations

from html import unescape

import pytest
from django.urls import reverse

from console.models import AuditEvent
from policies import assignment_filters, engine, services
from policies.models import AssignmentFilter, PolicyAssignment
from policies.preview import saved_policy_inputs
from tests.policies.conftest import AV
from tests.policies.test_policy_pages import saved, start, step_url

RULE = '(device.deviceName -startsWith "WS-0")'


def html(response) -> str:
    return unescape(response.content.decode())


@pytest.mark.django_db
def test_an_admin_creates_a_filter_and_the_audit_log_has_it(ga_client):
    r = ga_client.post(
        reverse("policies:filter_create"),
        {"name": "Workstations 0xx", "description": "d", "platform": "windows", "rule": RULE},
    )
    created = AssignmentFilter.objects.get(name="Workstations 0xx")
    assert r.status_code == 302 and r["Location"] == reverse("policies:filter_detail", args=[created.pk])
    event = AuditEvent.objects.get(action="filter.create")
    assert event.before is None and event.after["rule"] == RULE
    listing = html(ga_client.get(reverse("policies:filter_list")))
    assert "Workstations 0xx" in listing and RULE in listing


@pytest.mark.django_db
def test_a_bad_rule_is_refused_beside_the_field_with_the_column_and_nothing_is_saved(ga_client):
    rule = '(device.deviceName -eq "x" and (device.osVersion -eq "1")'
    r = ga_client.post(
        reverse("policies:filter_create"), {"name": "Broken", "platform": "windows", "rule": rule}
    )
    page = html(r)
    assert r.status_code == 400
    assert f"Column {len(rule) + 1}: unbalanced parentheses" in page
    assert 'aria-label="Where the rule is invalid"' in page
    assert rule in page  # what was typed stays
    assert not AssignmentFilter.objects.filter(name="Broken").exists()


@pytest.mark.django_db
def test_preview_devices_lists_the_matching_devices_of_the_platform_and_saves_nothing(ga_client, fleet):
    r = ga_client.post(
        reverse("policies:filter_create"),
        {"name": "P", "platform": "windows", "rule": RULE, "preview": "1"},
    )
    page = html(r)
    assert r.status_code == 200
    for name in ("WS-001", "WS-002", "WS-003"):
        assert f'data-device="{name}"' in page
    assert 'data-device="WS-INTUNE-1"' not in page and 'data-device="SQL-01"' not in page
    assert "3 of 8 devices of this platform match the rule" in page  # Windows and Windows Server
    assert not AssignmentFilter.objects.exists()


@pytest.mark.django_db
def test_editing_a_filter_is_audited_with_before_and_after(ga_client):
    f = AssignmentFilter.objects.create(name="F", rule=RULE)
    r = ga_client.post(
        reverse("policies:filter_edit", args=[f.pk]),
        {"name": "F", "platform": "windows", "rule": '(device.osVersion -startsWith "10.0.26100")'},
    )
    assert r.status_code == 302
    event = AuditEvent.objects.get(action="filter.update")
    assert event.before == {"rule": RULE}
    assert event.after == {"rule": '(device.osVersion -startsWith "10.0.26100")'}


@pytest.mark.django_db
def test_a_filter_in_use_cannot_be_deleted_and_the_refusal_names_the_policies(ga_client, fleet):
    f = AssignmentFilter.objects.create(name="Laptops", rule=RULE)
    policy = services.create_policy(
        AV,
        "windows",
        "AV for laptops",
        "",
        {},
        {"include": [fleet.workstations.pk], "filters": [[fleet.workstations.pk, f.pk, "include"]]},
    )
    page = html(ga_client.get(reverse("policies:filter_delete", args=[f.pk])))
    assert "can't be deleted while policies use it" in page and "AV for laptops" in page
    r = ga_client.post(reverse("policies:filter_delete", args=[f.pk]), follow=True)
    assert "“Laptops” can't be deleted: 1 policy uses it (“AV for laptops”)" in html(r)
    assert AssignmentFilter.objects.filter(pk=f.pk).exists()

    services.set_assignments(policy, {"include": [fleet.workstations.pk]})
    r = ga_client.post(reverse("policies:filter_delete", args=[f.pk]))
    assert r.status_code == 302 and not AssignmentFilter.objects.filter(pk=f.pk).exists()
    assert AuditEvent.objects.get(action="filter.delete").before["name"] == "Laptops"


@pytest.mark.django_db
def test_a_read_only_operator_sees_filters_but_cannot_change_them(reader_client):
    f = AssignmentFilter.objects.create(name="F", rule=RULE)
    assert reader_client.get(reverse("policies:filter_detail", args=[f.pk])).status_code == 200
    r = reader_client.post(reverse("policies:filter_edit", args=[f.pk]), {"name": "G", "rule": RULE})
    assert r.status_code == 403 and AssignmentFilter.objects.get(pk=f.pk).name == "F"


@pytest.mark.django_db
def test_the_wizard_stores_a_filter_per_included_group(ga_client, fleet):
    laptops = AssignmentFilter.objects.create(name="Laptops", rule=RULE)
    draft = start(ga_client)
    shown = [fleet.workstations.pk, fleet.servers.pk, fleet.pilot.pk]
    r = ga_client.post(
        step_url(draft, "assignments"),
        {
            "shown_group": shown,
            "include": [fleet.workstations.pk, fleet.servers.pk],
            "exclude": [fleet.pilot.pk],
            f"filter-{fleet.workstations.pk}": str(laptops.pk),
            f"filter_mode-{fleet.workstations.pk}": "exclude",
            f"filter-{fleet.servers.pk}": "",
            f"filter_mode-{fleet.servers.pk}": "include",
            "nav": "stay",
        },
    )
    assert r.status_code in (200, 302)
    assert saved(draft)["assignments"]["filters"] == [[fleet.workstations.pk, laptops.pk, "exclude"]]
    page = html(ga_client.get(step_url(draft, "assignments")))
    row = page[page.index(f'name="filter-{fleet.workstations.pk}"') :]
    assert f'<option value="{laptops.pk}" selected>Laptops</option>' in row[: row.index("</select>")]

    ga_client.post(step_url(draft, "basics"), {"name": "Per-row filters", "nav": "stay"})
    ga_client.post(step_url(draft, "review"), {"nav": "create"})
    rows = dict(
        PolicyAssignment.objects.filter(policy__name="Per-row filters", intent="include").values_list(
            "group_id", "filter_mode"
        )
    )
    assert rows == {fleet.workstations.pk: "exclude", fleet.servers.pk: ""}


@pytest.mark.django_db
def test_a_filter_for_a_group_that_is_not_included_is_ignored_and_a_forged_filter_is_refused(
    ga_client, fleet
):
    draft = start(ga_client)
    r = ga_client.post(
        step_url(draft, "assignments"),
        {
            "shown_group": [fleet.workstations.pk, fleet.servers.pk],
            "include": [fleet.workstations.pk],
            f"filter-{fleet.workstations.pk}": "not-a-filter",
            f"filter_mode-{fleet.workstations.pk}": "include",
            f"filter-{fleet.servers.pk}": "1",
            "nav": "stay",
        },
    )
    assert "The assignment filter chosen for “Workstations” doesn't exist" in html(r)
    assert saved(draft)["assignments"]["include"] == []  # nothing saved from a refused post


@pytest.mark.django_db
def test_the_engine_names_the_filter_of_the_assignment_that_kept_an_intune_device_out(fleet):
    never = AssignmentFilter.objects.create(name="Nobody", rule='(device.deviceName -eq "nothing")')
    policy = services.create_policy(
        AV,
        "windows",
        "Filtered AV",
        "",
        {},
        {"include": [fleet.workstations.pk], "filters": [[fleet.workstations.pk, never.pk, "include"]]},
    )
    inputs = {p.id: p for p in saved_policy_inputs()}
    facts = engine.DeviceFacts(
        device_id="x",
        os="windows",
        channel="intune",
        group_ids=frozenset({fleet.workstations.pk}),
        filter_matches={never.pk: False},
    )
    from policies.catalog import get_catalog

    outcome = engine.resolve(facts, [inputs[policy.pk]], get_catalog()).policies[policy.pk]
    assert outcome.reason == (
        "The device doesn't match assignment filter 'Nobody', which this policy uses to include devices."
    )
    assert str(never.pk) not in outcome.reason.replace("Nobody", "")


@pytest.mark.django_db
def test_the_supported_properties_are_listed_on_the_form(ga_client):
    page = html(ga_client.get(reverse("policies:filter_create")))
    for prop in assignment_filters.SUPPORTED_PROPERTIES:
        assert prop in page


@pytest.mark.django_db
def test_editing_assignments_changes_one_groups_filter_and_review_says_which(ga_client, fleet):
    laptops = AssignmentFilter.objects.create(name="Laptops", rule=RULE)
    policy = services.create_policy(
        AV, "windows", "Two groups", "", {}, {"include": [fleet.workstations.pk, fleet.servers.pk]}
    )
    r = ga_client.get(
        reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": "assignments"})
    )
    assert r.status_code == 302
    step = r["Location"]
    ga_client.post(
        step,
        {
            "shown_group": [fleet.workstations.pk, fleet.servers.pk],
            "include": [fleet.workstations.pk, fleet.servers.pk],
            f"filter-{fleet.servers.pk}": str(laptops.pk),
            f"filter_mode-{fleet.servers.pk}": "include",
            "nav": "stay",
        },
    )
    review = html(ga_client.get(step.replace("/assignments/", "/review/")))
    assert "Assignment filter of Servers" in review and "Laptops (Include filtered devices)" in review
    assert "Assignment filter of Workstations" not in review


@pytest.mark.django_db
def test_the_check_in_names_the_filter_that_kept_an_intune_device_out_never_its_id():
    from devices import channel
    from reports.pending import bump_generation
    from tests.checkins import fleet as f

    g = f.group("Filtered")
    outside = f.device("INT-OUT", groups=[g], intune=True)
    flt = AssignmentFilter.objects.create(name="Only WS", rule=RULE)
    f.policy("AV filtered", {f.PUA: 1}, include=[g], filter=flt, filter_mode="include")
    bump_generation(None)

    resolution, _, _ = channel.current_context().resolve(channel.load_device(outside.pk))
    (outcome,) = resolution.policies.values()
    assert not outcome.targeted
    assert outcome.reason == (
        "The device doesn't match assignment filter 'Only WS', which this policy uses to include devices."
    )
