"""Real Chromium: a Global Administrator switches a platform's scope and sees a device's Managed by change on the
page without reloading it; an Endpoint Security Manager cannot switch it and is told why."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from devices import services
from devices.models import Device
from tests.devices.device_factories import make_device, set_tenant

pytestmark = pytest.mark.browser

SCOPE = "/defender/settings/endpoints/configuration-management/"


def test_a_global_administrator_switches_a_platform_and_sees_managed_by_change(
    login, global_admin, eager_celery
):
    set_tenant(windows_server_scope="tagged")
    device = make_device(display_name="SRV-APP-01", os="windows_server", join_type="hybrid_joined")
    services.reevaluate_device(device)

    page = login(global_admin, SCOPE)
    row = page.locator("#recent-changes tr[data-device='SRV-APP-01']")
    expect(row.locator("[data-field=managed_by]")).to_have_text("None")
    expect(page.locator("#scope-platforms tr[data-platform=windows_server] [data-count=mde]")).to_have_text(
        "0"
    )

    page.locator("#platforms tr[data-platform=windows_server] input[value=all]").check()
    page.locator("#scope-form button[type=submit]").click()

    expect(row.locator("[data-field=managed_by]")).to_have_text("MDE", timeout=20_000)
    expect(page.locator("#scope-platforms tr[data-platform=windows_server] [data-count=mde]")).to_have_text(
        "1"
    )
    expect(page.locator("#reevaluation")).to_contain_text("Succeeded")
    expect(page.locator(".messages")).to_contain_text("re-evaluated")
    device.refresh_from_db()
    assert device.is_mde_managed and "MDEManaged" in device.label_list

    # The device page (Intune side) shows the change as well.
    page.click("#recent-changes a:text('SRV-APP-01')")
    expect(page.locator("#device-status [data-field=managed_by]")).to_have_text("MDE")
    expect(page.locator("#device-status [data-field=labels]")).to_contain_text("MDEManaged")


def test_an_endpoint_security_manager_cannot_switch_the_scope_and_is_told_why(login, security_manager):
    set_tenant(windows_server_scope="tagged")
    page = login(security_manager, SCOPE)
    expect(page.locator("#read-only-reason")).to_contain_text("Endpoint Security Manager role might not have")
    expect(page.locator("#read-only-reason")).to_contain_text("Global Administrator")
    expect(page.locator("#platforms tr[data-platform=windows_server] input[value=all]")).to_be_disabled()
    expect(page.locator("#scope-form button[type=submit]")).to_have_count(0)
    page.goto(page.url.replace(SCOPE, "/endpoint-security/microsoft-defender-for-endpoint/"))
    expect(page.locator("#read-only-reason")).to_be_visible()
    expect(page.locator("#id_allow_mde_enforcement")).to_be_disabled()


def test_an_admin_tags_a_device_and_filters_all_devices_by_managed_by(login, global_admin):
    set_tenant(windows_server_scope="tagged")
    device = make_device(display_name="SRV-SQL-01", os="windows_server", join_type="domain_joined")
    make_device(display_name="CONTOSO-WS-0001")
    for d in Device.objects.all():
        services.reevaluate_device(d)
    page = login(global_admin, f"/devices/{device.pk}/")
    page.check("#id_mde_management")
    page.click("#tags-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Managed by: None → MDE")
    page.goto(page.url.split("/devices/")[0] + "/devices/")
    page.select_option("#id_managed_by", "mde")
    expect(page.locator("#device-table tbody tr")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"/devices/\?.*managed_by=mde"))


@pytest.mark.skipif(
    not os.environ.get("DEVICES_SHOTS"), reason="screenshots only on request (DEVICES_SHOTS=1)"
)
def test_take_screenshots_of_the_devices_pages(login, global_admin):
    from console import demo as console_demo
    from devices import demo

    console_demo.seed(io.StringIO())
    demo.seed(io.StringIO(), devices=300, seed=42)
    out = Path(os.environ.get("DEVICES_SHOTS_DIR", "/tmp/shots"))
    out.mkdir(parents=True, exist_ok=True)
    page = login(global_admin, "/devices/")
    page.screenshot(path=out / "devices-all-devices.png", full_page=True)
    sql = Device.objects.get(display_name="SRV-SQL-01")
    page.goto(page.url.split("/devices/")[0] + f"/devices/{sql.pk}/")
    page.screenshot(path=out / "devices-device-page.png", full_page=True)
    web = Device.objects.get(display_name="SRV-WEB-01")
    page.goto(page.url.split("/devices/")[0] + f"/devices/{web.pk}/")
    page.screenshot(path=out / "devices-device-page-not-enrolled.png", full_page=True)
    base = page.url.split("/devices/")[0]
    page.goto(base + "/groups/")
    page.screenshot(path=out / "devices-groups.png", full_page=True)
    from devices.models import Group

    group = Group.objects.get(name="MDE pilot - Servers")
    page.goto(base + f"/groups/{group.pk}/?q=SRV-SQL")
    page.screenshot(path=out / "devices-group-assigned.png", full_page=True)
    page.goto(base + "/groups/new/")
    page.fill("#id_name", "Broken rule")
    page.check("input[name=membership_type][value=dynamic]")
    page.fill("#id_membership_rule", '(device.managementType -eq "MicrosoftSense"')
    page.click("#group-form button.btn-primary")
    page.screenshot(path=out / "devices-group-invalid-rule.png", full_page=True)
    ids = "&".join(f"device={d.pk}" for d in Device.objects.filter(display_name__startswith="SRV-")[:6])
    page.goto(base + '/groups/validate/?rule=(device.managementType+-eq+"MicrosoftSense")&' + ids)
    page.screenshot(path=out / "devices-group-validate.png", full_page=True)
    page.goto(base + SCOPE)
    page.screenshot(path=out / "devices-enforcement-scope.png", full_page=True)
    page.goto(base + "/endpoint-security/microsoft-defender-for-endpoint/")
    page.screenshot(path=out / "devices-mde-connector.png", full_page=True)
