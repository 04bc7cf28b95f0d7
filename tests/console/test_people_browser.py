"""A Global Administrator adds a colleague with a custom role scoped to one group; the colleague, in a second
browser, sees only that group's devices and can do only what the role allows."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from devices.models import Device, Group, GroupMember

pytestmark = pytest.mark.browser

COLLEAGUE_PASSWORD = "Vq7!server-ops-2026"


def _fleet():
    servers = Group.objects.create(name="Servers")
    for name in ("SRV-DB-01", "SRV-WEB-01"):
        GroupMember.objects.create(
            group=servers, device=Device.objects.create(display_name=name, os="windows")
        )
    outside = Device.objects.create(display_name="LAPTOP-HR-07", os="windows")
    return outside


def test_a_global_admin_gives_a_colleague_a_scoped_custom_role(login, global_admin, live_server, browser):
    outside = _fleet()
    page = login(global_admin, "/tenant-admin/users/new/")
    page.fill("#id_username", "sam")
    page.fill("#id_email", "sam@contoso.com")
    page.fill("#id_password", COLLEAGUE_PASSWORD)
    page.get_by_role("button", name="Create").click()
    expect(page.locator("body")).to_contain_text("sam was created")

    page.goto(f"{live_server.url}/tenant-admin/roles/new/")
    page.fill("#id_name", "Server viewer")
    page.get_by_label("Managed devices: Read").check()
    page.get_by_role("button", name="Create").click()
    expect(page.locator("h1")).to_have_text("Server viewer")
    page.fill("#assign-form #id_name", "Server viewers")
    page.select_option("#id_members", label="sam")
    page.select_option("#id_scope_groups", label="Servers")
    page.click("#assign-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Server viewer was assigned")

    colleague = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    colleague.goto(f"{live_server.url}/login/?next=/devices/")
    colleague.fill("#id_username", "sam")
    colleague.fill("#id_password", COLLEAGUE_PASSWORD)
    colleague.click("button[type=submit]")
    expect(colleague.locator("h1")).to_contain_text("All devices")
    table = colleague.locator("#list table")
    expect(table).to_contain_text("SRV-DB-01")
    expect(table).to_contain_text("SRV-WEB-01")
    expect(table).not_to_contain_text("LAPTOP-HR-07")
    expect(colleague.locator(".commandbar")).not_to_contain_text("Delete")
    expect(colleague.locator(".commandbar")).not_to_contain_text("Policy sync")

    assert colleague.goto(f"{live_server.url}/devices/{outside.pk}/").status == 404
    assert colleague.goto(f"{live_server.url}/groups/").status == 403
    assert colleague.goto(f"{live_server.url}/tenant-admin/users/").status == 403
    colleague.context.close()
