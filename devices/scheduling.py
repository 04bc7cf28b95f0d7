"""When a managed device checks in next: every 90 minutes (the seed) with jitter, and a random phase at
onboarding so check-ins never arrive in waves."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings

JITTER = 0.1  # ±10% of the interval


def first_checkin_at(now: datetime, rng: random.Random | None = None) -> datetime:
    """A random phase within one interval, so a fleet onboarded at once spreads over the whole cadence."""
    rng = rng or random
    interval = settings.CHECKIN_INTERVAL.total_seconds()
    return now + timedelta(seconds=rng.uniform(0, interval))


def next_checkin_at(last: datetime, rng: random.Random | None = None) -> datetime:
    rng = rng or random
    interval = settings.CHECKIN_INTERVAL.total_seconds()
    return last + timedelta(seconds=interval * (1 + rng.uniform(-JITTER, JITTER)))
