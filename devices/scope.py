"""Intune's role-assignment scope: which devices a person (or the owner of an API token) may see and act on.

An assignment scoped to device groups limits its members to the devices in those groups; an assignment with no
scope group, a built-in role held directly, or a superuser covers all devices. Every device list, count, export,
sync and report narrows its queryset through ``scoped`` so what a person sees is one filter, decided here.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from console import scopetags
from console.models import RoleAssignment

from .models import Device, Group, GroupMember

ALL_DEVICES = None


def scope_group_ids(user) -> tuple[int, ...] | None:
    """The device groups ``user`` is limited to, or None for all devices."""
    if user is None or not getattr(user, "is_authenticated", False) or user.is_superuser:
        return ALL_DEVICES
    cached = getattr(user, "_device_scope", False)
    if cached is not False:
        return cached
    scope: tuple[int, ...] | None
    if scopetags.holds_role_directly(user):
        scope = ALL_DEVICES
    else:
        assignments = list(RoleAssignment.objects.held_by(user).prefetch_related("scope_groups"))
        if not assignments or any(not a.scope_groups.all() for a in assignments):
            scope = ALL_DEVICES
        else:
            scope = tuple(sorted({g.pk for a in assignments for g in a.scope_groups.all()}))
    user._device_scope = scope
    return scope


def device_filter(group_ids: tuple[int, ...] | None) -> Q:
    if group_ids is ALL_DEVICES:
        return Q()
    return Q(pk__in=GroupMember.objects.filter(group_id__in=group_ids).values("device_id"))


def scoped(queryset: QuerySet, user, *, via: str = "") -> QuerySet:
    """``queryset`` narrowed to the devices in ``user``'s scope; ``via`` is the path to the device ("device__")."""
    group_ids = scope_group_ids(user)
    if group_ids is ALL_DEVICES:
        return queryset
    devices = GroupMember.objects.filter(group_id__in=group_ids).values("device_id")
    return queryset.filter(**{f"{via}pk__in" if via else "pk__in": devices})


def visible_devices(user) -> QuerySet[Device]:
    return scoped(Device.objects.all(), user)


def group_in_scope(user, group) -> bool:
    group_ids = scope_group_ids(user)
    return group_ids is ALL_DEVICES or group.pk in group_ids


def visible_groups(user) -> QuerySet[Group]:
    """Device groups ``user`` sees through their scope tags (console.scopetags)."""
    return scopetags.visible(Group.objects.all(), user)


def targetable_groups(user) -> QuerySet[Group]:
    """Groups ``user`` may target with a policy: seen through their tags and inside their device-group scope."""
    groups = visible_groups(user)
    group_ids = scope_group_ids(user)
    return groups if group_ids is ALL_DEVICES else groups.filter(pk__in=group_ids)
