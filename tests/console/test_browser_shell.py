from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_an_admin_signs_in_and_navigates_the_shell(login, global_admin, live_server):
    page = login(global_admin)
    expect(page.locator("h1")).to_have_text("Home")
    expect(page.locator(".brand")).to_contain_text("Microsoft Intune admin center")
    page.click("nav.leftnav >> text=Dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.click("nav.leftnav >> text=Tenant administration")
    page.click("text=Audit logs")
    expect(page.locator("h1")).to_have_text("Audit logs")
    expect(page.locator(".breadcrumbs")).to_contain_text("Tenant administration")


def test_a_wrong_password_is_refused_in_the_browser(page, live_server, global_admin):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ga")
    page.fill("#id_password", "nope")
    page.click("button[type=submit]")
    expect(page.locator(".banner-error")).to_contain_text("incorrect")
