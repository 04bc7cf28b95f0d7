"""When a device checks in next, by the channel that delivers its policy.

The rule (one for every kind of check-in): a check-in that finishes - scheduled or a Policy sync - sets the
next one to *that check-in's time + the channel's interval* (±10% jitter). A Policy sync therefore restarts the
cycle: the next scheduled check-in is about one interval after the sync, never the old time.

- **MDE security settings management** (seed): every 90 minutes (``CHECKIN_INTERVAL``), a random phase at
  onboarding so check-ins never arrive in waves.
- **Intune MDM enrollment** (Intune's documented policy refresh intervals for Windows): every 3 minutes for the
  first 15 minutes after enrollment, then every 15 minutes for the next 2 hours, then about every 8 hours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

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


@dataclass(frozen=True)
class Cadence:
    """The interval that applies to a device now, and the sentence the device page shows for it."""

    interval: timedelta
    description: str


def cadence(channel: str, mdm_enrolled_at: datetime | None, now: datetime) -> Cadence:
    """MDE's 90 minutes, or the Intune MDM phase the device is in (``mdm_enrolled_at``: when it enrolled)."""
    if channel != "intune":
        minutes = int(settings.CHECKIN_INTERVAL.total_seconds() // 60)
        return Cadence(settings.CHECKIN_INTERVAL, f"every {minutes} minutes (security settings management)")
    if mdm_enrolled_at is not None:
        for ends_after, interval, description in MDM_ENROLLMENT_PHASES:
            if now < mdm_enrolled_at + ends_after:
                return Cadence(interval, f"Intune MDM, {description}")
    return Cadence(MDM_REGULAR, "Intune MDM regular refresh, about every 8 hours")


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
