"""Creating policies through the browser (headless Chromium, htmx on): an ASR policy and a Firewall Rules policy,
end to end, with a refused value, a refused user group, an Edit jump back from Review + create and a reload in
the middle. Screenshots of every step land in /tmp/shots/policies-*.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from policies import services
from policies.catalog import FIREWALL_RULE_GROUP_ID, asr_rules, get_catalog
from policies.models import Policy
from tests.policies.conftest import ASR, AV

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
RULES = asr_rules(get_catalog())
DRIVERS, DRIVERS_EXCLUSIONS = RULES[0]
LSASS = next(r for r, _ in RULES if "local security authority" in r.display_name)
WMI = next(r for r, _ in RULES if r.display_name.startswith("Block persistence through WMI"))
R = FIREWALL_RULE_GROUP_ID + "_"


def dom(setting_id: str) -> str:
    return "#s-" + re.sub(r"[^A-Za-z0-9_-]", "-", setting_id)


def shot(page, name: str, full_page: bool = True) -> None:
    """A screenshot; a full page one is taken with a viewport as tall as the page, so sticky bars sit where a
    person scrolling would see them (Chromium's full_page capture leaves them mid-page)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = str(SHOTS / f"policies-{name}.png")
    if not full_page:
        page.screenshot(path=path)
        return
    size = page.viewport_size
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height, 6000))})
    page.screenshot(path=path)
    page.set_viewport_size(size)


def at_step(page, step: str) -> None:
    expect(page.locator(f'#wizard[data-step="{step}"]')).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/endpoint-security/drafts/[0-9a-f-]+/{step}/$"))


def option_of(setting, label):
    return str(next(o.value for o in setting.options if o.label == label))


def test_an_asr_policy_is_created_end_to_end_in_the_browser(login, global_admin, fleet):
    services.create_policy(
        ASR,
        "windows",
        "ASR audit (all devices)",
        "",
        {LSASS.id: option_of(LSASS, "Audit")},
        {"include": [fleet.all_mde.pk]},
    )
    page = login(global_admin, "/endpoint-security/")
    shot(page, "overview")
    page.click("#type-asr h2 a")
    expect(page.locator("h1")).to_have_text("Endpoint security | Attack surface reduction")
    page.click(".commandbar >> text=Create Policy")
    page.select_option("#id_profile", "attack-surface-reduction-rules")
    shot(page, "create")
    page.click("#create-form button.btn-primary")

    # Basics
    at_step(page, "basics")
    page.fill("#id_name", "ASR block - workstations")
    page.fill("#id_description", "Standard protection rules")
    shot(page, "wizard-basics")
    page.click("#wizard-next")

    # Configuration settings: search, a refused value, then valid values
    at_step(page, "settings")
    expect(page.locator(dom(LSASS.id))).to_have_value("")  # Not configured until set
    page.fill("input[data-live-filter]", "credential stealing")
    expect(page.locator(dom(LSASS.id))).to_be_visible()
    expect(page.locator(dom(WMI.id))).to_be_hidden()
    page.fill("input[data-live-filter]", "")
    page.select_option(dom(LSASS.id), option_of(LSASS, "Block"))
    page.select_option(dom(WMI.id), option_of(WMI, "Block"))
    page.select_option(dom(DRIVERS.id), option_of(DRIVERS, "Audit"))
    page.fill(dom(DRIVERS_EXCLUSIONS.id), "tools\\driver.sys")
    page.click("#wizard-next")
    error = page.locator(dom(DRIVERS_EXCLUSIONS.id) + "-error")
    expect(error).to_contain_text("isn't a full path")
    at_step(page, "settings")
    expect(page.locator(dom(DRIVERS_EXCLUSIONS.id))).to_have_value("tools\\driver.sys")
    expect(page.locator(dom(LSASS.id))).to_have_value(option_of(LSASS, "Block"))  # the rest stays as entered
    page.locator(dom(DRIVERS.id)).scroll_into_view_if_needed()
    shot(page, "wizard-settings-error", full_page=False)
    page.fill(dom(DRIVERS_EXCLUSIONS.id), "C:\\Tools\\driver.sys")
    page.locator(f"{dom(LSASS.id)}-row details.info summary").click()
    expect(page.locator(f"{dom(LSASS.id)}-row .info-panel")).to_contain_text("Learn more")
    expect(page.locator(f"{dom(LSASS.id)}-row .info-panel")).to_contain_text(LSASS.csp_path)
    page.locator(f"{dom(DRIVERS.id)}-row details.info summary").click()  # one panel open at a time
    expect(page.locator(f"{dom(LSASS.id)}-row .info-panel")).to_be_hidden()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "wizard-settings", full_page=False)
    page.keyboard.press("Escape")
    page.click("#wizard-next")

    # Assignments: a user group is refused with the seed's reason
    at_step(page, "assignments")
    page.check(f"#inc-{fleet.users.pk}")
    page.check(f"#inc-{fleet.workstations.pk}")
    page.click("#wizard-next")
    expect(page.locator("#include-errors")).to_contain_text(
        "Only Device Objects are applicable for Microsoft Defender for Endpoint management. Targeting users is not supported."
    )
    at_step(page, "assignments")
    page.uncheck(f"#inc-{fleet.users.pk}")
    page.check(f"#exc-{fleet.pilot.pk}")
    page.click("#update-preview")
    expect(page.locator("#impact-receive")).to_have_text("3")
    shot(page, "wizard-assignments")

    # A reload in the middle loses nothing
    page.reload()
    at_step(page, "assignments")
    expect(page.locator(f"#inc-{fleet.workstations.pk}")).to_be_checked()
    expect(page.locator(f"#exc-{fleet.pilot.pk}")).to_be_checked()
    expect(page.locator(f"#inc-{fleet.users.pk}")).not_to_be_checked()
    page.click("#wizard-next")

    # Review + create, with the impact preview; an Edit jump back to Basics
    at_step(page, "review")
    expect(page.locator("#review-basics")).to_contain_text("ASR block - workstations")
    expect(page.locator("#review-settings")).to_contain_text(
        "Block credential stealing from the Windows local security"
    )
    expect(page.locator("#review-settings")).to_contain_text("C:\\Tools\\driver.sys")
    expect(page.locator("#review-assignments")).to_contain_text("Workstations")
    expect(page.locator("#impact-conflict-table")).to_contain_text("ASR audit (all devices)")
    expect(page.locator("#impact-mde")).to_have_text("2")
    expect(page.locator("#impact-intune")).to_have_text("1")
    shot(page, "wizard-review")
    page.click("#review-basics h3 a")
    at_step(page, "basics")
    expect(page.locator("#id_name")).to_have_value("ASR block - workstations")
    page.fill("#id_name", "ASR block - Windows workstations")
    page.click("button[name=nav][value=review]")
    at_step(page, "review")
    expect(page.locator("#review-basics")).to_contain_text("ASR block - Windows workstations")
    page.reload()
    at_step(page, "review")
    expect(page.locator("#review-settings")).to_contain_text("C:\\Tools\\driver.sys")
    page.click("#wizard-commit")

    expect(page.locator("h1")).to_have_text("ASR block - Windows workstations")
    expect(page.locator(".msg-success")).to_contain_text("was created")
    policy = Policy.objects.get(name="ASR block - Windows workstations")
    assert policy.values == {
        DRIVERS.id: option_of(DRIVERS, "Audit"),
        DRIVERS_EXCLUSIONS.id: ["C:\\Tools\\driver.sys"],
        LSASS.id: option_of(LSASS, "Block"),
        WMI.id: option_of(WMI, "Block"),
    }
    assert set(policy.assignments.values_list("group_id", "intent")) == {
        (fleet.workstations.pk, "include"),
        (fleet.pilot.pk, "exclude"),
    }
    shot(page, "detail")


def test_a_firewall_rules_policy_is_created_end_to_end_in_the_browser(login, global_admin, fleet):
    page = login(global_admin, "/endpoint-security/firewall/create/")
    page.select_option("#id_profile", "microsoft-defender-firewall-rules")
    page.click("#create-form button.btn-primary")
    at_step(page, "basics")
    page.fill("#id_name", "Server management rules")
    page.click("#wizard-next")

    at_step(page, "settings")
    expect(page.locator("#rules-table")).to_contain_text("No firewall rules yet")
    page.click("#add-rule")
    expect(page.locator("#rule-form")).to_be_visible()
    page.fill(dom(R + "protocol"), "1")
    page.fill(dom(R + "localportranges"), "3389")
    page.click("#save-rule")
    expect(page.locator(dom(R + "name") + "-error")).to_have_text("Enter a name for the rule.")
    expect(page.locator(dom(R + "localportranges") + "-error")).to_contain_text("TCP (6) or UDP (17)")
    shot(page, "wizard-rule-error", full_page=False)
    page.fill(dom(R + "name"), "Allow RDP from admins")
    page.fill(dom(R + "protocol"), "6")
    page.select_option(dom(R + "direction"), "in")
    page.fill(dom(R + "remoteaddressranges"), "10.10.0.0/16")
    page.click("#save-rule")
    at_step(page, "settings")
    expect(page.locator("#rules-table")).to_contain_text("Allow RDP from admins")

    page.click("#add-rule")
    page.fill(dom(R + "name"), "Block Telnet")
    page.fill(dom(R + "protocol"), "6")
    page.fill(dom(R + "remoteportranges"), "23")
    page.select_option(dom(R + "action_type"), "0")
    page.click("#save-rule")
    page.click("#add-rule")
    page.fill(dom(R + "name"), "Temporary")
    page.click("#save-rule")
    at_step(page, "settings")

    # A reload in the middle loses nothing
    page.reload()
    at_step(page, "settings")
    expect(page.locator("#rules-table tbody tr")).to_have_count(3)
    page.click("#rules-table >> text=Edit >> nth=0")
    expect(page.locator(dom(R + "name"))).to_have_value("Allow RDP from admins")
    page.fill(dom(R + "localportranges"), "3389")
    page.click("#save-rule")
    at_step(page, "settings")
    page.click("button[aria-label='Remove rule Temporary']")
    expect(page.locator("#rules-table tbody tr")).to_have_count(2)
    shot(page, "wizard-rules")
    page.click("#wizard-next")

    at_step(page, "assignments")
    page.check(f"#exc-{fleet.users.pk}")
    page.check(f"#inc-{fleet.servers.pk}")
    page.click("#wizard-next")
    expect(page.locator("#exclude-errors")).to_contain_text("Targeting users is not supported.")
    page.uncheck(f"#exc-{fleet.users.pk}")
    page.check(f"#exc-{fleet.sql.pk}")
    page.click("#wizard-next")

    at_step(page, "review")
    expect(page.locator("#review-settings")).to_contain_text("Block Telnet")
    page.click("#review-settings h3 a")  # Edit jumps back to Configuration settings
    at_step(page, "settings")
    expect(page.locator("#rules-table")).to_contain_text("Allow RDP from admins")
    page.click("button[name=nav][value=review]")
    at_step(page, "review")
    expect(page.locator("#impact-receive")).to_have_text("1")  # BUILD-01: the SQL servers are excluded
    page.click("#wizard-commit")

    expect(page.locator("h1")).to_have_text("Server management rules")
    policy = Policy.objects.get(name="Server management rules")
    rules = policy.values[FIREWALL_RULE_GROUP_ID]
    assert [r[R + "name"] for r in rules] == ["Allow RDP from admins", "Block Telnet"]
    assert rules[0] == {
        R + "name": "Allow RDP from admins",
        R + "localportranges": ["3389"],
        R + "remoteaddressranges": ["10.10.0.0/16"],
        R + "protocol": 6,
        R + "direction": "in",
    }
    assert rules[1][R + "action_type"] == "0"
    expect(page.locator("#props-settings")).to_contain_text("Block Telnet")


def test_the_policy_list_versions_and_diff_look_right(login, global_admin, fleet):
    policy = services.create_policy(
        AV,
        "windows",
        "Antivirus baseline",
        "Contoso baseline",
        {"device_vendor_msft_policy_config_defender_allowrealtimemonitoring": 1},
        {"include": [fleet.all_mde.pk]},
    )
    services.create_policy(AV, "windows", "Antivirus - SQL Servers", "", {}, {"include": [fleet.sql.pk]})
    services.update_settings(
        policy,
        {
            "device_vendor_msft_policy_config_defender_allowrealtimemonitoring": 1,
            "device_vendor_msft_policy_config_defender_avgcpuloadfactor": 40,
        },
    )
    page = login(global_admin, "/endpoint-security/antivirus/")
    expect(page.locator("#policy-table")).to_contain_text("Antivirus baseline")
    shot(page, "list")
    page.fill("input[name=q]", "SQL")
    page.press("input[name=q]", "Enter")
    expect(page.locator("#policy-table tbody tr")).to_have_count(1)
    page.goto(
        page.url.split("/endpoint-security/")[0] + f"/endpoint-security/policies/{policy.policy_id}/versions/"
    )
    shot(page, "versions")
    page.click("#compare")
    expect(page.locator("#diff-settings")).to_contain_text("Avg CPU Load Factor")
    shot(page, "diff")


def test_choosing_macos_narrows_the_profiles_to_the_macos_ones(login, global_admin):
    page = login(global_admin, "/endpoint-security/antivirus/create/")
    expect(page.locator("#id_profile option")).to_have_count(4)  # "Select a profile" + the 3 Windows profiles
    page.select_option("#id_platform", "macos")
    expect(page).to_have_url(re.compile(r"platform=macos"))
    # The two macOS Antivirus profiles (no Windows Security Experience on macOS), named as Intune names them.
    expect(page.locator("#id_profile option")).to_have_count(3)
    expect(page.locator("#id_profile option[value=microsoft-defender-antivirus-macos]")).to_have_text(
        "Microsoft Defender Antivirus"
    )
    expect(page.locator(".banner-warning")).to_have_count(0)
    expect(page.locator("#create-form button.btn-primary")).to_be_enabled()
    shot(page, "create-macos", full_page=False)
