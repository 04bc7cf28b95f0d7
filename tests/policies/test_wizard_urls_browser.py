"""In Chromium: after Create or Save the address bar shows the policy's own URL, and Back or a reload of the
finished draft's URL lands on the policy, never on a 404."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from policies.models import Policy

pytestmark = pytest.mark.browser


def test_it_lands_on_the_policy_url_after_create_and_back_never_dead_ends(login, global_admin, live_server):
    page = login(global_admin, "/endpoint-security/firewall/create/")
    page.select_option("#id_profile", "microsoft-defender-firewall-rules")
    page.click("#create-form button.btn-primary")
    page.fill("#id_name", "Kiosk rules")
    page.click("#wizard-next")
    expect(page.locator('#wizard[data-step="settings"]')).to_be_visible()
    page.click("#wizard-next")
    expect(page.locator('#wizard[data-step="assignments"]')).to_be_visible()
    page.click("#wizard-next")
    expect(page.locator('#wizard[data-step="review"]')).to_be_visible()
    review_url = page.url
    page.click("#wizard-commit")

    policy_url = re.compile(r"/endpoint-security/policies/[0-9a-f-]+/$")
    expect(page).to_have_url(policy_url)
    expect(page.locator("h1")).to_have_text("Kiosk rules")
    policy = Policy.objects.get(name="Kiosk rules")
    assert page.url.endswith(f"/endpoint-security/policies/{policy.policy_id}/")

    page.go_back()
    expect(page.locator("h1")).to_have_text("Kiosk rules")
    expect(page).to_have_url(policy_url)
    page.goto(review_url)  # the finished draft's own URL, e.g. from history or a bookmark
    expect(page).to_have_url(policy_url)
    expect(page.locator("h1")).to_have_text("Kiosk rules")
