"""Celery tasks of the devices app: onboarding one device, and re-evaluating every device after a tenant switch.

Both are idempotent and converge when re-run: each device is written in its own transaction from evaluate()'s
decision, so a task that dies midway leaves devices either in their old or their new state, and running it again
finishes the rest (a re-delivered task after a worker crash does exactly that: acks are late).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from console import audit
from console.models import AuditEvent, Job, TenantSettings

from . import services
from .models import Device

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def onboard_device(device_pk: int, source: str = "") -> None:
    """The device onboarded to Defender for Endpoint (or its facts changed): run the four steps for it."""
    device = Device.objects.filter(pk=device_pk).first()
    if device is not None:
        services.reevaluate_device(device, source=source)


def queue_reevaluation(sender, job: Job, **kwargs) -> None:
    """Receiver of devices.signals.reevaluation_requested (connected in DevicesConfig.ready)."""
    reevaluate_all.delay(job.pk)


def _actor(job: Job) -> audit.Actor:
    user = job.created_by
    if user is None:
        return audit.SYSTEM
    return audit.Actor(user=user, name=user.get_username(), source=AuditEvent.Source.SYSTEM)


@shared_task(ignore_result=True)
def reevaluate_all(job_id: int, batch_size: int = services.BATCH) -> None:
    """Re-evaluate every device in primary-key batches, keeping progress on the Job the page polls."""
    job = Job.objects.filter(pk=job_id).select_related("created_by").first()
    if job is None:
        return
    source = (job.params or {}).get("source", "")
    total = Device.objects.count()
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.RUNNING, started_at=timezone.now(), total=total, done=0, message=""
    )
    done = changed = started = stopped = 0
    last_pk = 0
    try:
        with audit.acting_as(_actor(job)):
            while True:
                # The tenant is read per batch: a switch flipped meanwhile is honoured by the rest of the run.
                tenant = TenantSettings.load()
                batch = list(Device.objects.filter(pk__gt=last_pk).order_by("pk")[:batch_size])
                if not batch:
                    break
                result = services.reevaluate_batch(batch, tenant, source=source)
                last_pk = batch[-1].pk
                done += result.evaluated
                changed += result.changed
                started += result.started
                stopped += result.stopped
                Job.objects.filter(pk=job_id).update(
                    done=min(done, total) if total else done,
                    total=max(total, done),
                    message=f"{changed} devices changed so far.",
                )
    except Exception as exc:
        log.exception("re-evaluation job %s failed", job_id)
        Job.objects.filter(pk=job_id).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            message=f"Stopped after {done} devices: {exc}. Devices already evaluated keep their new state; "
            "run the re-evaluation again to finish.",
        )
        raise
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.SUCCEEDED,
        finished_at=timezone.now(),
        done=done,
        total=done,
        message=f"{done} devices evaluated: {changed} changed ({started} now managed by MDE, "
        f"{stopped} no longer managed).",
    )


@shared_task(ignore_result=True)
def bulk_devices(job_id: int) -> None:
    """A bulk action of All devices (Policy sync or delete) on a selection too large for a web request."""
    from . import bulk

    job = Job.objects.filter(pk=job_id).select_related("created_by").first()
    if job is not None and job.kind in bulk.LABELS:
        bulk.run(job, _actor(job))


@shared_task(ignore_result=True)
def compact_device_counts() -> None:
    """Beat, every minute: fold the fleet-count deltas the database wrote into one row per key (devices.tally)."""
    from . import tally

    before, after = tally.compact()
    if before != after:
        log.info("Fleet counts compacted: %d delta rows -> %d", before, after)
