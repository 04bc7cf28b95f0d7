"""In Chromium, the device lab end to end: create a simulated device, turn Tamper Protection off, run a local
admin's Set-MpPreference; after Policy sync the device page shows real-time protection off (configured locally),
and the drift list has the event."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from devices import checkins
from devices.models import Device
from tests.devices.device_factories import set_tenant
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


def test_a_lab_device_follows_its_facts_and_a_local_change_through_policy_sync_into_drift(
    login, global_admin, live_server, sent_tasks
):
    set_tenant()
    page = login(global_admin, "/lab/")
    expect(page.locator("#simulation-banner")).to_contain_text("Simulation")

    # Create a simulated Windows 11 device: onboarding decides it is managed by MDE.
    page.click("text=New simulated device")
    expect(page.locator("#simulation-banner")).to_be_visible()
    page.fill("#id_display_name", "LAB-BROWSER-01")
    page.fill("#id_os_version", "10.0.22631.3447")
    page.click("#lab-device-form button[type=submit]")
    expect(page.locator(".msg-success")).to_contain_text("LAB-BROWSER-01 was created: Success")
    device = Device.objects.get(display_name="LAB-BROWSER-01")
    assert device.managed_by == "mde" and device.next_checkin_at is not None
    checkins.run_checkin(device.pk, kind="scheduled")  # the scheduler's tick: the device's baseline report

    # Change a fact: Tamper Protection off.
    page.uncheck("#id_tamper_protection")
    page.click("#lab-facts-form button[type=submit]")
    expect(page.locator(".msg-success")).to_contain_text("Facts saved")
    expect(page.locator("#id_tamper_protection")).not_to_be_checked()

    # A local admin turns real-time protection off.
    page.select_option("#lab-local-form #id_operation", "set")
    page.select_option(
        "#lab-local-form #id_setting", "device_vendor_msft_policy_config_defender_allowrealtimemonitoring"
    )
    page.fill("#lab-local-form #id_value", "Not allowed")
    page.click("#lab-local-form button[type=submit]")
    expect(page.locator("#local-changes")).to_contain_text("Set-MpPreference")

    # The device page: Policy sync, run the queued task as a worker would, and the device reports it.
    page.click("#open-device-page")
    page.click('[data-testid="policy-sync"]')
    name, args, _ = wait_for(lambda: sent_tasks and sent_tasks[0])
    assert name == "devices.checkins.policy_sync"
    checkins.policy_sync.run(*args)
    expect(page.locator('[data-testid="sync-progress"]')).to_contain_text(
        "Policy sync completed", timeout=15_000
    )
    # The device page follows: its drift timeline and its Effective settings tab (Local admin wins now).
    page.reload()
    expect(page.locator("#drift-timeline")).to_contain_text("Local admin")
    page.click("nav.tabs >> text=Effective settings")
    rtp = page.locator('tr[data-setting="device_vendor_msft_policy_config_defender_allowrealtimemonitoring"]')
    expect(rtp).to_contain_text("Local admin")
    page.screenshot(path="/tmp/lab-device-effective.png", full_page=True)

    # The drift list has the event: real-time monitoring 1 -> 0, configured by the local admin.
    page.goto(f"{live_server.url}/endpoint-security/reports/drift/")
    row = page.locator("table.grid tbody tr", has_text="LAB-BROWSER-01")
    expect(row.first).to_contain_text("Local admin")
    expect(row.first).to_contain_text("Allow Realtime Monitoring")
    page.screenshot(path="/tmp/lab-drift.png", full_page=True)
