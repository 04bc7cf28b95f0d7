"""What pages, the API, tasks and the demo do with devices and groups: re-evaluate onboarding, tag, delete, switch
the tenant; create, edit and delete groups, add and remove members, validate and try dynamic rules.

Every function here is a complete state change (one transaction, an audit record, the signals), so a page or an
API view only validates its input, picks the function and reports the result in its own format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from console import audit, scopetags
from console.models import Job, ScopeTag, TenantSettings

from . import credentials, membership, onboarding
from .models import Device, Group, GroupMember
from .rules import RuleSyntaxError, parse_rule
from .signals import management_changed, reevaluation_requested

REEVALUATE_JOB = "devices.reevaluate"
BATCH = 500

SOURCE_ENFORCEMENT_SCOPE = "Microsoft 365 Defender › Configuration Management › Enforcement Scope"
SOURCE_INTUNE_CONNECTOR = "Microsoft Intune › Endpoint security › Microsoft Defender for Endpoint"
SOURCE_DEVICE_TAGS = "Microsoft 365 Defender › Device tags"
SOURCE_INTUNE_DELETE = "Microsoft Intune › Devices › All devices (Delete)"

# Tenant switches on each side, as the pages show them.
DEFENDER_FIELDS = [
    "windows_client_enabled",
    "windows_client_scope",
    "windows_server_enabled",
    "windows_server_scope",
    "macos_enabled",
    "macos_scope",
    "linux_enabled",
    "linux_scope",
    "mdc_devices_enabled",
    "configmgr_manages_security",
]
INTUNE_FIELDS = ["allow_mde_enforcement", "entra_connect_sync_configured"]


def reevaluate_device(device: Device, *, source: str = "") -> onboarding.Applied:
    """Onboarding decision for one device under the current tenant, written if it differs; groups follow."""
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        outcome = onboarding.evaluate(locked, TenantSettings.load())
        applied = onboarding.apply(locked, outcome, source=source, recompute_membership=False)
        # Always, not only on a change: a run that died after apply() but before this converges when re-run.
        membership.recompute_devices([locked])
    device.refresh_from_db()
    return applied


@dataclass
class BatchResult:
    evaluated: int = 0
    changed: int = 0
    started: int = 0
    stopped: int = 0


def reevaluate_batch(devices: list[Device], tenant: TenantSettings, *, source: str = "") -> BatchResult:
    """Evaluate a batch in memory and write only the devices whose outcome differs (each in its own
    transaction, so a batch cut short leaves every device either old or new, never half-written)."""
    result = BatchResult(evaluated=len(devices))
    for device in devices:
        if not onboarding.differs(device, onboarding.evaluate(device, tenant)):
            continue  # the common case at scale: nothing to write, no query
        with transaction.atomic():
            # Decide again on the locked row: a tag edited since the batch was read must not be overwritten.
            locked = Device.objects.select_for_update().filter(pk=device.pk).first()
            if locked is None:
                continue
            outcome = onboarding.evaluate(locked, tenant)
            applied = onboarding.apply(locked, outcome, source=source, recompute_membership=False)
        result.changed += applied.changed
        result.started += applied.started
        result.stopped += applied.stopped
    membership.recompute_devices(
        Device.objects.filter(pk__in=[d.pk for d in devices]).only(*membership.RULE_FIELDS)
    )
    return result


def start_reevaluation(user, *, source: str) -> Job:
    """A Job a person can watch, and the task that re-evaluates every device (queued once this commits)."""
    job = Job.objects.create(
        kind=REEVALUATE_JOB,
        total=Device.objects.count(),
        created_by=user if getattr(user, "pk", None) else None,
        params={"source": source},
        message="Waiting for a worker to re-evaluate every device.",
    )
    transaction.on_commit(lambda: reevaluation_requested.send(sender=Job, job=job))
    return job


def latest_job() -> Job | None:
    return Job.objects.filter(kind=REEVALUATE_JOB).order_by("-created_at", "-id").first()


@transaction.atomic
def update_tenant(
    tenant: TenantSettings, cleaned: dict, fields: list[str], user, *, source: str
) -> Job | None:
    """Save the switches that changed, audit them, and re-evaluate every device. None when nothing changed."""
    tenant = TenantSettings.objects.select_for_update().get(pk=tenant.pk)
    before = audit.snapshot(tenant, fields)
    for name in fields:
        setattr(tenant, name, cleaned[name])
    after = audit.snapshot(tenant, fields)
    old, new = audit.changed(before, after)
    if not new:
        return None
    tenant.save(update_fields=[*fields, "updated_at"])
    audit.record("tenant.settings.update", tenant, before=old, after=new | {"source_system": source})
    return start_reevaluation(user, source=source)


def set_tags(device: Device, tags: list[str]) -> onboarding.Applied | None:
    """Defender-side device tags. The device is re-evaluated at once: untagging it in pilot mode takes it out of
    scope, which propagates to Intune (Managed by, labels, managementType). None when the tags did not change."""
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        packed = Device.pack(tags)
        if packed == locked.tags:
            return None
        before = {"tags": locked.tag_list}
        locked.tags = packed
        locked.save(update_fields=["tags", "updated_at"])
        audit.record(
            "device.tags.update",
            locked,
            before=before,
            after={"tags": locked.tag_list, "source_system": SOURCE_DEVICE_TAGS},
        )
        applied = reevaluate_device(locked, source=SOURCE_DEVICE_TAGS)
    device.refresh_from_db()
    return applied


def delete_device(device: Device) -> None:
    """Delete from Intune's All devices: the device is offboarded from security management on the Defender side
    (credential revoked, out of every group, MDEManaged gone) and its object deleted; status rows cascade."""
    with transaction.atomic():
        locked = Device.objects.select_for_update().filter(pk=device.pk).first()
        if locked is None:
            return
        before = audit.snapshot(
            locked,
            ["device_id", "display_name", "os", "managed_by", "management_type", "system_labels",
             "enrollment_status", "tags"],
        )  # fmt: skip
        was_managed = locked.is_mde_managed
        revoked = credentials.revoke(locked)
        groups = membership.forget_device(locked)
        if was_managed:
            management_changed.send(sender=Device, device=locked, managed=False, credential=None)
        audit.record(
            "device.delete",
            locked,
            before=before,
            after={
                "deleted": True,
                "source_system": SOURCE_INTUNE_DELETE,
                "propagated_to": "Microsoft Defender for Endpoint: offboarded from security settings management",
                "credentials_revoked": revoked,
                "groups_left": len(groups),
            },
        )
        locked.delete()


def delete_devices(device_ids: Iterable[int]) -> int:
    count = 0
    for device in Device.objects.filter(pk__in=set(device_ids)).order_by("pk"):
        delete_device(device)
        count += 1
    return count


# ------------------------------------------------------------------------------------------------------ groups

GROUP_FIELDS = ["name", "description", "membership_type", "object_kind", "membership_rule"]


def group_snapshot(group: Group) -> dict:
    return audit.snapshot(group, GROUP_FIELDS) | {"scope_tags": scopetags.names_of(group)}


def _scope_tags(chosen, *, default: bool) -> list | None:
    """The tags to store (console.scopetags.check_choice for the acting person); None leaves them unchanged."""
    user = audit.current_actor().user
    if chosen is None:
        if not default:
            return None
        chosen = ScopeTag.objects.filter(pk__in=scopetags.initial_for(user))
    return scopetags.check_choice(user, chosen)


@transaction.atomic
def create_group(group: Group, *, members: Iterable[int] = (), scope_tags=None) -> Group:
    """Save a new group (validated by GroupForm, unsaved) and fill it: a dynamic group from its rule, an assigned
    one with ``members`` (device pks). ``scope_tags``: None gives the creator's default tags. Raises
    console.scopetags.ScopeTagError for a tag that isn't the creator's (nothing is saved)."""
    tags = _scope_tags(scope_tags, default=True)
    group.save()
    group.scope_tags.set(tags)
    audit.record("group.create", group, after=group_snapshot(group))
    if group.is_dynamic:
        membership.recompute_group(group)
    elif members:
        add_group_members(group, members)
    return group


@transaction.atomic
def update_group(group: Group, *, members: Iterable[int] = (), scope_tags=None) -> Group:
    """Save a group edited in memory (by GroupForm): the change is audited against the stored row, and a dynamic
    group whose rule or type changed is recomputed. ``scope_tags``: None keeps them."""
    tags = _scope_tags(scope_tags, default=False)
    before = group_snapshot(Group.objects.select_for_update().get(pk=group.pk))
    group.save()
    if tags is not None:
        group.scope_tags.set(tags)
    old, new = audit.changed(before, group_snapshot(group))
    if new:
        audit.record("group.update", group, before=old, after=new)
    if group.is_dynamic and {"membership_type", "membership_rule"} & set(new):
        membership.recompute_group(group)
    if members:
        add_group_members(group, members)
    return group


def delete_group(group: Group) -> None:
    """Delete a group; its members lose the policies assigned through it. Raises ProtectedError while a policy
    assignment still uses it (nothing is deleted then)."""
    with transaction.atomic():
        member_ids = set(GroupMember.objects.filter(group=group).values_list("device_id", flat=True))
        audit.record("group.delete", group, before=group_snapshot(group) | {"member_count": len(member_ids)})
        # Before the delete: receivers still see the group's policy assignments and mark its devices.
        membership.notify(group, member_ids)
        group.delete()


def add_group_members(group: Group, device_ids: Iterable[int]) -> set[int]:
    """Add devices to an assigned group; the pks actually added. MembershipError (nothing added) for a dynamic or
    user group, or a device that does not exist."""
    ids = list(dict.fromkeys(device_ids))
    with transaction.atomic():
        if len(ids) != Device.objects.filter(pk__in=ids).count():
            raise membership.MembershipError(
                "A selected device does not exist (any more). Nothing was added."
            )
        added = membership.add_members(group, ids)
        _audit_members("group.members.add", group, added)
    return added


def remove_group_members(group: Group, device_ids: Iterable[int]) -> set[int]:
    """Remove devices from an assigned group; the pks actually removed."""
    with transaction.atomic():
        removed = membership.remove_members(group, device_ids)
        _audit_members("group.members.remove", group, removed)
    return removed


def _audit_members(action: str, group: Group, device_ids: set[int]) -> None:
    if not device_ids:
        return
    names = {"members": list(
        Device.objects.filter(pk__in=device_ids).order_by("display_name").values_list("display_name", flat=True)[:20]
    )}  # fmt: skip
    added = action == "group.members.add"
    audit.record(action, group, before=None if added else names, after=names if added else None)


def rule_error(exc: RuleSyntaxError) -> str:
    return f"Position {exc.position}: {exc.reason}"


def validate_rule(text: str) -> str:
    """A dynamic device group's rule, stripped. ValidationError (code ``rule_syntax`` with the ``position``) says
    where a rule does not parse, so the editor can point at it."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("A dynamic device group needs a membership rule.")
    try:
        parse_rule(text)
    except RuleSyntaxError as exc:
        raise ValidationError(rule_error(exc), code="rule_syntax", params={"position": exc.position}) from exc
    return text


def evaluate_rule(text: str, devices: Iterable[Device]) -> list[tuple[Device, bool]]:
    """Entra's "Validate rules": whether each device matches a (valid) rule; nothing is saved."""
    rule = parse_rule(text)
    return [(device, rule.matches(device.entra_properties())) for device in devices]
