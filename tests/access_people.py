"""Who may GET each page of Tenant administration › Users, Roles and Scope tags (walked by tests/console/test_access.py)."""

from __future__ import annotations

GA, ESM, RO = "ga", "esm", "ro"
GA_ONLY = {GA: 200, ESM: 403, RO: 403}
POST_ONLY = {GA: 405, ESM: 405, RO: 405}  # state changes are POST only; a GET is refused before anything runs


def _user():
    from django.contrib.auth import get_user_model

    return {"pk": get_user_model().objects.get_or_create(username="access-colleague")[0].pk}


def _role():
    from django.contrib.auth.models import Group

    from console.rbac import roles

    roles()  # the built-in role definitions exist
    return {"pk": Group.objects.get(name="Read Only Operator").pk}


def _assignment():
    from django.contrib.auth import get_user_model

    from console.rbac import create_assignment, get_role

    user = get_user_model().objects.get_or_create(username="access-assignee")[0]
    return {
        "pk": create_assignment(
            name="Access probe", role=get_role("Read Only Operator"), members=[user], scope_groups=[]
        ).pk
    }


def _scope_tag():
    from console.models import ScopeTag

    return {"pk": ScopeTag.objects.get_or_create(name="Access probe tag")[0].pk}


def _admin_group():
    from console.models import AdminGroup

    return {"pk": AdminGroup.objects.get_or_create(name="Access probe admins")[0].pk}


ACCESS = {
    "users": (None, GA_ONLY),
    "user_create": (None, GA_ONLY),
    "user_detail": (_user, GA_ONLY),
    "user_enable": (_user, POST_ONLY),
    "user_reset_password": (_user, POST_ONLY),
    "user_delete": (_user, POST_ONLY),
    "roles": (None, GA_ONLY),
    "role_create": (None, GA_ONLY),
    "role_detail": (_role, GA_ONLY),
    "role_delete": (_role, POST_ONLY),
    "assignment_create": (_role, POST_ONLY),
    "assignment_delete": (_assignment, POST_ONLY),
    "admin_groups": (None, GA_ONLY),
    "admin_group_create": (None, GA_ONLY),
    "admin_group_detail": (_admin_group, GA_ONLY),
    "admin_group_delete": (_admin_group, POST_ONLY),
    # Scope tags sit with Roles (Intune: Tenant administration › Roles › Scope tags): Global Administrators only
    "scope_tags": (None, GA_ONLY),
    "scope_tag_create": (None, GA_ONLY),
    "scope_tag_detail": (_scope_tag, GA_ONLY),
    "scope_tag_delete": (_scope_tag, POST_ONLY),
}
