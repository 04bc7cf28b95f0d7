from __future__ import annotations

from .models import TenantSettings
from .roles import sync_roles


def seed(stdout, **options) -> None:
    """The demo tenant: Windows Client on for all devices, Windows Server in pilot mode (tagged devices only)."""
    sync_roles()
    tenant = TenantSettings.load()
    tenant.tenant_name = "Contoso"
    tenant.allow_mde_enforcement = True
    tenant.windows_client_enabled, tenant.windows_client_scope = True, "all"
    tenant.windows_server_enabled, tenant.windows_server_scope = True, "tagged"
    tenant.macos_enabled, tenant.macos_scope = True, "all"
    tenant.linux_enabled, tenant.linux_scope = True, "all"
    tenant.configmgr_manages_security = False
    tenant.save()
    stdout.write("Tenant Contoso: Windows Client (all devices), Windows Server (pilot: MDE-Management tag).")
