"""Done means for scope tags (issue 13): a Global Administrator makes a scope tag, a colleague and a custom role
scoped to one group with that tag; the colleague, in a second browser, sees only the tagged policies and that
group's devices, and the overview's numbers are theirs."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from console import scopetags
from devices.models import Device, Group, GroupMember
from policies import services

pytestmark = pytest.mark.browser

PASSWORD = "Vq7!paris-ops-2026"
AV = "Microsoft Defender Antivirus"


def test_a_colleague_with_a_tagged_assignment_sees_only_tagged_policies_and_scoped_devices(
    login, global_admin, live_server, browser
):
    servers = Group.objects.create(name="Servers")
    for name in ("SRV-DB-01", "SRV-WEB-01"):
        device = Device.objects.create(display_name=name, os="windows", managed_by="mde")
        GroupMember.objects.create(group=servers, device=device)
    Device.objects.create(display_name="LAPTOP-HR-07", os="windows", managed_by="mde")

    page = login(global_admin, "/tenant-admin/scope-tags/new/")
    page.fill("#id_name", "Paris")
    page.fill("#id_description", "Paris office")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#scope-tags")).to_contain_text("Paris office")
    paris = scopetags.tags().get(name="Paris")
    services.create_policy(AV, "windows", "AV Paris", "", {}, scope_tags=[paris])
    services.create_policy(AV, "windows", "AV Berlin untagged", "", {})

    page.goto(f"{live_server.url}/tenant-admin/users/new/")
    page.fill("#id_username", "pia")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Create").click()
    expect(page.locator("body")).to_contain_text("pia was created")
    page.goto(f"{live_server.url}/tenant-admin/roles/new/")
    page.fill("#id_name", "Paris policy reader")
    page.get_by_label("Managed devices: Read").check()
    page.get_by_label("Endpoint security policies: Read").check()
    page.get_by_role("button", name="Create").click()
    page.fill("#assign-form #id_name", "Paris readers")
    page.select_option("#id_members", label="pia")
    page.select_option("#id_scope_groups", label="Servers")
    page.select_option("#id_scope_tags", label="Paris")
    page.click("#assign-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Paris policy reader was assigned")
    expect(page.locator("table.grid").last).to_contain_text("Paris")

    colleague = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    colleague.goto(f"{live_server.url}/login/?next=/endpoint-security/antivirus/")
    colleague.fill("#id_username", "pia")
    colleague.fill("#id_password", PASSWORD)
    colleague.click("button[type=submit]")
    listed = colleague.locator("#list table")
    expect(listed).to_contain_text("AV Paris")
    expect(listed).not_to_contain_text("AV Berlin untagged")
    colleague.goto(f"{live_server.url}/endpoint-security/reports/overview/")
    expect(colleague.get_by_test_id("kpi-managed")).to_have_text("2")  # the two servers, not the laptop
    colleague.goto(f"{live_server.url}/devices/")
    expect(colleague.locator("#list table")).not_to_contain_text("LAPTOP-HR-07")
    assert colleague.goto(f"{live_server.url}/tenant-admin/scope-tags/new/").status == 403
    colleague.context.close()
