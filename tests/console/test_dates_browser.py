"""In Chromium: every date is in the one format, in the admin's own time zone and locale (My preferences),
relative where Intune is relative, with the exact time on hover."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from console.models import UserPreference
from devices.models import Device
from reports.models import DevicePolicyStatus
from tests.checkins import fleet as f

pytestmark = pytest.mark.browser

US = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}, \d{1,2}:\d{2}:\d{2}\s[AP]M$")


def test_it_shows_dates_in_one_format_and_in_the_admins_time_zone_and_locale(
    login, global_admin, live_server
):
    d = f.device("CONTOSO-WS-0101", due=False)
    Device.objects.filter(pk=d.pk).update(
        last_checkin_at=datetime(2026, 12, 2, 15, 53, 13, tzinfo=UTC),
        next_checkin_at=timezone.now() + timedelta(minutes=80),
    )
    page = login(global_admin, f"/devices/{d.pk}/")
    last = page.locator("#device-status dt:text('Last check-in') + dd time")
    expect(last).to_have_text(re.compile(r"^12/2/2026, 3:53:13\sPM$"))
    expect(last).to_have_attribute("datetime", "2026-12-02T15:53:13+00:00")
    for el in page.locator("time").all():
        assert US.match(el.get_attribute("title")), el.get_attribute("title")

    page.goto(f"{live_server.url}/account/preferences/")
    page.select_option("#id_time_zone", "Europe/Berlin")
    page.select_option("#id_locale", "en_GB")
    page.click("#preferences-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("saved")
    assert UserPreference.objects.get(user=global_admin).time_zone == "Europe/Berlin"

    page.goto(f"{live_server.url}/devices/{d.pk}/")
    expect(last).to_have_text("02/12/2026, 16:53:13")  # Berlin is UTC+1 in December; en-GB is day first


def test_it_keeps_relative_times_with_the_exact_time_on_hover(login, global_admin, live_server):
    g = f.group("Workstations")
    d = f.device("CONTOSO-WS-0102", groups=[g])
    f.policy("Antivirus baseline", {f.PUA: 1}, include=[g])
    f.checkin(d)
    DevicePolicyStatus.objects.filter(device=d).update(last_reported_at=timezone.now() - timedelta(minutes=7))

    page = login(global_admin, reverse("checkins:device_panel", args=[d.pk]))
    reported = page.locator('[data-policy="Antivirus baseline"] time')
    expect(reported).to_have_text("7 minutes ago")
    assert US.match(reported.get_attribute("title"))
