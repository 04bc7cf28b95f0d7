"""When a device checks in next, by the channel that delivers its policy.

The rule (one for every kind of check-in): a check-in that finishes - scheduled or a Policy sync - sets the
next one to *that check-in's time + the channel's interval* (±10% jitter). A Policy sync therefore restarts the
cycle: the next scheduled check-in is about one interval after the sync, never the old time.

- **MDE security settings management** (seed): every 90 minutes (``CHECKIN_INTERVAL``), a random phase at
  onboarding so check-ins never arrive in waves.
- **Intune MDM enrollment** (Intune's documented policy refresh intervals for Windows): every 3 minutes for the
  first 15 minutes after enrollment, then every 15 minutes for the next 2 hours, then about every 8 hours.
- **After a policy change** (Intune: when a policy is assigned, unassigned, updated or deleted, Intune immediately
  notifies the device to check in; the notification typically arrives within five minutes): an Intune-enrolled
  device the change concerns gets its next check-in moved up to within 5 minutes (``notify_mdm``), never later
  than it already was. That check-in then follows the rule above: the next one is a full interval of its phase
  later (8 hours once enrollment settled), not another 5 minutes. MDE-managed devices aren't notified: they take
  the change at their next 90-minute check-in or a Policy sync.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Least

from .models import Device, ManagedBy

JITTER = 0.1  # ±10% of the interval
MDM_REGULAR = timedelta(hours=8)
# (phase ends this long after enrollment, interval within the phase, what the device page calls it)
MDM_ENROLLMENT_PHASES = (
    (
        timedelta(minutes=15),
        timedelta(minutes=3),
        "every 3 minutes for the first 15 minutes after enrollment",
    ),
    (timedelta(hours=2, minutes=15), timedelta(minutes=15), "every 15 minutes for 2 hours after enrollment"),
)


MDM_NOTIFICATION_WINDOW = timedelta(minutes=5)  # "typically arrives within five minutes"


@dataclass(frozen=True)
class Cadence:
    """The interval that applies to a device now, and the sentence the device page shows for it."""

    interval: timedelta
    description: str


def cadence(
    channel: str,
    mdm_enrolled_at: datetime | None,
    now: datetime,
    *,
    notified_at: datetime | None = None,
    last_checkin_at: datetime | None = None,
) -> Cadence:
    """MDE's 90 minutes, or the Intune MDM phase the device is in (``mdm_enrolled_at``: when it enrolled).

    ``notified_at`` (Intune's notification of a policy change) not yet answered by a check-in (``last_checkin_at``
    before it) says so, for the device page; the interval stays the phase's, which the next check-in uses.
    """
    if channel != "intune":
        minutes = int(settings.CHECKIN_INTERVAL.total_seconds() // 60)
        return Cadence(settings.CHECKIN_INTERVAL, f"every {minutes} minutes (security settings management)")
    regular = Cadence(MDM_REGULAR, "Intune MDM regular refresh, about every 8 hours")
    if mdm_enrolled_at is not None:
        for ends_after, interval, description in MDM_ENROLLMENT_PHASES:
            if now < mdm_enrolled_at + ends_after:
                regular = Cadence(interval, f"Intune MDM, {description}")
                break
    if notified_at is not None and (last_checkin_at is None or last_checkin_at < notified_at):
        phase = regular.description.removeprefix("Intune MDM, ").removeprefix("Intune MDM ")
        return Cadence(
            regular.interval,
            "Intune MDM, notified of a policy change: checks in within about 5 minutes of the notification, "
            f"then back to {phase}",
        )
    return regular


def notify_mdm(device_ids, now: datetime, rng: random.Random | None = None) -> int:
    """Intune's push after a policy change: the Intune-enrolled devices among ``device_ids`` that check in here get
    their next check-in moved up to within ``MDM_NOTIFICATION_WINDOW`` (never later than it was). Returns how
    many were notified."""
    rng = rng or random
    intune = Q(intune_enrolled=True) | Q(managed_by__in=[ManagedBy.INTUNE, ManagedBy.CO_MANAGED])
    ids = sorted(set(device_ids))
    notified = 0
    for start in range(0, len(ids), 1000):
        chunk = list(
            Device.objects.filter(intune, pk__in=ids[start : start + 1000], next_checkin_at__isnull=False)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not chunk:
            continue
        window = MDM_NOTIFICATION_WINDOW.total_seconds()
        due = Case(
            *[When(pk=pk, then=Value(now + timedelta(seconds=rng.uniform(0, window)))) for pk in chunk]
        )
        notified += Device.objects.filter(pk__in=chunk).update(
            next_checkin_at=Least("next_checkin_at", due), mdm_notified_at=now
        )
    return notified


def first_checkin_at(now: datetime, rng: random.Random | None = None) -> datetime:
    """A random phase within one interval, so a fleet onboarded at once spreads over the whole cadence."""
    rng = rng or random
    interval = settings.CHECKIN_INTERVAL.total_seconds()
    return now + timedelta(seconds=rng.uniform(0, interval))


def first_for(device, channel: str, now: datetime, rng: random.Random | None = None) -> datetime:
    """A random phase within the interval that applies now (MDE: 90 minutes; a new MDM enrollment: 3)."""
    rng = rng or random
    interval = cadence(channel, mdm_enrolled_at(device), now).interval
    return now + timedelta(seconds=rng.uniform(0, interval.total_seconds()))


def next_checkin_at(
    last: datetime, rng: random.Random | None = None, interval: timedelta | None = None
) -> datetime:
    """One interval (MDE's unless given) after the check-in that just finished at ``last``, ±10%."""
    rng = rng or random
    seconds = (interval or settings.CHECKIN_INTERVAL).total_seconds()
    return last + timedelta(seconds=seconds * (1 + rng.uniform(-JITTER, JITTER)))


def next_for(device, channel: str, last: datetime, rng: random.Random | None = None) -> datetime:
    """The next check-in of ``device`` after one on ``channel`` at ``last`` (the rule in the module doc)."""
    return next_checkin_at(last, rng, cadence(channel, mdm_enrolled_at(device), last).interval)


def mdm_enrolled_at(device) -> datetime | None:
    """When an Intune-enrolled device enrolled: the simulation enrolls it when its record is created."""
    return getattr(device, "created_at", None) if device.intune_enrolled else None
