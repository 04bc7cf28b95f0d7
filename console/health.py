"""The health checks, in one place: the service-health panel, GET /healthz and GET /metrics all read these.

Each check is a small function returning a ``Check``; ``run`` turns a check that raises into "down" with the
reason, so a fault anywhere (database gone, broker unreachable) is reported, never a 500. They are cheap enough
to run on every request: one indexed count or a 0.5 s-bounded broker ping each.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.utils import timezone

from devices.models import Device

from . import heartbeats
from .broker import (
    BROKER_TIMEOUT,
    filesystem_queue_dir,
    is_redis,
    quarantined_count,
    redis_client,
)

OVERDUE_AFTER = timedelta(minutes=10)  # a device this late for its check-in is overdue
LEASE_GRACE = timedelta(seconds=60)  # lost work must be claimed again by then (beat claims every few seconds)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    value: float | None = None
    items: tuple = field(default=())  # e.g. the live workers: (nodename, last_seen) pairs


def run(name: str, check: Callable[[], Check]) -> Check:
    """Runs one check; one that raises is down, with its reason (a health probe never fails itself)."""
    try:
        return check()
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}".strip())


# ---- the checks --------------------------------------------------------------------------------------


def database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return Check("database", True, f"{connection.vendor} answers")


def broker() -> Check:
    url = settings.CELERY_BROKER_URL
    if is_redis(url):
        client = redis_client()
        try:
            client.ping()
        finally:
            client.close()
        where = urlsplit(url)
        return Check("broker", True, f"Redis at {where.hostname}:{where.port or 6379} answers")
    if url.startswith("filesystem://"):
        folder = filesystem_queue_dir()
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            return Check("broker", False, f"the broker folder {folder} is missing or not writable")
        return Check("broker", True, f"filesystem broker in {folder}")
    from kombu import Connection

    with Connection(url, connect_timeout=BROKER_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=1)
    return Check("broker", True, f"{urlsplit(url).scheme} broker answers")


def _fresh_since() -> datetime:
    return timezone.now() - timedelta(seconds=heartbeats.STALE_AFTER)


def workers() -> Check:
    from .models import ServiceHeartbeat

    rows = ServiceHeartbeat.objects.filter(name__startswith=heartbeats.WORKER_PREFIX).order_by("name")
    alive = [
        (r.name.removeprefix(heartbeats.WORKER_PREFIX), r.last_seen)
        for r in rows
        if r.last_seen >= _fresh_since()
    ]
    if alive:
        return Check("worker", True, f"{len(alive)} alive", len(alive), tuple(alive))
    last = max(rows, key=lambda r: r.last_seen, default=None)
    if last is None:
        return Check("worker", False, "no worker heartbeat yet: start a Celery worker", 0)
    return Check(
        "worker",
        False,
        f"no worker heartbeat in the last {heartbeats.STALE_AFTER} s (last: "
        f"{last.name.removeprefix(heartbeats.WORKER_PREFIX)} at {last.last_seen:%Y-%m-%d %H:%M:%S} UTC)",
        0,
    )


def beat() -> Check:
    from .models import ServiceHeartbeat

    row = ServiceHeartbeat.objects.filter(name=heartbeats.BEAT).first()
    if row is None:
        return Check("beat", False, "no beat heartbeat yet: start Celery beat")
    age = max(0.0, (timezone.now() - row.last_seen).total_seconds())
    if age > heartbeats.STALE_AFTER:
        return Check("beat", False, f"no beat heartbeat for {age:.0f} s (last from {row.hostname})", age)
    return Check("beat", True, f"last tick {age:.0f} s ago on {row.hostname}", age)


def lease_backlog() -> Check:
    """Devices whose check-in lease has passed: their batch was lost. Down when one waits past LEASE_GRACE."""
    now = timezone.now()
    expired = Device.objects.filter(checkin_lease_until__lt=now)
    count = expired.count()
    stuck = expired.filter(checkin_lease_until__lt=now - LEASE_GRACE).count() if count else 0
    if stuck:
        return Check(
            "lease_backlog",
            False,
            f"{stuck} device(s) leased but not checked in for over {LEASE_GRACE.seconds} s past the lease",
            count,
        )
    return Check(
        "lease_backlog", True, f"{count} expired lease(s), none older than {LEASE_GRACE.seconds} s", count
    )


def devices_overdue() -> Check:
    """Managed devices (only they have a next check-in) more than OVERDUE_AFTER late."""
    count = Device.objects.filter(next_checkin_at__lt=timezone.now() - OVERDUE_AFTER).count()
    return Check("devices_overdue", True, f"{count} device(s) overdue by more than 10 minutes", count)


def quarantined() -> Check:
    """Broker messages the filesystem transport set aside as unreadable (the folder may not exist)."""
    count = quarantined_count(filesystem_queue_dir())
    return Check("quarantined", True, f"{count} quarantined broker message(s)", count)


# ---- what the endpoint and the panel run ---------------------------------------------------------------

# /healthz: the checks a load balancer or supervisor acts on (a subset with ?check=database,broker).
CHECKS: dict[str, Callable[[], Check]] = {
    "database": database,
    "broker": broker,
    "worker": workers,
    "beat": beat,
    "lease_backlog": lease_backlog,
}
ALIASES = {"db": "database", "workers": "worker", "leases": "lease_backlog"}
# The panel shows these too; they inform but never make /healthz fail.
INFO: dict[str, Callable[[], Check]] = {"devices_overdue": devices_overdue, "quarantined": quarantined}


def resolve(names: list[str]) -> list[str]:
    """The checks asked for by name (aliases allowed); an unknown name raises ValueError naming the valid ones."""
    wanted = []
    for raw in names:
        name = ALIASES.get(raw.strip(), raw.strip())
        if name not in CHECKS:
            raise ValueError(f"Unknown check {raw!r}. Valid checks: {', '.join(CHECKS)}.")
        if name not in wanted:
            wanted.append(name)
    return wanted or list(CHECKS)


def run_checks(names: list[str] | None = None, *, info: bool = False) -> dict[str, Check]:
    selected = {name: CHECKS[name] for name in (names or CHECKS)}
    if info:
        selected.update(INFO)
    return {name: run(name, check) for name, check in selected.items()}


def panel() -> dict:
    """What Home and Dashboard show: every check, whether all is well, and whether anything ever beat."""
    checks = run_checks(info=True)
    return {
        "checks": checks,
        "healthy": all(c.ok for c in checks.values()),
        "background_ok": checks["worker"].ok and checks["beat"].ok,
        "never_started": run("heartbeats", _no_heartbeat_ever).ok,
    }


def _no_heartbeat_ever() -> Check:
    """ok=True when no worker or beat has ever stamped a row (a fresh install): the panel then says how to start."""
    from django.db.models import Q

    from .models import ServiceHeartbeat

    seen = ServiceHeartbeat.objects.filter(
        Q(name__startswith=heartbeats.WORKER_PREFIX) | Q(name=heartbeats.BEAT)
    )
    return Check("heartbeats", not seen.exists(), "")
