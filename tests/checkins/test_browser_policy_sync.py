"""In Chromium: Policy sync on an MDE-managed device's panel, then its statuses update without a reload;
no Policy sync button on an Intune-enrolled device."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from devices import checkins
from tests.checkins import fleet as f
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


def test_policy_sync_shows_progress_and_fresh_statuses_without_a_reload(
    login, security_manager, live_server, sent_tasks
):
    g = f.group("Workstations")
    d = f.device("CONTOSO-WS-0042", groups=[g], tamper=True, due=False)
    f.policy("Antivirus baseline", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    f.policy("Helpdesk pilot - behavior monitoring off", {f.BEHAVIOR: 0}, include=[g])
    page = login(security_manager, reverse("checkins:device_panel", args=[d.pk]))
    panel = page.locator(f"#checkin-panel-{d.pk}")
    expect(panel.locator('[data-policy="Antivirus baseline"] [data-status]')).to_have_text("Pending")
    page.evaluate("window.__notReloaded = true")

    page.click('[data-testid="policy-sync"]')

    expect(page.locator('[data-testid="sync-progress"]')).to_contain_text("Sync requested")
    expect(page.locator('[data-testid="policy-sync"]')).to_be_disabled()
    # The worker picks the sync up: run the queued task exactly as Celery would.
    name, args, _ = wait_for(lambda: sent_tasks and sent_tasks[0])
    assert name == "devices.checkins.policy_sync"
    checkins.policy_sync.run(*args)

    expect(page.locator('[data-testid="sync-progress"]')).to_contain_text(
        "Policy sync completed", timeout=10_000
    )
    expect(panel.locator('[data-policy="Antivirus baseline"] [data-status]')).to_have_text("Succeeded")
    helpdesk = panel.locator('[data-policy="Helpdesk pilot - behavior monitoring off"] [data-status]')
    expect(helpdesk).to_have_text("Error")
    expect(panel).to_contain_text("Tamper Protection blocked this change")
    expect(panel.locator('[data-testid="mp-preference"]')).to_contain_text("PUAProtection")
    expect(panel.locator('[data-testid="checkin-history"]')).to_contain_text("Policy sync")
    assert page.evaluate("window.__notReloaded") is True  # htmx swapped the panel; the page never reloaded
    page.screenshot(path="/tmp/checkins-panel.png", full_page=True)


def test_an_intune_enrolled_device_has_no_policy_sync_button(login, security_manager, live_server):
    d = f.device("CONTOSO-INT-0007", intune=True)
    page = login(security_manager, reverse("checkins:device_panel", args=[d.pk]))
    expect(page.locator(f"#checkin-panel-{d.pk}")).to_contain_text("enrolled in Intune")
    expect(page.locator('[data-testid="policy-sync"]')).to_have_count(0)
