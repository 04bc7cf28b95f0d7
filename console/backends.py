"""The console's one permission decision point: Django's ModelBackend, with role assignments as a source of roles.

A person holds a role either directly (the built-in role groups, as ``ensure_admin`` makes them) or through an
Intune-style role assignment (console.models.RoleAssignment). Both grant the role group's permissions, so every
``permission_required``, ``has_perm`` and template ``perms`` check sees the same answer.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q


class RoleAssignmentBackend(ModelBackend):
    def _get_group_permissions(self, user_obj):
        return Permission.objects.filter(
            Q(group__user=user_obj)
            | Q(group__role_assignments__members=user_obj)
            | Q(group__role_assignments__member_groups__members=user_obj)  # through an admin group
        ).distinct()


class RoleAssignmentPermissionsBackend(RoleAssignmentBackend):
    """The same permission decisions without password sign-in: used when OIDC_LOCAL_PASSWORDS is off."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        return None
