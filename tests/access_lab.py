"""Who may GET the webhook pages and the device lab (walked by tests/console/test_access.py): Global
Administrators only."""

from __future__ import annotations

GA, ESM, RO = "ga", "esm", "ro"
GA_ONLY = {GA: 200, ESM: 403, RO: 403}
GA_REDIRECT = {GA: 302, ESM: 403, RO: 403}  # POST-only actions: a GET is sent back to their page

POST_ONLY = {GA: 405, ESM: 403, RO: 403}  # a GET is refused (the permission is checked first)


def _lab_device():
    from devices.models import Device

    return Device.objects.get_or_create(display_name="LAB-ACCESS-01", defaults={"os": "windows"})[0]


def _device():
    return {"pk": _lab_device().pk}


def _change():
    from django.utils import timezone

    from devices.models import LocalAdminChange

    device = _lab_device()
    change = LocalAdminChange.objects.create(
        device=device, setting_id="device_vendor_msft_policy_config_defender_excludedpaths", operation="add",
        value=["C:\\Temp"], at=timezone.now(),
    )  # fmt: skip
    return {"pk": device.pk, "change_pk": change.pk}


def _gpo():
    from devices.models import GroupPolicyObject

    return {"pk": GroupPolicyObject.objects.get_or_create(name="Access probe GPO")[0].pk}


ACCESS = {
    "webhook_settings": (None, GA_ONLY),
    "webhook_test": (None, GA_REDIRECT),
    "webhook_deliveries": (None, GA_ONLY),
    "reports:drift": (None, {GA: 200, ESM: 200, RO: 200}),
    "devices:lab": (None, GA_ONLY),
    "devices:lab_device_create": (None, GA_ONLY),
    "devices:lab_device": (_device, GA_ONLY),
    "devices:lab_local_change_add": (_device, POST_ONLY),
    "devices:lab_local_change_remove": (_change, POST_ONLY),
    "devices:lab_gpo_create": (None, GA_ONLY),
    "devices:lab_gpo": (_gpo, GA_ONLY),
    "devices:lab_gpo_setting": (_gpo, POST_ONLY),
    "devices:lab_gpo_delete": (_gpo, POST_ONLY),
}
