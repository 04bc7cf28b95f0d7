"""Builders for devices tests: a tenant with known switches and devices with known facts."""

from __future__ import annotations

import itertools
import uuid

from console.models import TenantSettings
from devices.models import Device, Group

TENANT_ID = uuid.UUID("0b4e1c9a-6d2f-4a8e-9f13-5c7b2a1d3e40")
OTHER_TENANT_ID = uuid.UUID("8f2c3a1e-5b7d-4e0a-9c61-2d4b8e7f1a03")
_numbers = itertools.count(1)

OPEN_TENANT = {
    "tenant_id": TENANT_ID,
    "allow_mde_enforcement": True,
    "windows_client_enabled": True,
    "windows_client_scope": "all",
    "windows_server_enabled": True,
    "windows_server_scope": "all",
    "macos_enabled": True,
    "macos_scope": "all",
    "linux_enabled": True,
    "linux_scope": "all",
    "mdc_devices_enabled": True,
    "configmgr_manages_security": False,
    "entra_connect_sync_configured": True,
}


def tenant_values(**overrides) -> TenantSettings:
    """An unsaved tenant (for the pure evaluate() tests): everything allowed unless overridden."""
    return TenantSettings(pk=1, **{**OPEN_TENANT, **overrides})


def set_tenant(**overrides) -> TenantSettings:
    """The saved singleton tenant with everything allowed unless overridden."""
    tenant = TenantSettings.load()
    for name, value in {**OPEN_TENANT, **overrides}.items():
        setattr(tenant, name, value)
    tenant.save()
    return tenant


def device_values(**facts) -> Device:
    """An unsaved device: a Windows 11 workgroup client of this tenant unless overridden."""
    defaults = {
        "display_name": f"CONTOSO-WS-{next(_numbers):04d}",
        "os": "windows",
        "os_version": "10.0.22631.3447",
        "os_edition": "Windows 11 Enterprise 23H2",
        "join_type": "workgroup",
        "tenant_id": TENANT_ID,
    }
    if "tags" in facts and isinstance(facts["tags"], list | tuple):
        facts["tags"] = Device.pack(facts["tags"])
    return Device(**{**defaults, **facts})


def make_device(**facts) -> Device:
    device = device_values(**facts)
    device.save()
    return device


def make_group(name: str, rule: str = "", kind: str = "device") -> Group:
    return Group.objects.create(
        name=name,
        membership_type="dynamic" if rule else "assigned",
        object_kind=kind,
        membership_rule=rule,
    )
