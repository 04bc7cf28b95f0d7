"""Assignment filters in the browser (issue 16 item 7): create a filter with Intune's rule syntax, preview its
devices, assign a policy to a group with that filter in Include mode, and see the Intune-enrolled device outside
the filter left out by name of the filter while devices managed by Defender for Endpoint ignore it, with the
warning. Screenshots land in /tmp/shots/filters-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from devices.models import GroupMember
from policies.models import AssignmentFilter, Policy

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"filters-{name}.png"), full_page=True)


def test_a_filter_is_created_previewed_and_used_per_group_assignment_in_the_browser(
    login, global_admin, fleet
):
    outside = fleet.device("LAPTOP-INTUNE-9", channel="intune")
    GroupMember.objects.create(group=fleet.workstations, device=outside)

    page = login(global_admin, "/tenant-admin/")
    page.click("text=Filters")
    expect(page.locator("h1")).to_contain_text("Filters")
    page.click("#create-filter")

    # A rule with a mistake is refused at its column; the corrected rule previews its devices.
    page.fill("#id_name", "Intune workstations")
    page.fill("#id_rule", '(device.deviceName -startsWith "WS-INTUNE"')
    page.click("#preview-filter")
    expect(page.locator("#error-rule")).to_contain_text("Column 43: unbalanced parentheses")
    page.fill("#id_rule", '(device.deviceName -startsWith "WS-INTUNE")')
    page.click("#preview-filter")
    preview = page.locator("#filter-preview")
    expect(preview).to_contain_text("1 of 9 devices of this platform match the rule")
    expect(preview.locator('[data-device="WS-INTUNE-1"]')).to_contain_text("Honoured")
    expect(preview.locator('[data-device="LAPTOP-INTUNE-9"]')).to_have_count(0)
    shot(page, "preview")
    page.click("#save-filter")
    expect(page.locator("#filter-rule")).to_have_text('(device.deviceName -startsWith "WS-INTUNE")')
    created = AssignmentFilter.objects.get(name="Intune workstations")

    # A policy assigned to Workstations with that filter in Include mode, chosen on the group's row.
    page.goto(page.url.split("/tenant-admin/")[0] + "/endpoint-security/antivirus/")
    page.click(".commandbar >> text=Create Policy")
    page.select_option("#id_profile", "microsoft-defender-antivirus")
    page.click("#create-form button.btn-primary")
    expect(page.locator('#wizard[data-step="basics"]')).to_be_visible()
    page.fill("#id_name", "AV for Intune workstations")
    page.click("#wizard-next")
    expect(page.locator('#wizard[data-step="settings"]')).to_be_visible()
    page.click("#wizard-next")  # no settings needed to see the assignment
    expect(page.locator('#wizard[data-step="assignments"]')).to_be_visible()
    page.check(f"#inc-{fleet.workstations.pk}")
    page.select_option(f"#filter-{fleet.workstations.pk}", str(created.pk))
    page.select_option(f"#filter-mode-{fleet.workstations.pk}", "include")
    page.click("#update-preview")
    expect(page.locator("#impact-devices")).to_contain_text("LAPTOP-INTUNE-9")
    expect(page.locator(f"#filter-{fleet.workstations.pk}")).to_have_value(str(created.pk))
    devices = page.locator("#impact-devices")
    outside_row = devices.locator("tr", has_text="LAPTOP-INTUNE-9")
    expect(outside_row).to_contain_text("Not targeted")
    expect(outside_row).to_contain_text(
        "The device doesn't match assignment filter 'Intune workstations', which this policy uses to include devices."
    )
    expect(devices.locator("tr", has_text="WS-INTUNE-1")).to_contain_text("Receives the policy")
    expect(devices.locator("tr", has_text="WS-001")).to_contain_text("Receives the policy")
    expect(page.locator("#wizard")).to_contain_text(
        "will ignore the assignment filter and receive the policy anyway"
    )
    shot(page, "assignments")
    page.click("#wizard-next")
    expect(page.locator('#wizard[data-step="review"]')).to_be_visible()
    expect(page.locator("#wizard")).to_contain_text("filter Intune workstations, Include filtered devices")
    page.click("#wizard-commit")
    expect(page.locator("h1")).to_contain_text("AV for Intune workstations")
    policy = Policy.objects.get(name="AV for Intune workstations")
    assert list(policy.assignments.values_list("group_id", "filter_id", "filter_mode")) == [
        (fleet.workstations.pk, created.pk, "include")
    ]
    expect(page.locator("main")).to_contain_text("devices ignore the filter")
    shot(page, "policy")

    # The device pages: an MDE-managed device shows the policy with the warning; the Intune-enrolled device
    # outside the filter doesn't get the policy at all.
    base = page.url.split("/endpoint-security/")[0]
    page.goto(base + reverse("checkins:device_panel", args=[fleet.ws1.pk]))
    row = page.locator('[data-policy="AV for Intune workstations"]')
    expect(row.locator('[data-testid="filter-ignored"]')).to_have_text("Assignment filter ignored")
    expect(page.locator('[data-testid="filter-warning"]')).to_contain_text("ignore the filter")
    shot(page, "mde-device")
    page.goto(base + reverse("checkins:device_panel", args=[outside.pk]))
    expect(page.locator('[data-policy="AV for Intune workstations"]')).to_have_count(0)
    page.goto(base + reverse("checkins:device_panel", args=[fleet.intune1.pk]))
    expect(page.locator('[data-policy="AV for Intune workstations"]')).to_be_visible()
    expect(page.locator('[data-testid="filter-ignored"]')).to_have_count(0)

    # The filter in use can't be deleted; the refusal names the policy.
    page.goto(base + f"/tenant-admin/filters/{created.pk}/delete/")
    expect(page.locator("main")).to_contain_text("can't be deleted while policies use it")
    expect(page.locator("main")).to_contain_text("AV for Intune workstations")
