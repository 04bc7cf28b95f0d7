"""Bulk actions of All devices at fleet size: Policy sync and delete as a Job a person can watch.

Why: a selection of thousands of devices (or "all devices matching this filter") is too much work for one web
request, so beyond :data:`INLINE_LIMIT` ticked devices the request only records a :class:`console.models.Job`
with the selection and a worker carries it out in batches, keeping the Job's progress for the job page. Small
selections still run at once, with the result on the next page as before.

Re-running a job converges: a Policy sync marks the same devices again, a delete skips devices already gone.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from console import audit
from console.models import Job

from .models import Device
from .selection import Selection

log = logging.getLogger(__name__)

SYNC_JOB = "devices.bulk_sync"
DELETE_JOB = "devices.bulk_delete"
LABELS = {SYNC_JOB: "Policy sync", DELETE_JOB: "Delete"}
INLINE_LIMIT = 100
BATCH = 500
HEAVY_FIELDS = ("agent_state", "desired_fingerprint")


def runs_inline(selection: Selection) -> bool:
    return not selection.is_filter and len(selection.ids) <= INLINE_LIMIT


def start(user, kind: str, selection: Selection, *, back: str) -> Job:
    """Record the job (counted now, for the page) and queue it once this transaction commits."""
    from .tasks import bulk_devices

    total = selection.devices().count()
    job = Job.objects.create(
        kind=kind,
        total=total,
        created_by=user if getattr(user, "pk", None) else None,
        params={**selection.as_params(), "next": back},
        message=f"Waiting for a worker: {LABELS[kind].lower()} of {total:,} device{'s' if total != 1 else ''}.",
    )
    transaction.on_commit(lambda: bulk_devices.delay(job.pk))
    return job


def _progress(job_id: int, **fields) -> None:
    Job.objects.filter(pk=job_id).update(**fields)


def _sync(ids: list[int], actor: audit.Actor) -> tuple[int, int]:
    """Policy sync for one batch; (queued, skipped because not managed by MDE)."""
    from .checkins import request_policy_sync

    outcome = request_policy_sync(Device.objects.filter(pk__in=ids).defer(*HEAVY_FIELDS), actor=actor)
    return len(outcome.queued), len(outcome.refused)


def _delete(ids: list[int]) -> int:
    from .services import delete_devices

    return delete_devices(ids)


def run(job: Job, actor: audit.Actor) -> None:
    """Carry the job out in batches of :data:`BATCH` devices, keeping its progress; the selection is resolved once,
    at the start, so the devices the job reports on are the devices it worked on."""
    selection = Selection.from_params(job.params or {})
    ids = list(selection.devices().order_by("pk").values_list("pk", flat=True))
    _progress(
        job.pk, status=Job.Status.RUNNING, started_at=timezone.now(), total=len(ids), done=0, message=""
    )
    done = queued = skipped = deleted = 0
    try:
        with audit.acting_as(actor):
            for start_at in range(0, len(ids), BATCH):
                batch = ids[start_at : start_at + BATCH]
                if job.kind == SYNC_JOB:
                    q, s = _sync(batch, actor)
                    queued, skipped = queued + q, skipped + s
                else:
                    deleted += _delete(batch)
                done += len(batch)
                _progress(job.pk, done=done, message=_summary(job.kind, queued, skipped, deleted))
    except Exception as exc:
        log.exception("bulk job %s failed", job.pk)
        _progress(
            job.pk,
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            message=f"Stopped after {done:,} devices: {exc}. {_summary(job.kind, queued, skipped, deleted)} "
            "Run the action again to finish the rest.",
        )
        raise
    _progress(
        job.pk,
        status=Job.Status.SUCCEEDED,
        finished_at=timezone.now(),
        done=done,
        total=done,
        message=_summary(job.kind, queued, skipped, deleted),
    )


def _summary(kind: str, queued: int, skipped: int, deleted: int) -> str:
    if kind == SYNC_JOB:
        text = f"Policy sync requested for {queued:,} device{'s' if queued != 1 else ''}."
        if skipped:
            text += (
                f" {skipped:,} skipped: Policy sync is only available for devices that are successfully managed "
                "by Microsoft Defender for Endpoint."
            )
        return text
    return (
        f"Deleted {deleted:,} device{'s' if deleted != 1 else ''}. Each was offboarded from security settings "
        "management in Microsoft Defender for Endpoint."
    )
