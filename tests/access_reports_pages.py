"""Who may open each status page (GET). Walked for every role by tests/console/test_access.py.

Every role views reports (Read Only Operator has the view_* permissions); the device panel follows the device
page (devices.view_device). Factories build a device with a status row for a policy, so the drill-in pages exist.
"""

from __future__ import annotations

GA, ESM, RO = "ga", "esm", "ro"
ALL = {GA: 200, ESM: 200, RO: 200}
SETTING = "device_vendor_msft_policy_config_defender_allowrealtimemonitoring"


def _policy():
    from policies.catalog import get_catalog
    from policies.models import Policy

    profile = get_catalog().profile("Microsoft Defender Antivirus")
    return Policy.objects.create(
        name="ACCESS reports AV",
        policy_type=profile.policy_type,
        profile=profile.name,
        template_id=profile.template_id,
        template_family=profile.template_family,
        values={SETTING: 1},
    )


def _device():
    from devices.models import Device

    return Device.objects.create(
        display_name="ACCESS-REPORTS-01", os="windows", managed_by="mde", management_type="MicrosoftSense"
    )


def _status():
    from django.utils import timezone

    from reports.models import DevicePolicyStatus, DeviceSettingStatus

    policy, device = _policy(), _device()
    DevicePolicyStatus.objects.create(
        device=device, policy=policy, status="succeeded", succeeded_count=1, last_reported_at=timezone.now()
    )
    DeviceSettingStatus.objects.create(
        device=device, policy=policy, setting_key=SETTING, value=1, status="succeeded"
    )
    return policy, device


def _policy_kwargs():
    return {"policy_id": _policy().policy_id}


def _drill_kwargs():
    policy, device = _status()
    return {"policy_id": policy.policy_id, "device_pk": device.pk}


def _setting_kwargs():
    return {**_drill_kwargs(), "setting_key": SETTING}


ACCESS = {
    "reports:overview": (None, ALL),
    "reports:overview_live": (None, ALL),
    "reports:issue_devices": (None, ALL),
    "reports:late_devices": (None, ALL),
    "reports:device_panel_live": (lambda: {"pk": _device().pk}, ALL),
    "reports:policy_monitor": (_policy_kwargs, ALL),
    "reports:policy_monitor_live": (_policy_kwargs, ALL),
    "reports:policy_devices": (_policy_kwargs, ALL),
    "reports:policy_settings": (_policy_kwargs, ALL),
    "reports:policy_device_settings": (_drill_kwargs, ALL),
    "reports:policy_device_settings_live": (_drill_kwargs, ALL),
    "reports:policy_device_setting": (_setting_kwargs, ALL),
    "reports:effective_settings": (None, ALL),
    "reports:effective_settings_live": (None, ALL),
    "reports:effective_devices": (None, ALL),
}
