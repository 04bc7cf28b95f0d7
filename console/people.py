"""Tenant administration › Users, Roles and role assignments (Intune's RBAC pages).

Every change goes through console.rbac, which validates it and writes the audit record; these views only turn
forms into calls and RbacError into a message on the same page (nothing is lost: the form comes back filled).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import Group
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import rbac, scopetags, sso
from .filtersets import UserFilterSet
from .forms import AdminGroupForm, AssignmentForm, RoleForm, ScopeTagForm, UserCreateForm
from .listing import ObjectListView
from .models import AdminGroup, RoleAssignment, ScopeTag
from .tables import UserTable

ADMIN_CRUMBS = [("Tenant administration", "tenant_admin")]


class UserListView(ObjectListView):
    permission_required = "auth.view_user"
    queryset = get_user_model().objects.all()
    filterset_class = UserFilterSet
    table_class = UserTable
    template_name = "console/user_list.html"
    title = "Users"
    breadcrumbs = ADMIN_CRUMBS
    export_filename = "users.csv"
    export_columns = [
        ("User name", lambda u: u.username),
        ("Name", lambda u: u.get_full_name()),
        ("Email", lambda u: u.email),
        ("Enabled", lambda u: "Yes" if u.is_active else "No"),
        ("Roles", lambda u: ", ".join(rbac.role_names(u))),
        ("Last sign-in", lambda u: u.last_login.isoformat() if u.last_login else ""),
    ]


def _invite_url(request, path: str) -> str:
    return request.build_absolute_uri(path) if path else ""


@require_http_methods(["GET", "POST"])
@permission_required("auth.add_user", raise_exception=True)
def user_create(request):
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = rbac.create_user(**form.cleaned_data)
        except rbac.RbacError as exc:
            form.add_error(None, str(exc))
        else:
            return render(
                request,
                "console/user_created.html",
                {
                    "user_obj": created.user,
                    "invite": _invite_url(request, created.path),
                    "title": "User created",
                    "breadcrumbs": [*ADMIN_CRUMBS, ("Users", "users")],
                },
            )
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "console/user_form.html",
        {"form": form, "title": "New user", "breadcrumbs": [*ADMIN_CRUMBS, ("Users", "users")]},
        status=status,
    )


@require_GET
@permission_required("auth.view_user", raise_exception=True)
def user_detail(request, pk: int):
    user = get_object_or_404(get_user_model(), pk=pk)
    return render(
        request,
        "console/user_detail.html",
        {
            "user_obj": user,
            "roles": rbac.role_names(user),
            "assignments": RoleAssignment.objects.held_by(user).select_related("role"),
            "title": user.get_full_name() or user.username,
            "breadcrumbs": [*ADMIN_CRUMBS, ("Users", "users")],
        },
    )


def _user_action(request, pk: int, act) -> object:
    user = get_object_or_404(get_user_model(), pk=pk)
    try:
        return act(user)
    except rbac.RbacError as exc:
        messages.error(request, str(exc))
        return None


@require_POST
@permission_required("auth.change_user", raise_exception=True)
def user_enable(request, pk: int):
    enable = request.POST.get("enabled") == "true"
    if _user_action(request, pk, lambda u: rbac.set_enabled(u, enable, by=request.user) or True):
        messages.success(request, "The account is enabled." if enable else "The account is disabled.")
    return redirect("user_detail", pk=pk)


@require_POST
@permission_required("auth.change_user", raise_exception=True)
def user_reset_password(request, pk: int):
    user = get_object_or_404(get_user_model(), pk=pk)
    path = rbac.reset_password(user)
    return render(
        request,
        "console/user_created.html",
        {
            "user_obj": user,
            "invite": _invite_url(request, path),
            "reset": True,
            "title": "Password reset",
            "breadcrumbs": [*ADMIN_CRUMBS, ("Users", "users")],
        },
    )


@require_POST
@permission_required("auth.delete_user", raise_exception=True)
def user_delete(request, pk: int):
    name = get_object_or_404(get_user_model(), pk=pk).username
    if _user_action(request, pk, lambda u: rbac.delete_user(u, by=request.user) or True):
        messages.success(request, f"User {name} was deleted.")
        return redirect("users")
    return redirect("user_detail", pk=pk)


class InviteAcceptView(auth_views.PasswordResetConfirmView):
    """The one-time invitation (or reset) link: Django's password-reset token, void once a password is set."""

    template_name = "registration/invite_accept.html"
    success_url = reverse_lazy("invite_done")
    reset_url_token = "set-password"


class InviteDoneView(auth_views.PasswordResetCompleteView):
    template_name = "registration/invite_done.html"


# ----------------------------------------------------------------------------------------------- roles


@require_GET
@permission_required("auth.view_group", raise_exception=True)
def role_list(request):
    rows = [
        {
            "group": g,
            "description": g.definition.description,
            "builtin": g.definition.is_builtin,
            "permissions": rbac.actions_of(g),
            "assignments": g.role_assignments.count(),
        }
        for g in rbac.roles()
    ]
    return render(request, "console/roles.html", {"roles": rows})


def _role(pk: int) -> Group:
    return get_object_or_404(Group.objects.select_related("definition"), pk=pk, definition__isnull=False)


@require_http_methods(["GET", "POST"])
@permission_required("auth.add_group", raise_exception=True)
def role_create(request):
    form = RoleForm(request.POST or None, initial={"copy_of": request.GET.get("copy", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            copy_of = rbac.get_role(data["copy_of"]) if data["copy_of"] else None
            group = rbac.create_role(
                name=data["name"],
                description=data["description"],
                actions=data["permissions"],
                copy_of=copy_of,
            )
        except rbac.RbacError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Role {group.name} was created.")
            return redirect("role_detail", pk=group.pk)
    return render(
        request,
        "console/role_form.html",
        {"form": form, "title": "Create custom role", "breadcrumbs": [*ADMIN_CRUMBS, ("Roles", "roles")]},
        status=400 if request.method == "POST" else 200,
    )


def _role_context(request, group: Group, form=None, assignment_form=None) -> dict:
    return {
        "role": group,
        "builtin": group.definition.is_builtin,
        "permissions": rbac.actions_of(group),
        "catalog": rbac.PERMISSION_CATALOG,
        "form": form
        or RoleForm(
            editing=True,
            initial={"description": group.definition.description, "permissions": rbac.actions_of(group)},
        ),
        "assignment_form": assignment_form or AssignmentForm(),
        "assignments": group.role_assignments.prefetch_related(
            "members", "member_groups", "scope_groups", "scope_tags"
        ),
        "title": group.name,
        "breadcrumbs": [*ADMIN_CRUMBS, ("Roles", "roles")],
    }


@require_http_methods(["GET", "POST"])
@permission_required("auth.view_group", raise_exception=True)
def role_detail(request, pk: int):
    group = _role(pk)
    if request.method == "GET":
        return render(request, "console/role_detail.html", _role_context(request, group))
    if not request.user.has_perm("auth.change_group"):
        return render(
            request, "403.html", {"message": "Changing roles needs the Roles: Update permission."}, status=403
        )
    form = RoleForm(request.POST, editing=True)
    if form.is_valid():
        try:
            rbac.update_role(
                group, description=form.cleaned_data["description"], actions=form.cleaned_data["permissions"]
            )
        except rbac.RbacError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Role {group.name} was saved.")
            return redirect("role_detail", pk=pk)
    return render(request, "console/role_detail.html", _role_context(request, group, form=form), status=400)


@require_POST
@permission_required("auth.delete_group", raise_exception=True)
def role_delete(request, pk: int):
    group = _role(pk)
    try:
        rbac.delete_role(group)
    except rbac.RbacError as exc:
        messages.error(request, str(exc))
        return redirect("role_detail", pk=pk)
    messages.success(request, f"Role {group.name} was deleted.")
    return redirect("roles")


@require_POST
@permission_required("auth.change_group", raise_exception=True)
def assignment_create(request, pk: int):
    group = _role(pk)
    form = AssignmentForm(request.POST)
    if form.is_valid():
        try:
            rbac.create_assignment(
                name=form.cleaned_data["name"],
                role=group,
                members=form.cleaned_data["members"],
                member_groups=form.cleaned_data["member_groups"],
                scope_groups=form.cleaned_data["scope_groups"],
                scope_tags=form.cleaned_data["scope_tags"],
            )
        except rbac.RbacError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{group.name} was assigned.")
            return redirect("role_detail", pk=pk)
    return render(
        request, "console/role_detail.html", _role_context(request, group, assignment_form=form), status=400
    )


@require_POST
@permission_required("auth.change_group", raise_exception=True)
def assignment_delete(request, pk: int):
    assignment = get_object_or_404(RoleAssignment, pk=pk)
    role_pk = assignment.role_id
    rbac.delete_assignment(assignment)
    messages.success(request, f"Assignment {assignment.name} was deleted.")
    return redirect("role_detail", pk=role_pk)


# ------------------------------------------------------------------------------------------ scope tags
SCOPE_TAG_CRUMBS = [*ADMIN_CRUMBS, ("Scope tags", "scope_tags")]


@require_GET
@permission_required("auth.view_group", raise_exception=True)
def scope_tag_list(request):
    rows = [
        {
            "tag": t,
            "policies": t.policies.count(),
            "groups": t.groups.count(),
            "assignments": t.role_assignments.count(),
        }
        for t in scopetags.tags()
    ]
    return render(request, "console/scope_tags.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@permission_required("console.add_scopetag", raise_exception=True)
def scope_tag_create(request):
    form = ScopeTagForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tag = scopetags.create_tag(
                name=form.cleaned_data["name"], description=form.cleaned_data["description"]
            )
        except scopetags.ScopeTagError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Scope tag {tag.name} was created.")
            return redirect("scope_tags")
    return render(
        request,
        "console/scope_tag_form.html",
        {"form": form, "title": "Create scope tag", "breadcrumbs": SCOPE_TAG_CRUMBS, "button": "Create"},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
@permission_required("auth.view_group", raise_exception=True)
def scope_tag_detail(request, pk: int):
    tag = get_object_or_404(ScopeTag, pk=pk)
    editable = not tag.is_builtin and request.user.has_perm("console.change_scopetag")
    form = ScopeTagForm(request.POST or None, initial={"name": tag.name, "description": tag.description})
    if request.method == "POST":
        if not editable:
            return render(
                request,
                "403.html",
                {"message": "The Default scope tag is built in, and changing tags needs Scope tags: Update."},
                status=403,
            )
        if form.is_valid():
            try:
                scopetags.update_tag(
                    tag, name=form.cleaned_data["name"], description=form.cleaned_data["description"]
                )
            except scopetags.ScopeTagError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Scope tag {tag.name} was saved.")
                return redirect("scope_tags")
        tag.refresh_from_db()
    return render(
        request,
        "console/scope_tag_form.html",
        {
            "form": form,
            "tag": tag,
            "editable": editable,
            "title": tag.name,
            "breadcrumbs": SCOPE_TAG_CRUMBS,
            "button": "Save",
            "policies": tag.policies.order_by("name")[:50],
            "groups": tag.groups.order_by("name")[:50],
            "assignments": tag.role_assignments.order_by("name")[:50],
        },
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@permission_required("console.delete_scopetag", raise_exception=True)
def scope_tag_delete(request, pk: int):
    tag = get_object_or_404(ScopeTag, pk=pk)
    try:
        scopetags.delete_tag(tag)
    except scopetags.ScopeTagError as exc:
        messages.error(request, str(exc))
        return redirect("scope_tag_detail", pk=pk)
    messages.success(request, f"Scope tag {tag.name} was deleted.")
    return redirect("scope_tags")


# ------------------------------------------------------------------------------------------ admin groups
ADMIN_GROUP_CRUMBS = [*ADMIN_CRUMBS, ("Admin groups", "admin_groups")]


@require_GET
@permission_required("auth.view_user", raise_exception=True)
def admin_group_list(request):
    groups = AdminGroup.objects.prefetch_related("members", "role_assignments__role")
    return render(
        request,
        "console/admin_groups.html",
        {"groups": groups, "sso_managed": _sso_managed(), "sso_provider": sso.provider_name()},
    )


def _sso_managed() -> set[int]:
    """The admin groups whose membership follows the single sign-on claims (OIDC_GROUP_MAP)."""
    return {group.pk for group in sso.managed_admin_groups()} if sso.enabled() else set()


@require_http_methods(["GET", "POST"])
@permission_required("console.add_admingroup", raise_exception=True)
def admin_group_create(request):
    form = AdminGroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = rbac.create_admin_group(
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                members=form.cleaned_data["members"],
            )
        except rbac.RbacError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Admin group {group.name} was created.")
            return redirect("admin_groups")
    return render(
        request,
        "console/admin_group_form.html",
        {"form": form, "title": "New admin group", "breadcrumbs": ADMIN_GROUP_CRUMBS, "button": "Create"},
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
@permission_required("auth.view_user", raise_exception=True)
def admin_group_detail(request, pk: int):
    group = get_object_or_404(AdminGroup, pk=pk)
    editable = request.user.has_perm("console.change_admingroup")
    initial = {
        "name": group.name,
        "description": group.description,
        "members": list(group.members.values_list("pk", flat=True)),
    }
    form = AdminGroupForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if not editable:
            return render(
                request,
                "403.html",
                {"message": "Changing admin groups needs a Global Administrator."},
                status=403,
            )
        if form.is_valid():
            try:
                rbac.update_admin_group(
                    group,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    members=form.cleaned_data["members"],
                )
            except rbac.RbacError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Admin group {group.name} was saved.")
                return redirect("admin_groups")
        group.refresh_from_db()
    return render(
        request,
        "console/admin_group_form.html",
        {
            "form": form,
            "group": group,
            "editable": editable,
            "title": group.name,
            "breadcrumbs": ADMIN_GROUP_CRUMBS,
            "button": "Save",
            "assignments": group.role_assignments.select_related("role"),
            "sso_managed": group.pk in _sso_managed(),
            "sso_provider": sso.provider_name(),
        },
        status=400 if request.method == "POST" else 200,
    )


@require_POST
@permission_required("console.delete_admingroup", raise_exception=True)
def admin_group_delete(request, pk: int):
    group = get_object_or_404(AdminGroup, pk=pk)
    try:
        rbac.delete_admin_group(group)
    except rbac.RbacError as exc:
        messages.error(request, str(exc))
        return redirect("admin_group_detail", pk=pk)
    messages.success(request, f"Admin group {group.name} was deleted.")
    return redirect("admin_groups")
