"""In Chromium: the policy's value and the device's value are two columns everywhere (device page, drill-in,
setting page), a Conflict row never shows a value the device doesn't apply, and a policy in Error doesn't say
"The policy applies."."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.checkins import fleet as f

pytestmark = pytest.mark.browser

NOT_ALLOWED = "Not allowed. Turns off behavior monitoring."
ALLOWED = "Allowed. Turns on real-time behavior monitoring."


def test_it_shows_policy_and_device_values_apart_on_the_device_page(login, reader, live_server, world):
    ws3 = world.devices["WS-3"]
    page = login(reader, reverse("checkins:device_panel", args=[ws3.pk]))
    cloud = page.locator(f"#settings-{ws3.pk}-{world.policies['Cloud'].pk}")
    expect(cloud).not_to_contain_text("The policy applies.")
    expect(cloud).to_contain_text("1 setting failed to apply")
    behavior = cloud.locator(f'tr[data-setting="{f.BEHAVIOR}"]')
    expect(behavior.locator('[data-value="policy"]')).to_have_text(NOT_ALLOWED)
    expect(behavior.locator('[data-value="device"]')).to_have_text(ALLOWED)  # Tamper Protection kept it on

    baseline = page.locator(f"#settings-{ws3.pk}-{world.policies['Baseline'].pk}")
    pua = baseline.locator(f'tr[data-setting="{f.PUA}"]')
    expect(pua.locator('[data-value="policy"]')).not_to_have_text("None applied (conflict)")
    expect(pua.locator('[data-value="device"]')).to_have_text("None applied (conflict)")


def test_it_shows_policy_and_device_values_apart_in_the_drill_in(login, reader, live_server, world):
    ws1, baseline = world.devices["WS-1"], world.policies["Baseline"]
    page = login(
        reader,
        reverse(
            "reports:policy_device_settings", kwargs={"policy_id": baseline.policy_id, "device_pk": ws1.pk}
        ),
    )
    pua = page.locator(f'#device-setting-table tr[data-setting="{f.PUA}"]')
    expect(pua.locator('[data-value="policy"]')).to_contain_text("PUA Protection on")
    expect(pua.locator('[data-value="device"]')).to_have_text("None applied (conflict)")
    page.click(f'#device-setting-table tr[data-setting="{f.PUA}"] a.setting-name')
    expect(page.locator("dt:text('Device value') + dd")).to_have_text("None applied (conflict)")


def test_every_column_of_the_drill_in_has_room_and_rows_stay_short(login, reader, live_server, world):
    ws1, baseline = world.devices["WS-1"], world.policies["Baseline"]
    page = login(
        reader,
        reverse(
            "reports:policy_device_settings", kwargs={"policy_id": baseline.policy_id, "device_pk": ws1.pk}
        ),
    )
    page.set_viewport_size({"width": 1500, "height": 1000})
    widths = page.eval_on_selector_all(
        "#device-setting-table thead th", "ths => ths.map(th => th.offsetWidth)"
    )
    assert len(widths) == 7 and min(widths) >= 80, widths  # the last column once got no width at all
    pua = page.locator(f'#device-setting-table tr[data-setting="{f.PUA}"]')
    expect(pua.locator("[data-other-policy]")).not_to_have_count(0)  # it names the conflicting policy
    assert pua.bounding_box()["height"] < 150
