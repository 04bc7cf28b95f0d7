"""In Chromium: what the admin types in the wizard is kept in the draft as they type (debounced), so a reload
before Next - or with a half-typed firewall rule open - loses nothing."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from policies.catalog import FIREWALL_RULE_GROUP_ID

pytestmark = pytest.mark.browser

R = FIREWALL_RULE_GROUP_ID + "_"


def dom(setting_id: str) -> str:
    return "#s-" + re.sub(r"[^A-Za-z0-9_-]", "-", setting_id)


def typed_and_kept(page, selector: str, value: str) -> None:
    """Type into a field and wait for the debounced autosave to be answered (204)."""
    with page.expect_response(lambda r: "/autosave/" in r.url and r.status == 204):
        page.fill(selector, value)


def test_it_keeps_the_typed_name_and_a_half_typed_firewall_rule_across_reloads(login, global_admin):
    page = login(global_admin, "/endpoint-security/firewall/create/")
    page.select_option("#id_profile", "microsoft-defender-firewall-rules")
    page.click("#create-form button.btn-primary")
    expect(page.locator('#wizard[data-step="basics"]')).to_be_visible()

    typed_and_kept(page, "#id_name", "Branch office rul")  # still typing, Next not pressed
    page.reload()
    expect(page.locator("#id_name")).to_have_value("Branch office rul")
    page.fill("#id_name", "Branch office rules")
    page.click("#wizard-next")

    expect(page.locator('#wizard[data-step="settings"]')).to_be_visible()
    page.click("#add-rule")
    expect(page.locator("#rule-form")).to_be_visible()
    page.fill(dom(R + "name"), "Allow SSH from jump hosts")
    typed_and_kept(page, dom(R + "localportranges"), "22")
    page.reload()
    expect(page.locator("#rule-form")).to_be_visible()
    expect(page.locator(dom(R + "name"))).to_have_value("Allow SSH from jump hosts")
    expect(page.locator(dom(R + "localportranges"))).to_have_value("22")

    page.fill(dom(R + "protocol"), "6")
    page.click("#save-rule")
    expect(page.locator("#rules-table")).to_contain_text("Allow SSH from jump hosts")
    page.click("#add-rule")  # a new rule starts empty: the saved rule's typing was dropped
    expect(page.locator(dom(R + "name"))).to_have_value("")


def test_it_refuses_an_autosave_for_an_unknown_place(ga_client):
    from policies import wizard
    from policies.catalog import get_catalog
    from policies.models import PolicyDraft

    owner = PolicyDraft._meta.get_field("owner").related_model.objects.get(username="ga")
    draft = wizard.new_create_draft(
        owner, get_catalog().profile("Microsoft Defender Firewall Rules"), "windows"
    )
    response = ga_client.post(f"/endpoint-security/drafts/{draft.draft_id}/autosave/", {"autosave_for": "x"})
    assert response.status_code == 400
    assert b"autosave_for must be" in response.content
