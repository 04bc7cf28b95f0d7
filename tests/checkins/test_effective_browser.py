"""In Chromium: a GPO sets an ASR rule to Audit where this console's policy says Block; after Policy sync the device's
Effective settings tab, the drift timeline, the policy's reports and the fleet report all tell the truth."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from devices import checkins
from devices.models import GroupPolicyObject
from reports.models import DriftEvent
from tests.checkins import fleet as f
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

ADOBE = f.P + "attacksurfacereductionrules_blockadobereaderfromcreatingchildprocesses"
GUID = "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c"
SHOTS = Path("/work/scratch/shots")


def _shot(page, name: str) -> None:
    if SHOTS.is_dir():
        page.screenshot(path=str(SHOTS / name), full_page=True)


def test_a_gpo_that_audits_an_asr_rule_the_policy_blocks_shows_everywhere_after_policy_sync(
    login, security_manager, live_server, sent_tasks
):
    servers = f.group("Servers")
    d = f.device("CONTOSO-SRV-0007", os="windows_server", groups=[servers], ad_domain="contoso.com",
                 ad_ou="OU=Servers,DC=contoso,DC=com")  # fmt: skip
    f.device("CONTOSO-SRV-0008", os="windows_server", groups=[servers])
    policy = f.policy(
        "ASR servers", {ADOBE: f"{GUID}=1"}, profile="Attack Surface Reduction Rules", include=[servers]
    )
    f.checkin(*servers.members.all())  # both servers enforce Block: the baseline
    GroupPolicyObject.objects.create(
        name="Servers - ASR audit", settings={ADOBE: f"{GUID}=2"}, link_ou="OU=Servers,DC=contoso,DC=com"
    )

    page = login(security_manager, reverse("devices:detail", args=[d.pk]))
    page.click('[data-testid="policy-sync"]')
    name, args, _ = wait_for(lambda: sent_tasks and sent_tasks[0])
    assert name == "devices.checkins.policy_sync"
    checkins.policy_sync.run(*args)
    expect(page.locator('[data-testid="sync-progress"]')).to_contain_text(
        "Policy sync completed", timeout=10_000
    )

    # the drift event, in the device page's timeline
    event = DriftEvent.objects.get(device=d, setting_key=ADOBE)
    assert (event.old_value, event.new_value, event.old_source, event.source) == (
        f"{GUID}=1", f"{GUID}=2", "intune", "group_policy",
    )  # fmt: skip
    page.goto(live_server.url + reverse("devices:detail", args=[d.pk]))
    drift = page.locator("#drift-timeline")
    expect(drift).to_contain_text("Block Adobe Reader from creating child processes")
    expect(drift).to_contain_text("Block → Audit · configured by Group Policy (was Intune)")

    # Device › Effective settings
    page.click("nav.tabs >> text=Effective settings")
    row = page.locator(f'#effective-settings tr[data-setting="{ADOBE}"]')
    expect(row.locator(".effective-value")).to_have_text("Audit")
    expect(row.locator(".configured-by")).to_have_text("Group Policy")
    expect(row.locator(".intent")).to_contain_text("No")
    row.locator("summary").click()
    expect(row.locator(".attempts")).to_contain_text("Intune: Block")
    _shot(page, "effective-device-tab.png")
    page.select_option('select[name="source"]', "intune")
    page.click("#effective-filters button[type=submit]")
    page.wait_for_url("**source=intune**")
    expect(page.locator(f'#effective-settings tr[data-setting="{ADOBE}"]')).to_have_count(0)

    # the policy's reports: still Succeeded, but overridden
    kwargs = {"policy_id": policy.policy_id}
    page.goto(live_server.url + reverse("reports:policy_settings", kwargs=kwargs))
    cell = page.locator(f'#setting-status-table tr[data-setting="{ADOBE}"] .overridden-cell')
    expect(cell).to_contain_text("Overridden by Group Policy")
    expect(cell.locator("a")).to_have_text("1")
    page.goto(live_server.url + reverse("reports:policy_devices", kwargs=kwargs))
    device_row = page.locator('#policy-device-table tr[data-device="CONTOSO-SRV-0007"]')
    expect(device_row).to_contain_text("Succeeded")
    expect(device_row).to_contain_text("Overridden by Group Policy")
    expect(page.locator('#policy-device-table tr[data-device="CONTOSO-SRV-0008"]')).not_to_contain_text(
        "Overridden"
    )
    page.goto(
        live_server.url + reverse("reports:policy_device_settings", kwargs={**kwargs, "device_pk": d.pk})
    )
    expect(page.locator(f'#device-setting-table tr[data-setting="{ADOBE}"]')).to_contain_text(
        "Overridden by Group Policy"
    )

    # the fleet report counts it, and the count links to the device
    page.goto(live_server.url + reverse("reports:effective_settings"))
    fleet = page.locator(f'#effective-report tr[data-setting="{ADOBE}"]')
    expect(fleet.locator('[data-count="matches"]')).to_have_text("1")
    expect(fleet.locator('[data-count="overridden"]')).to_contain_text("1 Group Policy")
    _shot(page, "effective-fleet-report.png")
    fleet.locator('[data-count="overridden"] a').click()
    expect(page.locator("#effective-devices")).to_contain_text("CONTOSO-SRV-0007")
    expect(page.locator("#effective-devices")).not_to_contain_text("CONTOSO-SRV-0008")


def test_the_effective_settings_filters_apply_on_change_without_the_apply_button(
    login, security_manager, live_server
):
    servers = f.group("Servers")
    d = f.device("CONTOSO-SRV-0009", os="windows_server", groups=[servers])
    f.policy("ASR servers", {ADOBE: f"{GUID}=1"}, profile="Attack Surface Reduction Rules", include=[servers])
    f.checkin(d)
    webshell = f.P + "attacksurfacereductionrules_blockwebshellcreationforservers"

    page = login(security_manager, reverse("devices:effective", args=[d.pk]))
    default_row = page.locator(f'#effective-settings tr[data-setting="{webshell}"]')
    expect(default_row.locator(".configured-by")).to_have_text("Default")
    page.check('#effective-filters input[name="hide_defaults"]')
    page.wait_for_url("**hide_defaults=1**")
    expect(page.locator('#effective-settings tr[data-source="default"]')).to_have_count(0)
    expect(page.locator(f'#effective-settings tr[data-setting="{ADOBE}"]')).to_have_count(1)

    page.goto(live_server.url + reverse("reports:effective_settings"))
    page.select_option('#effective-filters select[name="kind"]', "av")
    page.wait_for_url("**kind=av**")
    expect(page.locator(f'#effective-report tr[data-setting="{ADOBE}"]')).to_have_count(0)

    page.goto(live_server.url + reverse("reports:drift"))
    page.select_option('#list form.filters select[name="window"]', "7d")
    page.wait_for_url("**window=7d**")  # the boosted list (htmx) still submits on change
    expect(page.locator("#drift-summary")).to_contain_text("Last 7 days")
