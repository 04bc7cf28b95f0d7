"""In Chromium: a policy's Monitor page changes by itself after a Policy sync (no reload), and View report
exports its rows as a CSV download."""

from __future__ import annotations

import csv

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from reports.models import DevicePolicyStatus
from reports.pending import mark_policy_pending
from tests.checkins import fleet as f

pytestmark = pytest.mark.browser


def test_the_monitor_page_updates_itself_after_a_policy_sync(
    login, security_manager, live_server, eager_celery
):
    g = f.group("Finance laptops")
    first = f.device("FIN-LT-0001", groups=[g], tamper=False, due=False)
    f.device("FIN-LT-0002", groups=[g], tamper=False, due=False)
    policy = f.policy("Finance antivirus", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    mark_policy_pending(policy.pk, [], [])  # assigned: both devices show Pending until they check in

    page = login(security_manager, reverse("reports:policy_monitor", kwargs={"policy_id": policy.policy_id}))
    expect(page.locator('[data-testid="count-pending"]')).to_have_text("2")
    expect(page.locator('[data-testid="count-succeeded"]')).to_have_text("0")
    version = page.locator("#monitor-live").get_attribute("data-version")
    page.evaluate("window.__notReloaded = true")

    # Policy sync from the device's check-in panel, in a second tab of the same session.
    panel = page.context.new_page()
    panel.goto(f"{live_server.url}{reverse('checkins:device_panel', args=[first.pk])}")
    panel.click('[data-testid="policy-sync"]')
    expect(panel.locator('[data-testid="sync-progress"]')).to_contain_text(
        "Policy sync completed", timeout=15_000
    )
    assert DevicePolicyStatus.objects.get(device=first, policy=policy).status == "succeeded"

    # Back on the Monitor page: the live region is swapped in by its poll, without a reload.
    expect(page.locator('[data-testid="count-succeeded"]')).to_have_text("1", timeout=15_000)
    expect(page.locator('[data-testid="count-pending"]')).to_have_text("1")
    assert page.locator("#monitor-live").get_attribute("data-version") != version
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator('#card-checkin-status svg.donut circle.arc[data-key="succeeded"]')).to_have_count(1)


def test_view_report_exports_its_filtered_rows_as_a_csv_download(login, reader, live_server, tmp_path):
    g = f.group("Servers")
    devices = [f.device(f"SRV-{i:02d}", os="windows_server", groups=[g], tamper=i == 3) for i in range(1, 6)]
    policy = f.policy("Server hardening", {f.CLOUD: 1, f.BEHAVIOR: 0}, include=[g])
    f.checkin(*devices)  # SRV-03 has Tamper Protection: turning behavior monitoring off fails there

    url = reverse("reports:policy_devices", kwargs={"policy_id": policy.policy_id})
    page = login(reader, f"{url}?status=succeeded")
    expect(page.locator("#policy-device-table tbody tr")).to_have_count(4)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export").click()
    download = download_info.value
    assert download.suggested_filename == "server-hardening-device-status.csv"
    target = tmp_path / "export.csv"
    download.save_as(target)
    with open(target, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["Device name"] for r in rows] == ["SRV-01", "SRV-02", "SRV-04", "SRV-05"]
    assert {r["Status"] for r in rows} == {"Succeeded"}
    expected = {
        d.device.display_name: str(d.device.device_id)
        for d in DevicePolicyStatus.objects.filter(policy=policy, status="succeeded").select_related("device")
    }
    assert {r["Device name"]: r["Device ID"] for r in rows} == expected


def test_it_adds_up_per_setting_status_to_the_policys_devices(login, reader, live_server):
    g = f.group("Branch laptops")
    reported = f.device("BR-LT-0001", groups=[g], tamper=False)
    f.device("BR-LT-0002", groups=[g], tamper=False, due=False)
    f.device("BR-LT-0003", groups=[g], tamper=False, due=False)
    policy = f.policy("Branch antivirus", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    mark_policy_pending(policy.pk, [], [])  # assigned: all three are targeted and Pending
    f.checkin(reported)  # one reports; the other two haven't yet

    page = login(reader, reverse("reports:policy_settings", kwargs={"policy_id": policy.policy_id}))
    rows = page.locator("#setting-status-table tbody tr[data-setting]")
    expect(rows).to_have_count(2)
    for i in range(2):
        cells = rows.nth(i).locator("td.num")
        total = sum(int(cells.nth(c).inner_text().replace(",", "")) for c in range(cells.count()))
        assert total == 3, f"row {i} adds up to {total}, the policy has 3 devices"
        expect(rows.nth(i).locator('[data-status="pending"]')).to_have_text("2")
