"""Who may open each check-in page (GET). Walked for every role by tests/console/test_access.py.

The Policy sync actions are POST-only: a GET is 405 for everyone (their permission, devices.sync_device, is
tested in tests/checkins/test_policy_sync.py). The device channel endpoints are unnamed: devices call them with
their own bearer credential (tests/checkins/test_channel_http.py).
"""

from __future__ import annotations

GA, ESM, RO = "ga", "esm", "ro"
ALL = {GA: 200, ESM: 200, RO: 200}
POST_ONLY = {GA: 405, ESM: 405, RO: 405}


def _device():
    from devices.models import Device

    return Device.objects.create(
        display_name="ACCESS-PC-01", os="windows", managed_by="mde", management_type="MicrosoftSense"
    )


def _group():
    from devices.models import Group

    return Group.objects.create(name="Access check group")


ACCESS = {
    "checkins:device_panel": (lambda: {"pk": _device().pk}, ALL),
    "checkins:device_sync": (lambda: {"pk": _device().pk}, POST_ONLY),
    "checkins:bulk_sync": (None, POST_ONLY),
    "checkins:group_sync": (lambda: {"pk": _group().pk}, POST_ONLY),
}
