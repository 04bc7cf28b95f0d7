"""Real Chromium walks the seed's behaviours on the device page as a new admin would (issue 16)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from devices import services
from tests.devices.device_factories import make_device, set_tenant

pytestmark = pytest.mark.browser


def test_it_labels_a_server_hybrid_joined_by_the_flow_mdejoined_and_mdemanaged(login, global_admin):
    set_tenant()
    device = make_device(
        display_name="SRV-FILE-01", os="windows_server", join_type="domain_joined", in_sync_scope=True
    )
    services.reevaluate_device(device)

    page = login(global_admin, f"/devices/{device.pk}/")
    labels = page.locator("#device-status [data-field=labels]")
    expect(labels).to_contain_text("MDEManaged")
    expect(labels).to_contain_text("MDEJoined")
