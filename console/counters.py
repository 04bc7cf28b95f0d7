"""Durable counters (check-ins, rejected reports) kept in the database, bumped once per batch.

Nothing is kept in process memory, so every web process and machine reads the same values (console.metrics
exposes them to Prometheus), and a restart loses no count.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, transaction
from django.db.models import F

log = logging.getLogger(__name__)

CHECKINS = "checkins"
REPORTS_REJECTED = "reports_rejected"


def incr(name: str, n: int = 1) -> None:
    """Add ``n`` to the durable counter ``name`` once the caller's transaction commits (at once in autocommit).

    A rolled-back batch is thus never counted, and the batch's own statements are not held up by the counter's
    row lock. Best effort: a failure is logged and never fails the caller (the check-in records are the truth).
    """
    if n > 0:
        transaction.on_commit(lambda: _add(name, n))


def _add(name: str, n: int) -> None:
    from .models import ServiceCounter

    try:
        with transaction.atomic():
            if not ServiceCounter.objects.filter(name=name).update(value=F("value") + n):
                counter, created = ServiceCounter.objects.get_or_create(name=name, defaults={"value": n})
                if not created:  # another process created it in between
                    ServiceCounter.objects.filter(name=name).update(value=F("value") + n)
    except DatabaseError as exc:
        log.warning("Counter %s could not be incremented by %d: %s", name, n, exc)


def counters() -> dict[str, int]:
    from .models import ServiceCounter

    return dict(ServiceCounter.objects.values_list("name", "value"))
