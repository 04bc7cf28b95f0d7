"""Check-ins: the scheduler, the simulated agent runner, Policy sync, and the device page's check-in panel.

Flow (see /work/shared/design/architecture.md):

- Beat ticks ``claim_due_checkins`` every ``CHECKIN_TICK_SECONDS`` (5 s). It claims due devices in chunks
  (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the same select runs in an IMMEDIATE
  transaction, which locks the database), stamps a lease (``checkin_lease_until``) and queues ``checkin_batch``
  tasks of 500 devices on the "checkins" queue. Any number of workers on any number of machines can run them: a
  device is written only while it holds the lease of its batch (compare-and-set), so no device is ever checked
  in twice at once.
- ``run_checkins`` is the simulated MDE agent of each device talking to the service *only* through the device
  channel's protocol (devices.channel), in-process: ask for the desired state, apply it with devices.agent, post
  the report. A check-in with nothing to change costs two statements for the whole batch: the SELECT that loads
  the devices (with their groups and the policy generation) and the UPDATE that moves their schedule.
- ``request_policy_sync`` (the Policy sync button, bulk and per group) queues an immediate check-in on the
  high-priority "sync" queue, for devices successfully managed by MDE only.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from console import audit
from console.broker import queue_depths
from console.datetimes import exact, relative
from policies.catalog import device_value, display_value, get_catalog
from policies.models import Policy
from policies.services import FILTER_IGNORED_WARNING
from reports.ingest import COPY_OBSERVERS, remove_devices
from reports.models import CheckinRecord, DevicePolicyStatus, DeviceSettingStatus

from . import agent, channel, mdatp, scheduling, sources
from .models import Device, Group, ManagedBy, state_of
from .scope import scope_group_ids, scoped

log = logging.getLogger(__name__)

# Devices per check-in task. Each batch pays fixed costs (its messages, lease renewal, the device and context
# loads, two commits); measured with bench_checkins at 100,000 devices, 2 workers, batches of 200 / 500 / 1,000
# made pass 1 1,188 / 1,430 / 1,537 check-ins/s and a settled pass 3,239 / 4,231 / 4,934/s. With 500, what a
# tick tops up (CHECKIN_QUEUE_TARGET = 20 batches, 10,000 devices) plus a worker's prefetched messages is about
# 12,000 devices: 15-20 s of one worker process at pass 1's pace (600-800 a second), inside the 60 s lease; a
# batch that waits longer is a no-op and its devices are claimed again (Leases, below).
BATCH_SIZE = 500
# Leases: how lost work comes back by itself, exactly once.
#
# A device is checked in only by whoever holds its lease (``checkin_lease_until``, compare-and-set on every
# write), so no two workers ever check one device in at once, and a redelivered or duplicated message is a no-op.
# The lease is short: the claimer stamps it, the worker renews it when the batch starts, and the commit clears it.
# When a worker is killed mid-batch, Redis restarts and loses its queues, or PostgreSQL restarts under a batch, the
# lease simply lapses and the next claim tick (every few seconds) takes the devices again: recovered within
# LEASE + one tick, whatever the broker kept or lost. To keep leases from lapsing while batches merely wait in
# the queue, a tick only tops the "checkins" queue up to ``queue_target()`` batches. A Policy sync whose message
# was lost is found the same way: its device keeps ``sync_requested_at`` until a check-in finishes, and a
# request older than SYNC_GRACE with no lease held is claimed by the tick and run on the "sync" queue.
LEASE = timedelta(seconds=settings.CHECKIN_LEASE_SECONDS)
SYNC_GRACE = LEASE
CLAIM_CHUNK = 1000
SYNC_RETRY_SECONDS = 2
SYNC_MAX_ATTEMPTS = 30
HISTORY_DAYS = 30
_APPLY_CACHE_MAX = 4096


def claim_limit() -> int:
    """Most devices one tick claims."""
    return int(getattr(settings, "CHECKIN_CLAIM_MAX_PER_TICK", 10_000))


def queue_target() -> int:
    """Batches a tick keeps queued on "checkins": seconds of work (see BATCH_SIZE), less than one LEASE."""
    return int(getattr(settings, "CHECKIN_QUEUE_TARGET", 20))


# ---------------------------------------------------------------------------------------------------------
# The simulated agent, talking to the channel in-process
# ---------------------------------------------------------------------------------------------------------

_APPLY_CACHE: dict[tuple[int | None, str, bool, str, str], tuple[dict, dict, bool, list]] = {}


def agent_apply(
    state_key: int | None,
    tamper_protection: bool,
    desired: dict,
    fingerprint: str,
    fault_rate: float,
    rng,
    *,
    ours: str = "mde",
    others: sources.DeviceSources = sources.NO_SOURCES,
) -> tuple[dict, dict[str, dict], bool, list[dict]]:
    """One device applies its desired state: (new local state, per-setting results in protocol form, whether
    the local state changed, the effective settings in protocol form).

    The agent is a pure function of (local state, desired state, other sources) when no faults are simulated,
    so devices in the same state share the work: the cache key is the stored state's key (the key of its canonical
    JSON, devices.models.AgentStateField), not a decoded copy. ``ours``: "mde" (security settings
    management) or "mdm" (Intune), for the precedence.
    """
    key = None
    if not fault_rate:
        key = (
            state_key,
            fingerprint,
            bool(tamper_protection),
            ours,
            others.key,
        )
        hit = _APPLY_CACHE.get(key)
        if hit is not None:
            return hit
    stored = state_of(state_key)
    current = agent.set_tamper_protection(agent.AgentState.from_dict(stored), bool(tamper_protection))
    new_state, reports = agent.apply(current, desired, fault_rate=fault_rate, rng=rng)
    state = channel.compact_state(new_state.to_dict())
    effective = agent.effective_entries(
        new_state, others.attempts, local_overrides=others.local_overrides, ours=ours
    )
    out = (
        state,
        {
            k: {"status": r.status, "value": r.value, "errorCode": r.error_code, "message": r.message}
            for k, r in reports.items()
        },
        state != stored,
        [entry.to_dict() for entry in effective],
    )
    if key is not None:
        if len(_APPLY_CACHE) >= _APPLY_CACHE_MAX:
            _APPLY_CACHE.clear()
        _APPLY_CACHE[key] = out
    return out


@dataclass
class CheckinRun:
    checked_in: int = 0
    changed: int = 0
    unchanged: int = 0
    lost: int = 0
    retired: int = 0
    rows_written: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    finished_ids: list[int] = field(default_factory=list)


def run_checkins(
    device_ids: Sequence[int],
    *,
    kind: str = "scheduled",
    lease: datetime,
    fault_rate: float | None = None,
    rng: random.Random | None = None,
) -> CheckinRun:
    """Check in devices that hold ``lease``: each one's agent asks the channel for its desired state, applies
    it and reports back; the channel writes what changed. Devices whose lease was taken over are skipped."""
    started = timezone.now()
    run = CheckinRun()
    fault = settings.AGENT_FAULT_RATE if fault_rate is None else fault_rate
    devices = list(channel.checkin_queryset().filter(pk__any=list(device_ids), checkin_lease_until=lease))
    if not devices:
        return run
    context = channel.load_context(devices[0].generation)
    windows = [d for d in devices if channel.reports_effective(d)]
    other_sources = sources.load_sources(windows)
    plans: list[channel.ReportPlan] = []
    retire: list[int] = []
    for device in devices:
        try:
            response = channel.checkin_response(device, context)
        except channel.ChannelError as exc:
            if exc.code == "not_managed":
                retire.append(device.pk)
            else:
                run.refused[device.pk] = exc.message
            continue
        state, results, state_changed, effective = agent_apply(
            device.agent_state_key,
            device.tamper_protection,
            response["desired"],
            response["desiredFingerprint"],
            fault,
            rng,
            ours="mdm" if response.get("channel") == "intune" else "mde",
            others=other_sources.get(device.pk, sources.NO_SOURCES),
        )
        payload = {
            "protocolVersion": response["protocolVersion"],
            "desiredFingerprint": response["desiredFingerprint"],
            "reportToken": response["reportToken"],
            "settings": results,
        }
        if channel.reports_effective(device):
            payload["effective"] = effective
        if state_changed:  # the agent sends its local state only when it changed
            payload["agentState"] = state
        try:
            plans.append(channel.parse_report(device, payload, context))
        except channel.ChannelError as exc:  # the agent and the channel disagree: a bug worth seeing
            log.error("Check-in report of device %s refused: %s", device.pk, exc.message)
            run.refused[device.pk] = exc.message
    result = channel.commit_reports(plans, kind=kind, lease=lease, started=started, rng=rng)
    run.checked_in = len(result.finished)
    run.finished_ids = sorted(result.finished)
    run.changed = len(result.changed)
    run.unchanged = run.checked_in - run.changed
    run.lost = len(result.lost)
    run.rows_written = result.rows_written + run.unchanged
    if retire:
        run.retired = retire_devices(retire, lease=lease)
    return run


def retire_devices(device_ids: Iterable[int], lease: datetime | None = None) -> int:
    """Devices that no longer get policy (management lost): no more check-ins, status rows removed."""
    ids = list(device_ids)
    qs = Device.objects.filter(pk__in=ids)
    if lease is not None:
        qs = qs.filter(checkin_lease_until=lease)
    stopped = qs.update(next_checkin_at=None, checkin_lease_until=None, sync_requested_at=None)
    remove_devices(ids)
    return stopped


def simulate_restart(device_ids: Iterable[int]) -> int:
    """The devices restart: settings waiting for a restart take effect locally (reported at the next check-in)."""
    done = 0
    for device in Device.objects.filter(pk__in=list(device_ids)).only("id", "agent_state"):
        if device.agent_state:
            state = agent.restart(agent.AgentState.from_dict(device.agent_state))
            Device.objects.filter(pk=device.pk).update(agent_state=channel.compact_state(state.to_dict()))
            done += 1
    return done


# ---------------------------------------------------------------------------------------------------------
# Claiming
# ---------------------------------------------------------------------------------------------------------


def _free(now: datetime) -> Q:
    return Q(checkin_lease_until__isnull=True) | Q(checkin_lease_until__lt=now)


def claim_due(limit: int, now: datetime | None = None) -> tuple[list[int], datetime]:
    """Claim up to ``limit`` due devices: (ids, lease). Concurrent claimers never get the same device."""
    now = now or timezone.now()
    lease = now + LEASE
    with transaction.atomic():
        ids = list(
            Device.objects.select_for_update(skip_locked=True)
            .filter(_free(now), next_checkin_at__lte=now)
            .order_by("next_checkin_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Device.objects.filter(pk__any=ids).update(checkin_lease_until=lease)
    return ids, lease


def claim_devices(
    device_ids: Iterable[int], now: datetime | None = None, *, sync_requested: bool = False
) -> tuple[list[int], datetime]:
    """Claim these devices now if no check-in holds them (Policy sync): (claimed ids, lease).

    With ``sync_requested`` only devices whose Policy sync is still outstanding: a sync message delivered twice,
    or one the scheduler already recovered, does not check a device in again."""
    now = now or timezone.now()
    lease = now + LEASE
    wanted = Q(sync_requested_at__isnull=False) if sync_requested else Q()
    with transaction.atomic():
        ids = list(
            Device.objects.select_for_update(skip_locked=True)
            .filter(_free(now), wanted, pk__any=list(device_ids))
            .values_list("pk", flat=True)
        )
        if ids:
            Device.objects.filter(pk__any=ids).update(checkin_lease_until=lease)
    return ids, lease


def claim_lost_syncs(limit: int, now: datetime | None = None) -> tuple[list[int], datetime]:
    """Claim devices whose Policy sync was requested over SYNC_GRACE ago and that no check-in holds: their
    sync message was lost (a killed worker, a broker restart) or is stuck behind others."""
    now = now or timezone.now()
    lease = now + LEASE
    with transaction.atomic():
        ids = list(
            Device.objects.select_for_update(skip_locked=True)
            .filter(_free(now), sync_requested_at__lte=now - SYNC_GRACE)
            .order_by("sync_requested_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Device.objects.filter(pk__any=ids).update(checkin_lease_until=lease)
    return ids, lease


def renew_lease(
    device_ids: Sequence[int], lease: datetime, now: datetime | None = None
) -> tuple[list[int], datetime]:
    """A worker starting a batch: the devices it still holds, and the lease to report under. (held ids, lease)

    A lease with at least half its time left is kept as it is, and the devices are only read: no claimer takes a
    device whose lease has not run out (``_free``), and the report's compare-and-set catches one that was given
    back meanwhile. Writing it again cost a new version of each device row, and as the row's page rarely has room
    for it, an entry in each of the table's indexes: at 1,000,000 devices, pass 2 of ``bench_checkins`` ran at
    about 2,400 check-ins/s while those lease writes missed their page and 3,300-4,300/s while they fitted.
    A batch that waited in the queue for longer renews the lease for the whole ``LEASE``, as before.
    """
    now = now or timezone.now()
    if lease - now >= LEASE / 2:
        held = set(
            Device.objects.filter(pk__any=list(device_ids), checkin_lease_until=lease).values_list(
                "pk", flat=True
            )
        )
        return [pk for pk in device_ids if pk in held], lease
    renewed = now + LEASE
    with transaction.atomic():
        ids = list(
            Device.objects.select_for_update(skip_locked=True)
            .filter(pk__any=list(device_ids), checkin_lease_until=lease)
            .values_list("pk", flat=True)
        )
        if ids:
            Device.objects.filter(pk__any=ids, checkin_lease_until=lease).update(checkin_lease_until=renewed)
    return ids, renewed


def release_lease(device_ids: Sequence[int], lease: datetime) -> int:
    """Give devices back at once after a failed batch (best effort: if the database is down, the lease lapses)."""
    try:
        return Device.objects.filter(pk__any=list(device_ids), checkin_lease_until=lease).update(
            checkin_lease_until=None
        )
    except DatabaseError as exc:
        log.warning("Could not release %d leases (%s); they lapse within %s", len(device_ids), exc, LEASE)
        return 0


def checking_in() -> Q:
    """Devices that get policy through a channel of ours and so check in (channel.channel_of: mde or intune)."""
    return (
        Q(managed_by=ManagedBy.MDE, management_type="MicrosoftSense")
        | Q(intune_enrolled=True)
        | Q(managed_by__in=[ManagedBy.INTUNE, ManagedBy.CO_MANAGED])
    )


def schedule_unscheduled(limit: int = 2000, now: datetime | None = None) -> int:
    """Give managed devices without a check-in time a random phase in the cadence (self-healing)."""
    now = now or timezone.now()
    managed = checking_in()
    from django.db.models import Case, Value, When

    ids = list(
        Device.objects.filter(managed, next_checkin_at__isnull=True).values_list("pk", flat=True)[:limit]
    )
    for chunk in _chunks(ids, 500):
        Device.objects.filter(pk__in=chunk, next_checkin_at__isnull=True).update(
            next_checkin_at=Case(*[When(pk=pk, then=Value(scheduling.first_checkin_at(now))) for pk in chunk])
        )
    return len(ids)


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@shared_task(ignore_result=True)
def claim_due_checkins(
    limit: int | None = None, batch_size: int = BATCH_SIZE, metrics: str | None = None
) -> int:
    """Beat, every few seconds: re-queue lost Policy syncs, then claim due devices and queue their check-ins,
    topping the "checkins" queue up to ``queue_target()`` batches (see Leases above)."""
    schedule_unscheduled()
    lost, lease = claim_lost_syncs(CLAIM_CHUNK)
    for chunk in _chunks(lost, batch_size):
        checkin_batch.apply_async(args=[chunk, lease.isoformat(), "sync", metrics], queue="sync")
    if lost:
        log.warning("Recovered %d Policy syncs whose check-in was lost; queued again", len(lost))
    limit = claim_limit() if limit is None else limit
    try:
        waiting = queue_depths()["checkins"]  # messages, one batch each
    except Exception as exc:  # the broker can't be asked right now: top up as if the queue were empty
        log.warning("Could not read the checkins queue's depth (%s)", exc)
        waiting = 0
    room = max(0, queue_target() - waiting) * batch_size
    limit = min(limit, room)
    queued = 0
    while queued < limit:
        ids, lease = claim_due(min(CLAIM_CHUNK, limit - queued))
        if not ids:
            break
        for chunk in _chunks(ids, batch_size):
            checkin_batch.apply_async(args=[chunk, lease.isoformat(), "scheduled", metrics])
        queued += len(ids)
    return queued + len(lost)


@shared_task(ignore_result=True, acks_late=True)
def checkin_batch(
    device_ids: list[int], lease: str, kind: str = "scheduled", metrics: str | None = None
) -> None:
    """Check a claimed batch in: renew the lease (a message whose lease was taken back is a no-op), run, and
    give the devices back at once if the run fails (otherwise they wait for the lease to lapse)."""
    lease_at = parse_datetime(lease)
    if lease_at is None:
        log.error("checkin_batch got a malformed lease %r; ignoring %d devices", lease, len(device_ids))
        return
    held, renewed = renew_lease(device_ids, lease_at)
    if not held:
        return
    try:
        if metrics:
            _measured(metrics, held, renewed, kind, claimed_at=lease_at - LEASE)
        else:
            run_checkins(held, kind=kind, lease=renewed)
    except Exception:
        release_lease(held, renewed)
        raise


def _measured(prefix: str, device_ids: list[int], lease: datetime, kind: str, claimed_at: datetime) -> None:
    """Benchmark instrumentation: statements and rows written, per batch, into Redis counters."""
    counter = {"statements": 0, "rows": 0}

    def count(execute, sql, params, many, context):
        out = execute(sql, params, many, context)
        counter["statements"] += 1
        head = sql.lstrip()[:6].upper()
        if head in ("INSERT", "UPDATE", "DELETE"):
            counter["rows"] += max(context["cursor"].rowcount or 0, 0)
        return out

    import redis

    def copied(rows: int) -> None:  # COPY bypasses the execute wrappers
        counter["statements"] += 1
        counter["rows"] += rows

    t0 = time.perf_counter()
    run, failed = CheckinRun(), 0
    COPY_OBSERVERS.append(copied)
    try:
        with connection.execute_wrapper(count):
            run = run_checkins(device_ids, kind=kind, lease=lease)
    except Exception:
        failed = 1
        log.exception("Benchmark batch failed")
    finally:
        COPY_OBSERVERS.remove(copied)
        elapsed = time.perf_counter() - t0
        latency = (timezone.now() - claimed_at).total_seconds()  # from the claim to the report written
        pipe = redis.Redis.from_url(settings.CELERY_BROKER_URL).pipeline()
        pipe.incrby(f"{prefix}:statements", counter["statements"])
        pipe.incrby(f"{prefix}:rows", counter["rows"])
        pipe.incrby(f"{prefix}:checkins", run.checked_in)
        pipe.incrby(f"{prefix}:changed", run.changed)
        pipe.incrby(f"{prefix}:lost", run.lost)
        pipe.incrby(f"{prefix}:errors", failed)
        if run.checked_in:
            pipe.rpush(f"{prefix}:batch_times", f"{run.checked_in}:{elapsed:.6f}:{latency:.3f}")
        pipe.incrby(f"{prefix}:batches", 1)
        if run.finished_ids:
            pipe.rpush(f"{prefix}:finished", *run.finished_ids)
        pipe.execute()


# ---------------------------------------------------------------------------------------------------------
# Policy sync
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SyncRequest:
    queued: list[Device] = field(default_factory=list)
    refused: list[tuple[Device, str]] = field(default_factory=list)
    # Devices whose earlier Policy sync is still pending: not queued again; ``sync_requested_at`` is the time of
    # that request (None only if its check-in finished in between).
    pending: list[Device] = field(default_factory=list)


def request_policy_sync(devices: Iterable[Device], actor: audit.Actor | None = None) -> SyncRequest:
    """Queue an immediate check-in (the "sync" queue) for each device successfully managed by MDE.

    Other devices are refused with the reason (Intune-enrolled devices sync through Intune on their own
    schedule). Sets ``sync_requested_at``, which the device page shows until the check-in has happened.

    Requests coalesce per device: one whose Policy sync is still pending comes back in ``pending`` and gets no
    second task, check-in or audit record. Marking is a compare-and-set (see :func:`_mark_sync_requested`), so
    of two requests at the same moment (two browser tabs, a tab and the Graph API) exactly one queues it.
    """
    outcome = SyncRequest()
    wanted: list[Device] = []
    seen: set[int] = set()
    for device in devices:
        if device.pk in seen:
            continue
        seen.add(device.pk)
        reason = channel.policy_sync_refusal(device)
        if reason:
            outcome.refused.append((device, reason))
        else:
            wanted.append(device)
    if not wanted:
        return outcome
    now = timezone.now()
    with transaction.atomic():
        won = _mark_sync_requested([d.pk for d in wanted], now)
        for device in wanted:
            (outcome.queued if device.pk in won else outcome.pending).append(device)
        _load_pending_times(outcome.pending)
        if outcome.queued:
            _audit_sync_requested(outcome.queued, now, actor or audit.current_actor())
            ids = [d.pk for d in outcome.queued]
            stamp = now.isoformat()
            transaction.on_commit(
                lambda: [policy_sync.apply_async(args=[chunk, stamp]) for chunk in _chunks(ids, BATCH_SIZE)]
            )
    for device in outcome.queued:
        device.sync_requested_at = now
    return outcome


def _mark_sync_requested(ids: Sequence[int], now: datetime) -> set[int]:
    """Stamp ``now`` on the devices that have no Policy sync pending; the ids stamped.

    ``UPDATE … WHERE sync_requested_at IS NULL RETURNING id`` in one statement: PostgreSQL makes a concurrent
    request wait for this row lock and then re-checks the condition, so it sees the request pending instead of
    stamping it again (SQLite runs write transactions one at a time). The check-in that carries the sync out
    clears the stamp (channel: ``sync_requested_at <= started``), and only then can a new request win.
    """
    qn = connection.ops.quote_name
    table, column = qn(Device._meta.db_table), qn("sync_requested_at")
    stamp = connection.ops.adapt_datetimefield_value(now)
    won: set[int] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(set(ids)), 1000):  # in id order: concurrent bulk requests lock alike
            cursor.execute(
                f"UPDATE {table} SET {column} = %s WHERE {qn('id')} IN ({', '.join(['%s'] * len(chunk))}) "
                f"AND {column} IS NULL RETURNING {qn('id')}",
                [stamp, *chunk],
            )
            won.update(row[0] for row in cursor.fetchall())
    return won


def _load_pending_times(devices: list[Device]) -> None:
    """Set each device's ``sync_requested_at`` to the pending request it joins (what the messages show)."""
    if not devices:
        return
    times = dict(Device.objects.filter(pk__in=[d.pk for d in devices]).values_list("pk", "sync_requested_at"))
    for device in devices:
        device.sync_requested_at = times.get(device.pk)


def _audit_sync_requested(devices: list[Device], now: datetime, actor: audit.Actor | None) -> None:
    if len(devices) <= 50:
        for device in devices:
            audit.record(
                "Policy sync requested",
                device,
                before={
                    "sync_requested_at": None
                },  # the compare-and-set only stamps devices with none pending
                after={"sync_requested_at": now.isoformat()},
                actor=actor,
            )
    else:
        audit.record(
            "Policy sync requested",
            object_type="Device",
            object_repr=f"{len(devices)} devices",
            after={"sync_requested_at": now.isoformat(), "device_ids": [d.pk for d in devices]},
            actor=actor,
        )


def already_requested_message(device: Device) -> str:
    """What a person is told when their Policy sync joins one that is still pending."""
    at = device.sync_requested_at
    if at is None:
        return f"A Policy sync of {device.display_name} was already running and has just completed."
    return (
        f"Policy sync already requested at {exact(at)} ({relative(at)}): waiting for "
        f"{device.display_name} to check in. It wasn't requested a second time."
    )


@shared_task(ignore_result=True, acks_late=True)
def policy_sync(device_ids: list[int], requested_at: str, attempt: int = 0) -> None:
    """An immediate check-in for devices whose Policy sync is still outstanding (retries devices busy checking
    in; a device whose sync a check-in already did is left alone)."""
    claimed, lease = claim_devices(device_ids, sync_requested=True)
    if claimed:
        run_checkins(claimed, kind="sync", lease=lease)
    busy = sorted(
        Device.objects.filter(
            pk__in=sorted(set(device_ids) - set(claimed)), sync_requested_at__isnull=False
        ).values_list("pk", flat=True)
    )
    if busy and attempt < SYNC_MAX_ATTEMPTS:
        policy_sync.apply_async(args=[busy, requested_at, attempt + 1], countdown=SYNC_RETRY_SECONDS)
    elif busy:
        log.warning("Policy sync gave up on %d devices that stayed busy: %s", len(busy), busy[:20])


def run_checkin(device_id: int, kind: str = "sync", fault_rate: float | None = None, rng=None) -> CheckinRun:
    """Check one device in now, in-process (claims it first; does nothing while another check-in holds it)."""
    claimed, lease = claim_devices([device_id])
    if not claimed:
        return CheckinRun()
    return run_checkins(claimed, kind=kind, lease=lease, fault_rate=fault_rate, rng=rng)


def sync_state(device: Device, now: datetime | None = None) -> str:
    """ "requested" (waiting for a worker), "checking_in" (a check-in holds the device) or ""."""
    if device.sync_requested_at is None:
        return ""
    now = now or timezone.now()
    if device.checkin_lease_until is not None and device.checkin_lease_until > now:
        return "checking_in"
    return "requested"


@shared_task(ignore_result=True)
def prune_checkin_history(days: int = HISTORY_DAYS) -> int:
    """Daily: keep the last ``days`` of check-in history."""
    cutoff = timezone.now() - timedelta(days=days)
    return CheckinRecord.objects.filter(at__lt=cutoff).delete()[0]


# ---------------------------------------------------------------------------------------------------------
# The check-in panel of the device page (htmx partial) and the Policy sync actions
# ---------------------------------------------------------------------------------------------------------

STATUS_ICONS = {
    "succeeded": ("check", "Succeeded"),
    "error": ("error", "Error"),
    "conflict": ("warning", "Conflict"),
    "not_applicable": ("na", "Not applicable"),
    "pending": ("pending", "Pending"),
}


def policy_message(status: str, row) -> str:
    """The sentence under a policy on the device page: the engine's reason ("The policy applies.") only when
    nothing went wrong; an Error or Conflict policy says how many settings are affected."""
    if row is None:
        return "Waiting for the device to check in and report."
    if status not in ("error", "conflict"):
        return row.message
    parts = []
    if row.error_count:
        parts.append(f"{row.error_count} setting{'s' if row.error_count != 1 else ''} failed to apply")
    if row.conflict_count:
        parts.append(
            f"{row.conflict_count} setting{'s' if row.conflict_count != 1 else ''} conflict with another policy"
        )
    return "; ".join(parts).capitalize() + "." if parts else row.message


def _said_once(setting_items: list[dict[str, Any]]) -> list[str]:
    """Sentences several settings of one policy share (a conflict between the same two policies, one cause of
    errors): the page says each once above the policy's table, and those rows point to it instead."""
    counts: dict[str, int] = {}
    for item in setting_items:
        if item["message"]:
            counts[item["message"]] = counts.get(item["message"], 0) + 1
    shared = [message for message, n in counts.items() if n > 1]
    for item in setting_items:
        item["said_above"] = item["message"] in shared
    return shared


def panel_context(request: HttpRequest, device_pk: int) -> dict[str, Any]:
    """Everything templates/checkins/device_panel.html needs (the lead can include the partial with this)."""
    device = get_object_or_404(scoped(channel.checkin_queryset(), request.user), pk=device_pk)
    catalog = get_catalog()
    statuses = {row.policy_id: row for row in DevicePolicyStatus.objects.filter(device_id=device.pk)}
    settings_by_policy: dict[int, list[DeviceSettingStatus]] = {}
    for row in (
        DeviceSettingStatus.objects.filter(device_id=device.pk)
        .select_related("message_ref")
        .order_by("setting_key_text__text")
    ):
        settings_by_policy.setdefault(row.policy_id, []).append(row)
    targeted: list[int] = []
    filter_ignored: set[int] = set()  # policies whose assignment filter this MDE-managed device ignores
    if channel.channel_of(device) in ("mde", "intune"):
        try:
            resolution, _, _ = channel.load_context(getattr(device, "generation", None)).resolve(device)
            targeted = sorted(resolution.per_policy_settings)
            filter_ignored = {pid for pid, o in resolution.policies.items() if o.filter_ignored}
        except Exception:  # the panel must render even if a policy can't be resolved
            log.exception("Could not resolve the policies of device %s", device.pk)
    policy_ids = set(statuses) | set(targeted)
    for rows in settings_by_policy.values():
        for row in rows:
            policy_ids.update(row.conflict_policy_ids or [])
    policies = {
        p.pk: p
        for p in Policy.objects.filter(pk__in=policy_ids).only(
            "id", "name", "profile", "policy_type", "values"
        )
    }
    rows = []
    for pid in sorted(set(statuses) | set(targeted), key=lambda p: policies[p].name if p in policies else ""):
        if pid not in policies:
            continue
        status_row = statuses.get(pid)
        status = status_row.status if status_row else "pending"
        icon, label = STATUS_ICONS[status]
        setting_items = []
        configured = policies[pid].values or {}
        for srow in settings_by_policy.get(pid, []):
            sdef = catalog.get(srow.setting_key)
            s_icon, s_label = STATUS_ICONS.get(srow.status, ("info", srow.status))
            setting_items.append(
                {
                    "key": srow.setting_key,
                    "name": (sdef.display_name if sdef else "") or srow.setting_key,
                    "policy_value": display_value(srow.setting_key, configured[srow.setting_key], catalog)
                    if srow.setting_key in configured
                    else "—",
                    "device_value": device_value(srow.setting_key, srow.status, srow.value, catalog),
                    "status": srow.status,
                    "icon": s_icon,
                    "label": s_label,
                    "error_code": srow.error_code_hex,
                    "message": srow.message,
                    "conflicts": [policies[c].name for c in srow.conflict_policy_ids or [] if c in policies],
                }
            )
        said_once = _said_once(setting_items)
        rows.append(
            {
                "policy": policies[pid],
                "filter_ignored": pid in filter_ignored,
                "said_once": said_once,
                "status": status,
                "icon": icon,
                "label": label,
                "row": status_row,
                "message": policy_message(status, status_row),
                "settings": setting_items,
            }
        )
    state_text = ""
    managed_file = None
    stored = channel.stored_state(device)
    if device.os in mdatp.PLATFORMS:
        managed_file = managed_file_context(device.os, stored)
    elif stored:
        state = agent.AgentState.from_dict(stored)
        others = sources.sources_for(device) if channel.reports_effective(device) else sources.NO_SOURCES
        effective = None
        if others is not sources.NO_SOURCES:  # Get-MpPreference shows what wins, from the same function
            effective = agent.effective_entries(
                state,
                others.attempts,
                local_overrides=others.local_overrides,
                ours="mdm" if channel.channel_of(device) == "intune" else "mde",
            )
        state_text = agent.format_mp_preference(state, effective=effective)
    sync = sync_state(device)
    refusal = channel.policy_sync_refusal(device)
    history = list(CheckinRecord.objects.filter(device_id=device.pk)[:10])
    last_sync = next((h for h in history if h.kind == "sync"), None)
    delivery = channel.channel_of(device)
    return {
        "device": device,
        "managed_by": device.get_managed_by_display(),
        "channel": delivery,
        "cadence": scheduling.cadence(
            delivery,
            scheduling.mdm_enrolled_at(device),
            timezone.now(),
            notified_at=device.mdm_notified_at,
            last_checkin_at=device.last_checkin_at,
        ),
        "policies": rows,
        "filter_ignored_any": any(row["filter_ignored"] for row in rows),
        "filter_warning": FILTER_IGNORED_WARNING,
        "mp_preference": state_text,
        "managed_file": managed_file,
        "sync_state": sync,
        "polling": bool(sync),
        "can_sync": not refusal and request.user.has_perm("devices.sync_device"),
        "sync_refusal": refusal,
        "history": history,
        "last_sync": last_sync,
        "pending_restart": sorted(stored.get("pending_restart") or {}),
    }


def mdatp_effective(
    platform: str, stored: dict[str, Any]
) -> tuple[agent.AgentState, dict[str, Any], list[mdatp.EffectiveRow]]:
    """macOS / Linux: the agent state, the managed values it applied and what is effective on the device
    (:func:`devices.mdatp.effective`: managed over local ``mdatp config``, the merge policies, the defaults)."""
    state = agent.AgentState.from_dict(stored)
    managed = {key: state.applied[key] for key in state.managed if key in state.applied}
    return state, managed, mdatp.effective(platform, managed, state.local, get_catalog())


def managed_file_context(platform: str, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """macOS / Linux: the managed configuration file the agent wrote (from what it applied), its check against
    the documented keys, the effective values with their source and an ``mdatp health`` summary."""
    if not stored:
        return None
    state, managed, rows = mdatp_effective(platform, stored)
    catalog = get_catalog()
    text = mdatp.render(managed, platform, catalog)
    problems = mdatp.check_linux(text, catalog) if platform == "linux" else mdatp.check_macos(text, catalog)
    return {
        "platform": platform,
        "name": mdatp.FILE_NAME[platform],
        "location": mdatp.FILE_LOCATION[platform],
        "text": text,
        "problems": problems,
        "unverified": mdatp.unverified_notes(managed, platform, catalog),
        "health": mdatp.format_health(mdatp.health(rows)),
        "effective": [
            {"path": r.path, "name": r.name, "value": json.dumps(r.value), "source": r.source, "note": r.note}
            for r in rows
            if r.source != mdatp.SOURCE_DEFAULT or r.value not in (None, [])
        ],
        "local": state.local,
    }


def _render_panel(
    request: HttpRequest, device_pk: int, status: int = 200, error: str = "", notice: str = ""
) -> HttpResponse:
    context = panel_context(request, device_pk)
    context["error"] = error
    context["notice"] = notice
    if request.htmx:
        return render(request, "checkins/device_panel.html", context, status=status)
    context["title"] = f"{context['device'].display_name} · Check-ins"
    return render(request, "checkins/device_panel_page.html", context, status=status)


@require_GET
@permission_required("devices.view_device", raise_exception=True)
def device_panel(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_panel(request, pk)


def _next_url(request: HttpRequest, fallback: str) -> str:
    for candidate in (request.POST.get("next"), request.headers.get("Referer")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
    return fallback


@require_POST
@permission_required("devices.sync_device", raise_exception=True)
def device_sync(request: HttpRequest, pk: int) -> HttpResponse:
    device = get_object_or_404(scoped(Device.objects.all(), request.user), pk=pk)
    outcome = request_policy_sync([device])
    fallback = reverse("checkins:device_panel", args=[pk])
    if outcome.refused:
        reason = outcome.refused[0][1]
        if request.htmx:
            return _render_panel(request, pk, error=reason)
        messages.error(request, reason)
        return redirect(_next_url(request, fallback))
    notice = already_requested_message(outcome.pending[0]) if outcome.pending else ""
    if request.htmx:
        return _render_panel(request, pk, notice=notice)
    if notice:
        messages.info(request, notice)
    else:
        messages.success(request, f"Policy sync requested for {device.display_name}.")
    return redirect(_next_url(request, fallback))


def _names(devices: Sequence[Device]) -> str:
    names = ", ".join(d.display_name for d in devices[:5])
    return names + (f" and {len(devices) - 5} more" if len(devices) > 5 else "")


def _sync_message(request: HttpRequest, outcome: SyncRequest) -> None:
    if outcome.queued:
        n = len(outcome.queued)
        messages.success(request, f"Policy sync requested for {n} device{'s' if n != 1 else ''}.")
    if outcome.pending:
        n = len(outcome.pending)
        messages.info(
            request,
            f"Policy sync already requested for {n} device{'s' if n != 1 else ''} ({_names(outcome.pending)}) "
            "and still waiting for them to check in: not requested a second time.",
        )
    if outcome.refused:
        names = _names([d for d, _ in outcome.refused])
        messages.warning(
            request,
            f"{len(outcome.refused)} device{'s' if len(outcome.refused) != 1 else ''} skipped ({names}): "
            "Policy sync is only available for devices that are successfully managed by Microsoft Defender for "
            "Endpoint.",
        )


def _bad_selection(request: HttpRequest, reason: str) -> HttpResponse:
    """A forged or truncated selection: the console's 400 page with the reason; nothing was synced."""
    return render(request, "devices/bad_request.html", {"reason": reason, "title": "Bad request"}, status=400)


@require_POST
@permission_required("devices.sync_device", raise_exception=True)
def bulk_sync(request: HttpRequest) -> HttpResponse:
    """Policy sync for the devices selected in All devices: ticked ids in one ``ids`` field (or ``pk`` /
    ``device_ids``), or every device matching the list's filter (see devices.selection). A few ticked devices
    sync at once; more, or a filter, become a Job whose page shows the progress (see devices.bulk)."""
    from . import bulk
    from .selection import SelectionError, read_selection

    back = _next_url(request, reverse("home"))
    try:
        selection = read_selection(request.POST, scope=scope_group_ids(request.user))
    except SelectionError as exc:
        return _bad_selection(request, str(exc))
    if not selection.is_filter and not selection.ids:
        messages.error(request, "Select at least one device to sync.")
        return redirect(back)
    if not bulk.runs_inline(selection):
        if not selection.devices().exists():
            messages.error(request, "No device matches the selection any more: nothing to sync.")
            return redirect(back)
        job = bulk.start(request.user, bulk.SYNC_JOB, selection, back=back)
        return redirect("devices:bulk_job", pk=job.pk)
    devices = list(selection.devices())
    if len(devices) != len(selection.ids):
        return _bad_selection(
            request, "Some of the selected devices don't exist (any more). Reload the list."
        )
    _sync_message(request, request_policy_sync(devices))
    return redirect(back)


@require_POST
@permission_required("devices.sync_device", raise_exception=True)
def group_sync(request: HttpRequest, pk: int) -> HttpResponse:
    """Policy sync for every member of a group (members not managed by MDE are skipped and counted)."""
    group = get_object_or_404(Group, pk=pk)
    outcome = request_policy_sync(scoped(group.members.all(), request.user))
    if not outcome.queued and not outcome.refused and not outcome.pending:
        messages.info(request, f"{group.name} has no members to sync.")
    _sync_message(request, outcome)
    return redirect(_next_url(request, reverse("home")))
