"""Real Chromium walks the seed's behaviours on the device page as a new admin would (issue 16)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from devices import services
from tests.devices.device_factories import make_device, set_tenant

pytestmark = pytest.mark.browser


def test_it_labels_a_server_hybrid_joined_by_the_flow_mdejoined_and_mdemanaged(login, global_admin):
    set_tenant()
    device = make_device(
        display_name="SRV-FILE-01", os="windows_server", join_type="domain_joined", in_sync_scope=True
    )
    services.reevaluate_device(device)

    page = login(global_admin, f"/devices/{device.pk}/")
    labels = page.locator("#device-status [data-field=labels]")
    expect(labels).to_contain_text("MDEManaged")
    expect(labels).to_contain_text("MDEJoined")


def test_it_says_a_device_left_the_enforcement_scope_and_when(login, global_admin):
    set_tenant(windows_client_scope="tagged")
    device = make_device(display_name="CONTOSO-WS-0077", tags=["MDE-Management"])
    services.reevaluate_device(device)
    device.refresh_from_db()
    assert device.is_mde_managed
    device.tags = ""  # the pilot tag is removed in the Defender portal
    device.save(update_fields=["tags"])
    services.reevaluate_device(device)

    page = login(global_admin, f"/devices/{device.pk}/")
    status = page.locator("#device-status")
    expect(status.locator("[data-field=enrollment_status]")).to_contain_text("Left the enforcement scope")
    expect(status.locator("[data-field=left_at]")).to_contain_text("since")
    expect(status).to_contain_text("was enrolled and has left the Enforcement Scope")
    expect(status).not_to_contain_text("never been enrolled")


def test_it_shows_tamper_protection_on_the_device_page_and_filters_all_devices_by_it(login, global_admin):
    set_tenant()
    off = make_device(display_name="CONTOSO-WS-0300", tamper_protection=False)
    make_device(display_name="CONTOSO-WS-0301", tamper_protection=True)

    page = login(global_admin, f"/devices/{off.pk}/")
    expect(page.locator("[data-field=tamper_protection]")).to_contain_text("Off")
    expect(page.locator("[data-field=mde_onboarded]")).to_contain_text("Yes")

    page.goto(page.url.split("/devices/")[0] + "/devices/")
    expect(page.locator("#device-table thead")).to_contain_text("Tamper Protection")
    page.select_option("#id_tamper_protection", "off")
    expect(page.locator("#device-table tbody tr")).to_have_count(1)
    expect(
        page.locator("#device-table tbody tr[data-device='CONTOSO-WS-0300'] [data-tamper=off]")
    ).to_be_visible()
