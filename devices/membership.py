"""Group membership: dynamic device groups follow their rule, assigned groups follow the admin.

Dynamic membership is recomputed when a rule changes (`recompute_group`: the rule is evaluated over every device
in chunks, the result diffed against the stored members, only the difference written) and when devices change
(`recompute_devices`: every dynamic rule against those devices). Both keep `Group.member_count` and send
`membership_changed` with the ids of the devices whose membership changed, so their desired policy is refreshed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import Device, Group, GroupMember
from .rules import Rule, RuleSyntaxError, parse_rule
from .signals import membership_changed

CHUNK = 2000
# The fields entra_properties() reads: loading only these keeps a 100,000-device pass light.
RULE_FIELDS = ("id", "device_id", "entra_object_id", "display_name", "os", "os_version", "join_type",
               "management_type", "system_labels")  # fmt: skip


class MembershipError(ValueError):
    """An operation the group's kind does not allow (e.g. adding members to a dynamic or a user group)."""


def _rule(group: Group) -> Rule | None:
    try:
        return parse_rule(group.membership_rule)
    except (RuleSyntaxError, TypeError):
        return None  # an invalid stored rule matches nothing; forms never save one


def dynamic_groups() -> list[tuple[Group, Rule]]:
    groups = Group.objects.filter(
        membership_type=Group.Membership.DYNAMIC, object_kind=Group.ObjectKind.DEVICE
    ).exclude(membership_rule="")
    return [(group, rule) for group in groups if (rule := _rule(group)) is not None]


def notify(group: Group, device_ids: set[int]) -> None:
    if device_ids:
        membership_changed.send(sender=Group, group=group, device_ids=set(device_ids))


def _delete_members(group_id: int, device_ids: Iterable[int]) -> None:
    ids = list(device_ids)
    for start in range(0, len(ids), CHUNK):
        GroupMember.objects.filter(group_id=group_id, device_id__in=ids[start : start + CHUNK]).delete()


@transaction.atomic
def recompute_group(group: Group) -> tuple[set[int], set[int]]:
    """Make a dynamic device group's members exactly the devices its rule matches; returns (added, removed).

    A user group or an assigned group is left alone, except that a user group never holds devices.
    """
    if group.object_kind != Group.ObjectKind.DEVICE:
        existing = set(GroupMember.objects.filter(group=group).values_list("device_id", flat=True))
        _delete_members(group.pk, existing)
        Group.objects.filter(pk=group.pk).update(member_count=0)
        group.member_count = 0
        notify(group, existing)
        return set(), existing
    if not group.is_dynamic:
        return set(), set()
    rule = _rule(group)
    matched: set[int] = set()
    if rule is not None:
        for device in Device.objects.only(*RULE_FIELDS).order_by().iterator(chunk_size=CHUNK):
            if rule.matches(device.entra_properties()):
                matched.add(device.pk)
    existing = set(GroupMember.objects.filter(group=group).values_list("device_id", flat=True))
    added, removed = matched - existing, existing - matched
    GroupMember.objects.bulk_create(
        [GroupMember(group=group, device_id=pk) for pk in sorted(added)], batch_size=CHUNK
    )
    _delete_members(group.pk, removed)
    now = timezone.now()
    Group.objects.filter(pk=group.pk).update(member_count=len(matched), rule_evaluated_at=now)
    group.member_count, group.rule_evaluated_at = len(matched), now
    notify(group, added | removed)
    return added, removed


@transaction.atomic
def recompute_devices(devices: Iterable[Device]) -> dict[int, set[int]]:
    """Re-evaluate every dynamic device rule for these (freshly loaded) devices; returns {group id: changed}."""
    devices = list(devices)
    if not devices:
        return {}
    groups = dynamic_groups()
    if not groups:
        return {}
    ids = [d.pk for d in devices]
    existing: set[tuple[int, int]] = set()
    group_ids = [g.pk for g, _ in groups]
    for start in range(0, len(ids), CHUNK):
        existing |= set(
            GroupMember.objects.filter(group_id__in=group_ids, device_id__in=ids[start : start + CHUNK])
            .values_list("group_id", "device_id")
        )  # fmt: skip
    wanted: set[tuple[int, int]] = set()
    for device in devices:
        props = device.entra_properties()
        for group, rule in groups:
            if rule.matches(props):
                wanted.add((group.pk, device.pk))
    added, removed = wanted - existing, existing - wanted
    GroupMember.objects.bulk_create(
        [GroupMember(group_id=g, device_id=d) for g, d in sorted(added)], batch_size=CHUNK
    )
    removed_by_group: dict[int, set[int]] = defaultdict(set)
    for g, d in removed:
        removed_by_group[g].add(d)
    for g, device_ids in removed_by_group.items():
        _delete_members(g, device_ids)
    changed: dict[int, set[int]] = defaultdict(set)
    delta: dict[int, int] = defaultdict(int)
    for g, d in added:
        changed[g].add(d)
        delta[g] += 1
    for g, d in removed:
        changed[g].add(d)
        delta[g] -= 1
    by_id = {g.pk: g for g, _ in groups}
    for g, diff in delta.items():
        if diff:
            Group.objects.filter(pk=g).update(member_count=F("member_count") + diff)
    for g, device_ids in changed.items():
        notify(by_id[g], device_ids)
    return dict(changed)


@transaction.atomic
def add_members(group: Group, device_ids: Iterable[int]) -> set[int]:
    """Add devices to an assigned device group; returns the ids that were not members yet."""
    _check_assigned_device_group(group)
    wanted = set(Device.objects.filter(pk__in=set(device_ids)).values_list("pk", flat=True))
    existing = set(
        GroupMember.objects.filter(group=group, device_id__in=wanted).values_list("device_id", flat=True)
    )
    added = wanted - existing
    GroupMember.objects.bulk_create([GroupMember(group=group, device_id=pk) for pk in sorted(added)])
    if added:
        Group.objects.filter(pk=group.pk).update(member_count=F("member_count") + len(added))
        group.refresh_from_db(fields=["member_count"])
    notify(group, added)
    return added


@transaction.atomic
def remove_members(group: Group, device_ids: Iterable[int]) -> set[int]:
    """Remove devices from an assigned device group; returns the ids that were members."""
    _check_assigned_device_group(group)
    ids = set(device_ids)
    removed = set(
        GroupMember.objects.filter(group=group, device_id__in=ids).values_list("device_id", flat=True)
    )
    _delete_members(group.pk, removed)
    if removed:
        Group.objects.filter(pk=group.pk).update(member_count=F("member_count") - len(removed))
        group.refresh_from_db(fields=["member_count"])
    notify(group, removed)
    return removed


def _check_assigned_device_group(group: Group) -> None:
    if group.object_kind != Group.ObjectKind.DEVICE:
        raise MembershipError(
            "This is a user group: it is not targetable for MDE security management (device objects only) "
            "and holds no devices."
        )
    if group.is_dynamic:
        raise MembershipError(
            "Members of a dynamic group follow its membership rule; they cannot be added or removed by hand."
        )


@transaction.atomic
def forget_device(device: Device) -> set[int]:
    """Take a device out of every group before it is deleted; returns the group ids it left."""
    group_ids = set(GroupMember.objects.filter(device=device).values_list("group_id", flat=True))
    if not group_ids:
        return set()
    GroupMember.objects.filter(device=device).delete()
    Group.objects.filter(pk__in=group_ids).update(member_count=F("member_count") - 1)
    for group in Group.objects.filter(pk__in=group_ids):
        notify(group, {device.pk})
    return group_ids
