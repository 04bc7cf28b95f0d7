"""In Chromium: after a Policy sync the device page's management card shows the same last and next check-in as
the check-in panel below it, without a reload."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices import checkins
from devices.models import Device
from tests.checkins import fleet as f
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


def test_it_updates_the_card_and_the_panel_together_after_a_policy_sync(
    login, security_manager, live_server, sent_tasks
):
    g = f.group("Workstations")
    d = f.device("CONTOSO-WS-0046", groups=[g], due=False)
    f.policy("Antivirus baseline", {f.PUA: 1}, include=[g])
    Device.objects.filter(pk=d.pk).update(
        last_checkin_at=timezone.now() - timedelta(minutes=44),
        next_checkin_at=timezone.now() + timedelta(minutes=46),
    )
    page = login(security_manager, f"/devices/{d.pk}/")
    card = page.locator(f"#checkin-times-{d.pk}")
    panel = page.locator(f"#checkin-panel-{d.pk}")
    expect(panel).to_be_visible()
    old_next = card.locator("[data-field=next_checkin]").inner_text()
    page.evaluate("window.__notReloaded = true")

    page.click('[data-testid="policy-sync"]')
    name, args, _ = wait_for(lambda: sent_tasks and sent_tasks[0])
    checkins.policy_sync.run(*args)
    expect(page.locator('[data-testid="sync-progress"]')).to_contain_text(
        "Policy sync completed", timeout=15_000
    )

    panel_last = panel.locator('[data-testid="last-checkin"]').inner_text()
    expect(card.locator("[data-field=last_checkin]")).to_have_text(panel_last)
    expect(card.locator("[data-field=next_checkin]")).not_to_have_text(old_next)
    device = Device.objects.get(pk=d.pk)
    assert timedelta(minutes=81) <= device.next_checkin_at - device.last_checkin_at <= timedelta(minutes=99)
    assert page.evaluate("window.__notReloaded") is True

    # The check-in times are rows of the card's list: their values line up with the card's other values, before
    # and after the swap.
    trust = page.locator("#device-status dt", has_text="Trust with Microsoft Entra ID").locator(
        "xpath=following-sibling::dd[1]"
    )
    value_x = trust.bounding_box()["x"]
    for field in ("last_checkin", "next_checkin"):
        assert card.locator(f"[data-field={field}]").bounding_box()["x"] == value_x
