"""What views, tasks and the demo do with devices: re-evaluate onboarding, tag, delete, switch the tenant.

Every function here is a complete state change (one transaction per device, an audit record, the signals), so a
view or a task only picks the function and reports the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from console import audit
from console.models import Job, TenantSettings

from . import credentials, membership, onboarding
from .models import Device
from .signals import management_changed

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
    from .tasks import reevaluate_all

    job = Job.objects.create(
        kind=REEVALUATE_JOB,
        total=Device.objects.count(),
        created_by=user if getattr(user, "pk", None) else None,
        params={"source": source},
        message="Waiting for a worker to re-evaluate every device.",
    )
    transaction.on_commit(lambda: reevaluate_all.delay(job.pk))
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
