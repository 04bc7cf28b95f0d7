"""In Chromium: a Linux Antivirus policy with an exclusion is created in the wizard (the table editor of Scan
exclusions), assigned to the Linux servers, a Policy sync runs, and the device page shows the exclusion in the
mdatp_managed.json the agent wrote, with the mdatp health summary."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from devices import checkins
from policies.models import Policy
from tests.checkins import fleet as f
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

EXCL = "linux_mdatp_managed_antivirusengine_exclusions"
LEVEL = "linux_mdatp_managed_antivirusengine_enforcementlevel"


def cell(child: str, row: int = 0) -> str:
    return f'[name="{EXCL}__{row}__{EXCL}_item_{child}"]'


def test_a_linux_antivirus_exclusion_reaches_the_devices_mdatp_managed_json(
    login, security_manager, live_server, sent_tasks
):
    servers = f.group("Linux servers")
    device = f.device("lnx-db-01", os="linux", os_version="Ubuntu 22.04", groups=[servers], due=False)
    page = login(security_manager, "/endpoint-security/antivirus/create/")
    page.select_option("#id_platform", "linux")
    expect(
        page.locator("#id_profile option", has_text="Microsoft Defender Antivirus exclusions")
    ).to_have_count(1)
    page.select_option("#id_profile", "microsoft-defender-antivirus-linux")
    page.click("#create-form button.btn-primary")

    expect(page).to_have_url(re.compile(r"/basics/$"))
    page.fill("#id_name", "Linux AV - database servers")
    page.click("#wizard-next")

    expect(page).to_have_url(re.compile(r"/settings/$"))
    page.select_option("#s-" + LEVEL, "real_time")
    # The fields of an exclusion are columns of the Scan exclusions table, not settings of their own.
    expect(page.locator(f'[name="{EXCL}_item_path"]')).to_have_count(0)
    expect(page.locator(f"#s-{EXCL} thead")).to_contain_text("Is directory")
    # A relative path is refused with a clear message and the row keeps what was typed.
    page.select_option(cell("$type"), "excludedPath")
    page.fill(cell("path"), "var/lib/postgresql")
    page.click("#wizard-next")
    expect(page.locator(f"#s-{EXCL}-row .errorlist")).to_contain_text("isn't a full path")
    expect(page.locator(cell("path"))).to_have_value("var/lib/postgresql")
    page.fill(cell("path"), "/var/lib/postgresql")
    page.select_option(cell("isdirectory"), "true")
    page.locator(f"#s-{EXCL}-row").scroll_into_view_if_needed()
    page.screenshot(path="/work/scratch/shots/maclinux-wizard-exclusions-table.png")
    page.click("#wizard-next")

    expect(page).to_have_url(re.compile(r"/assignments/$"))
    page.check(f"#inc-{servers.pk}")
    page.click("#wizard-next")
    expect(page).to_have_url(re.compile(r"/review/$"))
    expect(page.locator("#review-settings")).to_contain_text("/var/lib/postgresql")
    page.click("#wizard-commit")
    expect(page.locator(".msg-success")).to_contain_text("was created")
    policy = Policy.objects.get(name="Linux AV - database servers")
    assert (policy.platform, policy.template_id) == ("linux", "4cfd164c-5e8a-4ea9-b15d-9aa71e4ffff4_1")

    page.goto(f"{live_server.url}{reverse('devices:detail', args=[device.pk])}")
    expect(page.locator('[data-testid="policy-sync"]')).to_be_enabled()
    page.click('[data-testid="policy-sync"]')
    name, args, _ = wait_for(lambda: sent_tasks and sent_tasks[0])
    assert name == "devices.checkins.policy_sync"
    checkins.policy_sync.run(*args)
    expect(page.locator('[data-testid="sync-progress"]')).to_contain_text(
        "Policy sync completed", timeout=10_000
    )

    managed = page.locator('[data-testid="managed-config"]')
    expect(managed).to_contain_text('"path": "/var/lib/postgresql"')
    text = managed.inner_text()
    assert json.loads(text)["antivirusEngine"] == {
        "exclusions": [{"$type": "excludedPath", "path": "/var/lib/postgresql", "isDirectory": True}],
        "enforcementLevel": "real_time",
    }
    expect(page.locator('[data-testid="mdatp-health"]')).to_contain_text("real_time_protection_enabled")
    expect(page.locator('[data-testid="mdatp-health"]')).to_contain_text("true [managed]")
    expect(page.locator('[data-testid="mp-preference"]')).to_have_count(0)  # no Get-MpPreference on Linux
    managed.scroll_into_view_if_needed()
    page.screenshot(path="/work/scratch/shots/maclinux-device-mdatp-managed-json.png", full_page=True)
