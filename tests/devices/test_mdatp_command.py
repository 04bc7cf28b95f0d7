"""`manage.py mdatp_config`: a local change on a simulated Linux device lands on its agent state, a managed
property is refused as on the device, and bad arguments get a clear message."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from devices.models import Device

pytestmark = pytest.mark.django_db

MANAGED_CLOUD = "linux_mdatp_managed_cloudservice_enabled"


def _linux(name: str = "lnx-app-01", **state) -> Device:
    return Device.objects.create(display_name=name, os="linux", managed_by="mde", agent_state=state)


def test_a_local_value_is_kept_on_the_agent_state_and_a_managed_one_is_refused():
    device = _linux(preferences={}, applied={MANAGED_CLOUD: True}, managed=[MANAGED_CLOUD])
    out = io.StringIO()
    call_command("mdatp_config", "lnx-app-01", "cloud-diagnostic", "--value", "required", stdout=out)
    assert out.getvalue().strip() == "Configuration property updated"
    device.refresh_from_db()
    assert device.agent_state["local"] == {"cloudService.diagnosticLevel": "required"}
    assert device.agent_state["applied"] == {MANAGED_CLOUD: True}  # the managed values are untouched

    with pytest.raises(CommandError, match="can't be changed locally"):
        call_command("mdatp_config", "lnx-app-01", "cloud", "--value", "disabled")
    device.refresh_from_db()
    assert device.agent_state["local"] == {"cloudService.diagnosticLevel": "required"}


def test_bad_arguments_get_clear_messages():
    _linux()
    Device.objects.create(display_name="WS-001", os="windows", managed_by="mde")
    with pytest.raises(CommandError, match="No device is named"):
        call_command("mdatp_config", "lnx-nope", "cloud", "--value", "enabled")
    with pytest.raises(CommandError, match="mdatp is on Linux and macOS"):
        call_command("mdatp_config", "WS-001", "cloud", "--value", "enabled")
    with pytest.raises(CommandError, match="Unknown property"):
        call_command("mdatp_config", "lnx-app-01", "telemetry", "--value", "enabled")
    with pytest.raises(CommandError, match="isn't a value of cloud"):
        call_command("mdatp_config", "lnx-app-01", "cloud", "--value", "maybe")
