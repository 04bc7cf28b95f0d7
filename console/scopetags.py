"""Intune's scope tags (distributed IT): the one place that decides which tagged objects a person sees.

Policies, device groups and role assignments carry scope tags; an object without a tag has the built-in
"Default" tag, and so does a role assignment without one. A person sees an object when it shares a tag with one
of their role assignments. A superuser, a person holding a built-in role directly (as ``ensure_admin`` and
``create_user`` without an assignment make them), and a member of a Global Administrator assignment see every
object, as in Intune.

Every change to a tag goes through these functions, so each leaves an audit record with before and after.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet

from . import audit
from .models import RoleAssignment, ScopeTag
from .roles import GLOBAL_ADMIN
from .text import problem, validate_name

ALL_TAGS = None
DEFAULT = ScopeTag.DEFAULT_NAME


class ScopeTagError(ValueError):
    """Bad input to a scope tag change; the message says what to fix, and nothing was changed."""


class ScopeTagNameTaken(ScopeTagError):
    """Another tag has the name (the API answers 409)."""


def default_tag() -> ScopeTag:
    tag = ScopeTag.objects.filter(is_builtin=True).first()
    if tag is None:
        tag, _ = ScopeTag.objects.get_or_create(
            name=DEFAULT, defaults={"is_builtin": True, "description": "The scope tag of objects without one"}
        )
    return tag


def tags() -> QuerySet[ScopeTag]:
    default_tag()
    return ScopeTag.objects.all()


def by_graph_id(graph_id: str) -> ScopeTag | None:
    if graph_id == "0":
        return default_tag()
    if not graph_id.isdigit() or len(graph_id) > 18:
        return None
    return ScopeTag.objects.filter(pk=int(graph_id), is_builtin=False).first()


def holds_role_directly(user) -> bool:
    """A built-in role held directly (not through an assignment): every device and every tag. One query per
    request, shared by the device scope (devices.scope) and the tag scope."""
    cached = getattr(user, "_holds_role_directly", None)
    if cached is None:
        cached = user._holds_role_directly = user.groups.exists()
    return cached


def tag_scope(user) -> frozenset[int] | None:
    """The scope tags ``user`` sees objects through (pks), or None for every object."""
    if user is None or not getattr(user, "is_authenticated", False) or user.is_superuser:
        return ALL_TAGS
    cached = getattr(user, "_tag_scope", False)
    if cached is not False:
        return cached
    scope: frozenset[int] | None
    if holds_role_directly(user):
        scope = ALL_TAGS
    else:
        assignments = list(
            RoleAssignment.objects.held_by(user).select_related("role").prefetch_related("scope_tags")
        )
        if not assignments or any(a.role.name == GLOBAL_ADMIN for a in assignments):
            scope = ALL_TAGS
        else:
            default = default_tag().pk
            scope = frozenset(t.pk for a in assignments for t in (a.scope_tags.all() or [None]) if t) | (
                {default} if any(not a.scope_tags.all() for a in assignments) else set()
            )
    user._tag_scope = scope
    return scope


def _through(model):
    field = model._meta.get_field("scope_tags")
    through = field.remote_field.through
    return through, f"{field.m2m_field_name()}_id", f"{field.m2m_reverse_field_name()}_id"


def tag_filter(model, tag_ids: Iterable[int] | None) -> Q:
    """Objects of ``model`` (a model with ``scope_tags``) sharing a tag with ``tag_ids``; untagged is Default."""
    if tag_ids is ALL_TAGS:
        return Q()
    tag_ids = set(tag_ids)
    through, own, tag = _through(model)
    q = Q(pk__in=through.objects.filter(**{f"{tag}__in": tag_ids}).values(own))
    if default_tag().pk in tag_ids:
        q |= ~Q(pk__in=through.objects.values(own))
    return q


def visible(queryset: QuerySet, user) -> QuerySet:
    """``queryset`` (policies or device groups) narrowed to the objects ``user`` sees through scope tags."""
    scope = tag_scope(user)
    if scope is ALL_TAGS:
        return queryset
    return queryset.filter(tag_filter(queryset.model, scope))


def is_visible(obj, user) -> bool:
    scope = tag_scope(user)
    if scope is ALL_TAGS:
        return True
    own = set(obj.scope_tags.values_list("pk", flat=True)) or {default_tag().pk}
    return bool(own & scope)


def names_of(obj) -> list[str]:
    return [t.name for t in obj.scope_tags.all()] or [DEFAULT]


def graph_ids_of(obj) -> list[str]:
    return [t.graph_id for t in obj.scope_tags.all()] or ["0"]


def choosable(user) -> QuerySet[ScopeTag]:
    """The tags ``user`` may put on an object: their own (every tag for someone who sees everything)."""
    scope = tag_scope(user)
    return tags() if scope is ALL_TAGS else tags().filter(pk__in=scope)


def initial_for(user) -> list[int]:
    """What a new object's Scope tags field starts with: Default, or the person's own tags without Default."""
    scope = tag_scope(user)
    default = default_tag().pk
    if scope is ALL_TAGS or default in scope:
        return [default]
    return sorted(scope)


def check_choice(user, chosen: Iterable[ScopeTag]) -> list[ScopeTag]:
    """The tags to store for a choice ``user`` made: refused when a tag is not theirs; Default alone is stored as
    no tag (untagged is Default); nothing chosen is Default too; Default with other tags is kept explicitly."""
    chosen = list({t.pk: t for t in chosen}.values())
    allowed = set(choosable(user).values_list("pk", flat=True))
    outside = sorted(t.name for t in chosen if t.pk not in allowed)
    if outside:
        raise ScopeTagError(
            f"The scope tag “{outside[0]}” isn't one of yours; choose from the scope tags of your role assignment."
        )
    if not chosen and default_tag().pk not in allowed:
        raise ScopeTagError("Choose at least one of your scope tags.")
    if all(t.is_builtin for t in chosen):
        return []
    return sorted(chosen, key=lambda t: (not t.is_builtin, t.name))


def snapshot(tag: ScopeTag) -> dict:
    return {"name": tag.name, "description": tag.description}


def _clean(name: str, description: str, *, exclude_pk: int | None = None) -> tuple[str, str]:
    if len(name or "") > 128:
        raise ScopeTagError("A scope tag name has at most 128 characters.")
    if len(description or "") > 500:
        raise ScopeTagError("A scope tag description has at most 500 characters.")
    name = (name or "").strip()
    if not name:
        raise ScopeTagError("Enter a name for the scope tag.")
    try:
        validate_name(name)
    except Exception as exc:  # ValidationError: its messages say what is wrong
        raise ScopeTagError(" ".join(getattr(exc, "messages", [str(exc)]))) from None
    if len(name) > 128:
        raise ScopeTagError("A scope tag name has at most 128 characters.")
    description = (description or "").strip()
    if len(description) > 500:
        raise ScopeTagError("A scope tag description has at most 500 characters.")
    unsafe = problem(description, "The description", multiline=True)
    if unsafe:
        raise ScopeTagError(unsafe)
    if ScopeTag.objects.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise ScopeTagNameTaken(f"A scope tag named {name!r} already exists.")
    return name, description


@transaction.atomic
def create_tag(*, name: str, description: str = "") -> ScopeTag:
    default_tag()
    name, description = _clean(name, description)
    tag = ScopeTag.objects.create(name=name, description=description)
    audit.record("scopetag.create", tag, object_type="Scope tag", after=snapshot(tag))
    return tag


@transaction.atomic
def update_tag(tag: ScopeTag, *, name: str, description: str) -> ScopeTag:
    if tag.is_builtin:
        raise ScopeTagError("The built-in Default scope tag can't be changed.")
    before = snapshot(tag)
    tag.name, tag.description = _clean(name, description, exclude_pk=tag.pk)
    tag.save(update_fields=["name", "description"])
    old, new = audit.changed(before, snapshot(tag))
    if new:
        audit.record("scopetag.update", tag, object_type="Scope tag", before=old, after=new)
    return tag


@transaction.atomic
def delete_tag(tag: ScopeTag) -> None:
    """Intune refuses to delete a tag still on an object or an assignment: say where it is used."""
    if tag.is_builtin:
        raise ScopeTagError("The built-in Default scope tag can't be deleted.")
    used = {
        "policies": tag.policies.count(),
        "device groups": tag.groups.count(),
        "role assignments": tag.role_assignments.count(),
    }
    in_use = [f"{n} {kind}" for kind, n in used.items() if n]
    if in_use:
        raise ScopeTagError(
            f"The scope tag {tag.name} is still on {', '.join(in_use)}; remove it from them first."
        )
    before = snapshot(tag)
    audit.record("scopetag.delete", tag, object_type="Scope tag", before=before)
    tag.delete()


def set_tags(obj, chosen: Iterable[ScopeTag], *, object_type: str, action: str) -> bool:
    """Put ``chosen`` (already checked) on ``obj``; audit-logged with before and after when it changes."""
    before = names_of(obj)
    obj.scope_tags.set(list(chosen))
    after = names_of(obj)
    if before != after:
        audit.record(
            action, obj, object_type=object_type, before={"scope_tags": before}, after={"scope_tags": after}
        )
        return True
    return False
