from __future__ import annotations

from console.roles import (
    ENDPOINT_SECURITY_MANAGER,
    GLOBAL_ADMIN,
    READ_ONLY_OPERATOR,
    permissions_for,
)

AVAILABLE = [
    "console.manage_tenant",
    "console.change_tenantsettings",
    "console.view_tenantsettings",
    "console.view_auditevent",
    "devices.sync_device",
    "devices.delete_device",
    "devices.view_device",
    "policies.add_policy",
    "policies.view_policy",
    "auth.view_group",
]


def test_global_administrator_can_change_tenant_switches():
    assert "console.manage_tenant" in permissions_for(GLOBAL_ADMIN, AVAILABLE)


def test_endpoint_security_manager_manages_policies_devices_and_sync_but_not_tenant_switches():
    granted = permissions_for(ENDPOINT_SECURITY_MANAGER, AVAILABLE)
    assert {"policies.add_policy", "devices.sync_device", "devices.delete_device"} <= granted
    assert "console.manage_tenant" not in granted
    assert "console.change_tenantsettings" not in granted


def test_read_only_operator_only_views():
    granted = permissions_for(READ_ONLY_OPERATOR, AVAILABLE)
    assert granted == {p for p in AVAILABLE if ".view_" in p and not p.startswith("auth.")}
