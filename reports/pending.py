"""Pending marking: a policy or group change shows on the affected devices at once, until they check in.

Receivers (connected in reports.apps) run inside the transaction of the change and only queue a background task
once it commits (``on_commit``), so saving a policy never waits for its fleet:

- ``policies.signals.policy_changed``: the policy's rows on every device that has them become Pending, and
  devices the policy targets now but that have no row for it get a Pending row (or Not applicable, when the
  engine says the policy can't apply there). For a deleted policy (its rows went with it), the rows of other
  policies that configure the same settings on its former devices become Pending: a conflict may be gone.
- ``devices.signals.membership_changed``: the same for the policies assigned to the group, on those devices.
- ``devices.signals.management_changed``: management lost - the device's credential is revoked at once, its
  status rows and their counts are removed and it stops checking in; management gained - it is scheduled and its
  policies show as Pending until its first check-in.

Also here: the policy generation token is replaced whenever anything a check-in resolves against changes, and a
device about to be deleted is taken out of the aggregates first (its rows would otherwise vanish by cascade).
"""

from __future__ import annotations

import logging
from collections import Counter

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from devices import channel, credentials, scheduling
from devices.checkins import retire_devices
from devices.models import Device, GroupMember
from policies.models import Policy, PolicyAssignment

from .ingest import (
    PENDING_MESSAGE,
    apply_deltas,
    ingest,
    insert_missing_policy_rows,
    live_policy_ids,
    mark_pending,
    plan_device,
    remove_devices,
)
from .models import DevicePolicyStatus, PolicyGeneration, Status

log = logging.getLogger(__name__)

_CHUNK = 1000
_NO_COUNTS = (0, 0, 0, 0, 0)  # a row added before the device reports: no setting counted yet
_MESSAGES = {
    Status.PENDING: PENDING_MESSAGE,
    Status.NOT_APPLICABLE: "The policy doesn't apply to this device.",
}


def _later(task, *args) -> None:
    transaction.on_commit(lambda: task.delay(*args), robust=True)


def _now() -> str:
    return timezone.now().isoformat()


def _parse(moment: str | None):
    from django.utils.dateparse import parse_datetime

    return parse_datetime(moment) if moment else None


# ---------------------------------------------------------------------------------------------------------
# Receivers
# ---------------------------------------------------------------------------------------------------------


def bump_generation(sender, **kwargs) -> None:
    PolicyGeneration.bump()


def on_policy_changed(sender, policy=None, kind: str = "updated", device_ids=None, **kwargs) -> None:
    PolicyGeneration.bump()
    policy_id = getattr(policy, "pk", None)
    keys = sorted((getattr(policy, "values", None) or {}).keys()) if kind == "deleted" else []
    _later(
        mark_policy_pending, policy_id if kind != "deleted" else None, sorted(device_ids or []), keys, _now()
    )


def on_membership_changed(sender, group=None, device_ids=None, **kwargs) -> None:
    if group is None or not device_ids:
        return
    policy_ids = sorted(set(PolicyAssignment.objects.filter(group=group).values_list("policy_id", flat=True)))
    if policy_ids:
        _later(mark_devices_pending, sorted(device_ids), policy_ids, _now())


def on_management_changed(sender, device=None, managed: bool = False, **kwargs) -> None:
    if device is None:
        return
    if not managed:
        credentials.revoke(device)  # at once: a device out of scope must not read policy any more
    _later(management_changed_task, device.pk, bool(managed))


def on_policy_deleting(sender, instance=None, **kwargs) -> None:
    """Lock the policy row before its rows are deleted: a check-in holding it (FOR KEY SHARE in
    ingest.live_policy_ids) finishes first, and later ones see the policy gone, so no row is left behind."""
    if instance is not None and instance.pk is not None:
        list(Policy.objects.select_for_update().filter(pk=instance.pk).values_list("pk"))


def on_device_deleted(sender, instance=None, **kwargs) -> None:
    """Before a device's rows go by cascade, take them out of the aggregates."""
    if instance is not None and instance.pk is not None:
        remove_devices([instance.pk])


# ---------------------------------------------------------------------------------------------------------
# Tasks (idempotent: running one twice leaves the same rows)
# ---------------------------------------------------------------------------------------------------------


@shared_task(ignore_result=True)
def mark_policy_pending(
    policy_id: int | None, device_ids: list[int], shared_keys: list[str], changed_at: str | None = None
) -> int:
    when = _parse(changed_at)
    if policy_id is None or not Policy.objects.filter(pk=policy_id).exists():
        scheduling.notify_mdm(device_ids, when or timezone.now())  # a deleted policy: Intune notifies too
        if device_ids and shared_keys:
            return mark_pending(device_ids, [], shared_keys, changed_at=when)
        return 0
    devices = set(device_ids) | set(
        DevicePolicyStatus.objects.filter(policy_id=policy_id).values_list("device_id", flat=True)
    )
    changed = mark_pending(devices, [policy_id], changed_at=when)
    # Intune notifies its enrolled devices of the change; they check in within minutes (devices.scheduling).
    scheduling.notify_mdm(devices, when or timezone.now())
    return changed + add_missing_rows([policy_id])


@shared_task(ignore_result=True)
def mark_devices_pending(device_ids: list[int], policy_ids: list[int], changed_at: str | None = None) -> int:
    changed = mark_pending(device_ids, policy_ids, changed_at=_parse(changed_at))
    return changed + add_missing_rows(policy_ids, device_ids)


@shared_task(ignore_result=True)
def management_changed_task(device_id: int, managed: bool) -> None:
    device = channel.load_device(device_id)
    if device is None:
        return
    is_managed = channel.channel_of(device) in ("mde", "intune")
    if is_managed != managed:  # it changed again since; the later signal's task does the work
        return
    if not managed:
        retire_devices([device_id])
        return
    Device.objects.filter(pk=device_id, next_checkin_at__isnull=True).update(
        next_checkin_at=scheduling.first_checkin_at(timezone.now())
    )
    initialise_device(device_id)


def initialise_device(device_id: int) -> int:
    """Rows for a newly managed device: every policy that targets it, Pending until its first check-in.

    Only the policies the device has no row for yet are planned and written: a membership change or a check-in
    may have given it some of them already (they raced this task), and those rows are left as they are. The
    device row lock serialises this with every other writer of the device's rows.
    """
    with transaction.atomic():
        if not Device.objects.select_for_update().filter(pk=device_id).exists():
            return 0
        device = channel.load_device(device_id)
        context = channel.load_context(device.generation)
        if channel.channel_of(device) not in ("mde", "intune"):
            return 0
        resolution, _, body = context.resolve(device)
        already = set(
            DevicePolicyStatus.objects.filter(device_id=device_id).values_list("policy_id", flat=True)
        )
        missing = set(resolution.per_policy_settings) - already
        if not missing:
            return 0
        plan = plan_device(device.pk, body["channel"], resolution, None, context.values, scope=missing)
        return ingest([plan], timezone.now()).rows_written


def add_missing_rows(policy_ids: list[int], device_ids: list[int] | None = None) -> int:
    """Devices a policy targets now but that have no row for it get one: Pending (or Not applicable).

    The devices are locked (in id order, like every writer of status rows) and the rows they have are skipped
    before resolving; the insert itself skips any row that exists anyway, and the aggregates move only by the
    rows it inserted, so running this twice or alongside a re-onboarding never fails or double-counts.
    """
    context = channel.current_context()
    created = 0
    for pid in policy_ids:
        policy = context.inputs.get(pid)
        if policy is None or not policy.include_groups:
            continue
        candidates = GroupMember.objects.filter(group_id__in=policy.include_groups)
        if device_ids is not None:
            candidates = candidates.filter(device_id__in=device_ids)
        ids = sorted(set(candidates.values_list("device_id", flat=True)))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            with transaction.atomic():
                list(Device.objects.select_for_update().filter(pk__in=chunk).order_by("pk").values_list("pk"))
                if not live_policy_ids([pid]):  # deleted meanwhile: its rows are gone and must not come back
                    break
                have = set(
                    DevicePolicyStatus.objects.filter(policy_id=pid, device_id__in=chunk).values_list(
                        "device_id", flat=True
                    )
                )
                devices = channel.checkin_queryset().filter(pk__in=[d for d in chunk if d not in have])
                now = timezone.now()
                rows = [
                    (
                        device.pk,
                        pid,
                        status,
                        channel.channel_of(device),
                        *_NO_COUNTS,
                        _MESSAGES[status],
                        now,
                        device.display_name,
                    )
                    for device, status in channel.targeted_devices(devices, context, pid)
                ]
                inserted = insert_missing_policy_rows(rows)
                if inserted:
                    Device.objects.filter(pk__in=[did for did, _, _ in inserted]).update(
                        desired_fingerprint=""
                    )
                    apply_deltas(Counter((p, status) for _, p, status in inserted), {})
                    created += len(inserted)
    return created
