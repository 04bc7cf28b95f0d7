"""Built-in roles, named as in Intune, as Django groups with permissions.

- Global Administrator: everything, including the tenant-wide switches.
- Endpoint Security Manager: endpoint security policies, devices, groups and Policy sync, but not the tenant-wide
  switches (the seed's FAQ: "individuals who are delegated the Endpoint Security Manager role might not have the
  necessary permissions to enable this feature").
- Read Only Operator: views only.

Rules are patterns over "app_label.codename" so permissions added by later models join the right roles when
`migrate` runs; a pattern starting with "!" removes what earlier patterns granted.
"""

from __future__ import annotations

from fnmatch import fnmatch

GLOBAL_ADMIN = "Global Administrator"
ENDPOINT_SECURITY_MANAGER = "Endpoint Security Manager"
READ_ONLY_OPERATOR = "Read Only Operator"

OUR_APPS = ("console", "devices", "policies", "reports", "auth", "axes")

ROLE_RULES: dict[str, tuple[str, ...]] = {
    # axes.*: the sign-in lockouts (Tenant administration › Sign-in lockouts), Global Administrators only
    GLOBAL_ADMIN: (
        "console.*",
        "devices.*",
        "policies.*",
        "reports.*",
        "auth.*",  # Tenant administration › Users, Roles and role assignments
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
    ),
    ENDPOINT_SECURITY_MANAGER: (
        "devices.*",
        "policies.*",
        "reports.*",
        "console.view_*",
        "console.export_auditevent",
        "!console.view_apitoken",
    ),
    READ_ONLY_OPERATOR: ("*.view_*", "!auth.*", "!console.view_apitoken", "!axes.*"),
}

ROLE_DESCRIPTIONS = {
    GLOBAL_ADMIN: "Full access, including tenant-wide switches such as the Microsoft Defender for Endpoint "
    "connection and the enforcement scope.",
    ENDPOINT_SECURITY_MANAGER: "Manages endpoint security policies, devices, groups and Policy sync. Cannot change "
    "tenant-wide switches.",
    READ_ONLY_OPERATOR: "Views devices, policies, reports and audit logs. Cannot change anything.",
}


def permissions_for(role: str, available: list[str]) -> set[str]:
    granted: set[str] = set()
    for pattern in ROLE_RULES[role]:
        if pattern.startswith("!"):
            granted -= {p for p in granted if fnmatch(p, pattern[1:])}
        else:
            granted |= {p for p in available if fnmatch(p, pattern)}
    return granted


def sync_roles() -> None:
    from django.contrib.auth.models import Group, Permission

    perms = {
        f"{p.content_type.app_label}.{p.codename}": p
        for p in Permission.objects.select_related("content_type").filter(
            content_type__app_label__in=OUR_APPS
        )
    }
    from .models import RoleDefinition

    for role in ROLE_RULES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([perms[name] for name in sorted(permissions_for(role, list(perms)))])
        RoleDefinition.objects.update_or_create(
            group=group, defaults={"is_builtin": True, "description": ROLE_DESCRIPTIONS[role]}
        )


def sync_roles_after_migrate(sender, app_config=None, **kwargs) -> None:
    # post_migrate fires once per app; the last of ours carries every permission.
    if app_config is not None and app_config.label == "reports":
        sync_roles()


def role_of(user) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return GLOBAL_ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in ROLE_RULES:
        if role in names:
            return role
    from .models import RoleAssignment

    assigned = sorted(RoleAssignment.objects.held_by(user).values_list("role__name", flat=True).distinct())
    return ", ".join(assigned) or None
