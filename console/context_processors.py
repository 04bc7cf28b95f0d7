from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from .roles import role_of

# Items only some roles see (the page would answer 403 to the others).
NAV_PERMS = {"devices:lab": "console.use_device_lab"}

# (label, url name, icon, section). Sections appear as a pages' left navigation, in this order.
NAV = [
    ("Home", "home", "home", "intune"),
    ("Dashboard", "dashboard", "dashboard", "intune"),
    ("Devices", "devices:list", "devices", "intune"),
    ("Endpoint security", "policies:overview", "shield", "intune"),
    ("Groups", "devices:group_list", "groups", "intune"),
    ("Tenant administration", "tenant_admin", "tenant", "intune"),
    ("Device lab (simulation)", "devices:lab", "devices", "intune"),
    ("Configuration Management", "devices:enforcement_scope", "defender", "defender"),
]


def _nav(request) -> list[dict]:
    items = []
    path = request.path
    for label, name, icon, section in NAV:
        if name in NAV_PERMS and not request.user.has_perm(NAV_PERMS[name]):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue  # the page does not exist yet: no dead link in the shell
        active = path == url if url == "/" else path.startswith(url)
        items.append({"label": label, "url": url, "icon": icon, "section": section, "active": active})
    return items


def shell(request) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    from .models import TenantSettings

    tenant = TenantSettings.objects.filter(pk=1).only("tenant_name").first()
    nav = _nav(request)
    return {
        "nav_intune": [item for item in nav if item["section"] == "intune"],
        "nav_defender": [item for item in nav if item["section"] == "defender"],
        "user_role": role_of(request.user),
        "shell_tenant_name": tenant.tenant_name if tenant else "",
    }
