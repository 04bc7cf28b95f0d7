"""People and roles as in Intune: users, built-in and custom roles, and role assignments with a scope.

Every change goes through these functions, so each one leaves an audit record with before and after, whether a
person made it in the console, a script through the Graph API or an operator with ``manage.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from . import audit, scopetags
from .models import AdminGroup, ApiToken, RoleAssignment, RoleDefinition
from .roles import GLOBAL_ADMIN, ROLE_DESCRIPTIONS, ROLE_RULES
from .text import validate_name

# Intune's permission groups (Microsoft Intune › Tenant administration › Roles › Create › Permissions):
# resource -> action -> the console permissions ("app_label.codename") the action grants.
PERMISSION_CATALOG: dict[str, dict[str, tuple[str, ...]]] = {
    "Endpoint security policies": {
        "Read": (
            "policies.view_policy",
            "policies.view_policyversion",
            "policies.view_policyassignment",
            "reports.view_devicepolicystatus",
            "reports.view_devicesettingstatus",
        ),
        "Create": ("policies.add_policy",),
        "Update": ("policies.change_policy",),
        "Delete": ("policies.delete_policy",),
        "Assign": (
            "policies.add_policyassignment",
            "policies.change_policyassignment",
            "policies.delete_policyassignment",
        ),
    },
    # Intune: Tenant administration › Roles › Assignment filters (Read, Create, Update, Delete).
    "Assignment filters": {
        "Read": ("policies.view_assignmentfilter",),
        "Create": ("policies.add_assignmentfilter",),
        "Update": ("policies.change_assignmentfilter",),
        "Delete": ("policies.delete_assignmentfilter",),
    },
    "Managed devices": {
        "Read": ("devices.view_device", "devices.view_onboardingevent"),
        "Delete": ("devices.delete_device",),
        "Policy sync": ("devices.sync_device", "devices.change_device"),
    },
    "Groups": {
        "Read": ("devices.view_group",),
        "Create": ("devices.add_group",),
        "Update": ("devices.change_group",),
        "Delete": ("devices.delete_group",),
    },
    "Audit data": {"Read": ("console.view_auditevent", "console.export_auditevent")},
    "Tenant switches": {
        "Update": ("console.view_tenantsettings", "console.change_tenantsettings", "console.manage_tenant"),
    },
    "API tokens": {"Manage": ("console.view_apitoken", "console.manage_apitoken")},
}


class RbacError(ValueError):
    """Bad input to a people-and-roles change; the message says what to fix, and nothing was changed."""


class NameTaken(RbacError):
    """The name is already used by another object of the kind (the API answers 409, as Graph does)."""


def _check_name(value: str) -> None:
    try:
        validate_name(value)
    except ValidationError as exc:
        raise RbacError(" ".join(exc.messages)) from None


def action_key(resource: str, action: str) -> str:
    return f"{resource}: {action}"


ACTION_KEYS = [action_key(r, a) for r, actions in PERMISSION_CATALOG.items() for a in actions]


def _perm_objects(names: set[str]) -> list[Permission]:
    by_name = {
        f"{p.content_type.app_label}.{p.codename}": p
        for p in Permission.objects.select_related("content_type")
    }
    return [by_name[n] for n in sorted(names) if n in by_name]


def perms_for_actions(actions: list[str]) -> set[str]:
    unknown = sorted(set(actions) - set(ACTION_KEYS))
    if unknown:
        raise RbacError(f"Unknown permission {unknown[0]!r}; choose from: {', '.join(ACTION_KEYS)}.")
    granted: set[str] = set()
    for key in actions:
        resource, _, action = key.partition(": ")
        granted |= set(PERMISSION_CATALOG[resource][action])
    return granted


def actions_of(group: Group) -> list[str]:
    """The Intune actions a role holds: those whose every permission the role has."""
    held = {
        f"{app}.{code}" for app, code in group.permissions.values_list("content_type__app_label", "codename")
    }
    existing = {
        f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")
    }
    return [
        action_key(resource, action)
        for resource, actions in PERMISSION_CATALOG.items()
        for action, perms in actions.items()
        if {p for p in perms if p in existing} <= held and any(p in existing for p in perms)
    ]


def is_builtin(group: Group) -> bool:
    return group.name in ROLE_RULES


def ensure_builtin_definitions() -> None:
    """migrate makes them (console.roles.sync_roles); this covers a database whose roles predate definitions."""
    if RoleDefinition.objects.filter(is_builtin=True).count() == len(ROLE_RULES):
        return
    for name in ROLE_RULES:
        group = Group.objects.filter(name=name).first()
        if group is not None:
            RoleDefinition.objects.update_or_create(
                group=group, defaults={"is_builtin": True, "description": ROLE_DESCRIPTIONS[name]}
            )


def roles():
    """Every role, built-in first: groups that have a role definition."""
    ensure_builtin_definitions()
    return (
        Group.objects.filter(definition__isnull=False)
        .select_related("definition")
        .order_by("-definition__is_builtin", "name")
    )


def get_role(name: str) -> Group:
    ensure_builtin_definitions()
    group = Group.objects.filter(name=name, definition__isnull=False).first()
    if group is None:
        known = ", ".join(roles().values_list("name", flat=True))
        raise RbacError(f"Unknown role {name!r}; choose one of: {known}.")
    return group


def _role_snapshot(group: Group) -> dict:
    return {
        "name": group.name,
        "description": group.definition.description if hasattr(group, "definition") else "",
        "permissions": actions_of(group),
    }


@transaction.atomic
def create_role(
    *, name: str, description: str = "", actions: list[str] | None = None, copy_of: Group | None = None
) -> Group:
    """A custom role, empty or a copy of another role's permissions (Intune's Copy of a built-in role)."""
    name = (name or "").strip()
    if not name:
        raise RbacError("Enter a name for the role.")
    _check_name(name)
    if Group.objects.filter(name__iexact=name).exists():
        raise NameTaken(f"A role named {name!r} already exists.")
    group = Group.objects.create(name=name[:150])
    RoleDefinition.objects.create(group=group, description=(description or "")[:500], is_builtin=False)
    if copy_of is not None:
        group.permissions.set(copy_of.permissions.all())
    else:
        group.permissions.set(_perm_objects(perms_for_actions(actions or [])))
    audit.record("role.create", group, object_type="Role", after=_role_snapshot(group))
    return group


def _custom(group: Group) -> None:
    if is_builtin(group):
        raise RbacError(f"{group.name} is a built-in role and cannot be changed; copy it to make your own.")


@transaction.atomic
def update_role(group: Group, *, description: str, actions: list[str]) -> Group:
    _custom(group)
    before = _role_snapshot(group)
    group.definition.description = (description or "")[:500]
    group.definition.save(update_fields=["description"])
    group.permissions.set(_perm_objects(perms_for_actions(actions)))
    before, after = audit.changed(before, _role_snapshot(group))
    audit.record("role.update", group, object_type="Role", before=before, after=after)
    return group


@transaction.atomic
def delete_role(group: Group) -> None:
    _custom(group)
    if group.role_assignments.exists():
        raise RbacError(f"{group.name} is used by role assignments; delete them first.")
    if ApiToken.objects.filter(role=group, revoked_at__isnull=True).exists():
        raise RbacError(f"{group.name} is the role of active API tokens; revoke them first.")
    before = _role_snapshot(group)
    audit.record("role.delete", group, object_type="Role", before=before)
    group.delete()


# ------------------------------------------------------------------------------------------ assignments


def _assignment_snapshot(a: RoleAssignment) -> dict:
    return {
        "name": a.name,
        "role": a.role.name,
        "members": sorted(a.members.values_list("username", flat=True)),
        "member_groups": sorted(a.member_groups.values_list("name", flat=True)),
        "scope": sorted(a.scope_groups.values_list("name", flat=True)) or ["All devices"],
        "scope_tags": sorted(a.scope_tags.values_list("name", flat=True)) or [scopetags.DEFAULT],
    }


@transaction.atomic
def create_assignment(
    *, name: str, role: Group, members, scope_groups, description: str = "", scope_tags=(), member_groups=()
) -> RoleAssignment:
    """Assign ``role`` to ``members`` over ``scope_groups`` (none: all devices) and ``scope_tags`` (none:
    Default): members see the policies and device groups that share one of the tags (console.scopetags)."""
    name = (name or "").strip()
    if not name:
        raise RbacError("Enter a name for the assignment.")
    _check_name(name)
    if RoleAssignment.objects.filter(name__iexact=name).exists():
        raise NameTaken(f"A role assignment named {name!r} already exists.")
    if not hasattr(role, "definition") and role.name not in ROLE_RULES:
        raise RbacError(f"{role.name} is not a role.")
    members, member_groups = list(members), list(member_groups)
    if not members and not member_groups:
        raise RbacError("Choose at least one member: a user or an admin group.")
    a = RoleAssignment.objects.create(name=name[:128], role=role, description=(description or "")[:500])
    a.members.set(members)
    a.member_groups.set(member_groups)
    a.scope_groups.set(list(scope_groups))
    tags = list({t.pk: t for t in scope_tags}.values())
    a.scope_tags.set([] if all(t.is_builtin for t in tags) else tags)
    audit.record("roleassignment.create", a, object_type="Role assignment", after=_assignment_snapshot(a))
    return a


@transaction.atomic
def delete_assignment(a: RoleAssignment) -> None:
    audit.record("roleassignment.delete", a, object_type="Role assignment", before=_assignment_snapshot(a))
    a.delete()


# ---------------------------------------------------------------------------------------------- users


def user_snapshot(user) -> dict:
    return {
        "username": user.username,
        "name": user.get_full_name(),
        "email": user.email,
        "enabled": user.is_active,
        "roles": role_names(user),
    }


def role_names(user) -> list[str]:
    direct = set(user.groups.values_list("name", flat=True))
    assigned = set(RoleAssignment.objects.held_by(user).values_list("role__name", flat=True))
    if user.is_superuser:
        direct.add(GLOBAL_ADMIN)
    return sorted(direct | assigned)


@dataclass(frozen=True)
class Invitation:
    user: object
    path: str  # the one-time link's path: /invite/<uid>/<token>/ (shown once)


def invitation_path(user) -> str:
    """A one-time link to set a password: Django's password-reset token, void once a password is set."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("invite_accept", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)})


@transaction.atomic
def create_user(
    *,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    password: str | None = None,
    role: Group | None = None,
    scope_groups=(),
) -> Invitation:
    """A user with an initial password, or without one and a one-time invitation link to set it."""
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise RbacError("Enter a user name.")
    _check_name(username)
    if User.objects.filter(username__iexact=username).exists():
        raise NameTaken(f"A user named {username!r} already exists.")
    user = User(
        username=username[:150],
        email=(email or "").strip(),
        first_name=first_name[:150],
        last_name=last_name[:150],
    )
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise RbacError(" ".join(exc.messages)) from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    audit.record("user.create", user, object_type="User", after=user_snapshot(user))
    if role is not None:
        create_assignment(
            name=f"{role.name}: {username}"[:128], role=role, members=[user], scope_groups=scope_groups
        )
    return Invitation(user=user, path="" if password else invitation_path(user))


def set_enabled(user, enabled: bool, *, by=None) -> None:
    if by is not None and user.pk == by.pk and not enabled:
        raise RbacError("You cannot disable your own account.")
    if user.is_active == enabled:
        return
    before = {"enabled": user.is_active}
    user.is_active = enabled
    user.save(update_fields=["is_active"])
    audit.record(
        "user.enable" if enabled else "user.disable",
        user,
        object_type="User",
        before=before,
        after={"enabled": enabled},
    )


def reset_password(user) -> str:
    """Voids the current password and returns a new one-time link to set one (shown once)."""
    user.set_unusable_password()
    user.save(update_fields=["password"])
    audit.record(
        "user.reset_password",
        user,
        object_type="User",
        before={"password": "set"},
        after={"password": "invitation link issued"},
    )
    return invitation_path(user)


@transaction.atomic
def delete_user(user, *, by=None) -> None:
    if by is not None and user.pk == by.pk:
        raise RbacError("You cannot delete your own account.")
    before = user_snapshot(user)
    audit.record("user.delete", user, object_type="User", before=before)
    for a in RoleAssignment.objects.filter(members=user):
        old = _assignment_snapshot(a)
        a.members.remove(user)
        audit.record(
            "roleassignment.update",
            a,
            object_type="Role assignment",
            before=old,
            after=_assignment_snapshot(a),
        )
    user.delete()


# ------------------------------------------------------------------------------------------ admin groups


def admin_group_snapshot(group: AdminGroup) -> dict:
    return {
        "name": group.name,
        "description": group.description,
        "members": sorted(group.members.values_list("username", flat=True)),
    }


def _admin_group_fields(name: str, description: str, *, exclude_pk: int | None = None) -> tuple[str, str]:
    name = (name or "").strip()
    if not name:
        raise RbacError("Enter a name for the admin group.")
    _check_name(name)
    if len(name) > 128:
        raise RbacError("An admin group name has at most 128 characters.")
    description = (description or "").strip()
    if len(description) > 500:
        raise RbacError("An admin group description has at most 500 characters.")
    if AdminGroup.objects.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise NameTaken(f"An admin group named {name!r} already exists.")
    return name, description


@transaction.atomic
def create_admin_group(*, name: str, description: str = "", members=()) -> AdminGroup:
    """An Entra security group of users: role assignments may name it as a member."""
    name, description = _admin_group_fields(name, description)
    group = AdminGroup.objects.create(name=name, description=description)
    group.members.set(list(members))
    audit.record("admingroup.create", group, object_type="Admin group", after=admin_group_snapshot(group))
    return group


@transaction.atomic
def update_admin_group(group: AdminGroup, *, name: str, description: str, members) -> AdminGroup:
    """Rename, describe, and set the members (they gain or lose the group's roles at once)."""
    before = admin_group_snapshot(group)
    group.name, group.description = _admin_group_fields(name, description, exclude_pk=group.pk)
    group.save(update_fields=["name", "description"])
    group.members.set(list(members))
    old, new = audit.changed(before, admin_group_snapshot(group))
    if new:
        audit.record("admingroup.update", group, object_type="Admin group", before=old, after=new)
    return group


@transaction.atomic
def delete_admin_group(group: AdminGroup) -> None:
    """Its members lose the roles they held through it; an assignment left without members is refused."""
    orphaned = [
        a.name
        for a in group.role_assignments.all()
        if a.members.count() == 0 and a.member_groups.count() == 1
    ]
    if orphaned:
        raise RbacError(
            f"The admin group {group.name} is the only member of the role assignment {orphaned[0]}; "
            "delete the assignment or add another member first."
        )
    audit.record("admingroup.delete", group, object_type="Admin group", before=admin_group_snapshot(group))
    group.delete()
