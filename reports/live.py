"""Live status pages: htmx polling behind a cheap version check.

Why polling and not server-sent events: the console runs under gunicorn's workers and their few threads; an SSE
stream holds a thread per open page for as long as it is open, so twenty admins watching dashboards would starve the
console. A poll every few seconds is one short request instead, and it costs almost nothing when nothing changed:

    <div id="…" hx-get="{live url}?v={version}" hx-trigger="every 5s" hx-swap="outerHTML">…partial…</div>

The live endpoint computes the current version (one indexed query over a handful of rows) and answers
**204 No Content** when it equals ``v`` - htmx does not swap on 204, so the page stays as it is. When it differs
the endpoint renders the partial, which carries the new version in its own ``hx-get``, and htmx swaps it in. The
page never reloads; a person without JavaScript still has the Refresh command.

A version is a short hash of exactly what the partial shows, so a refresh happens when - and only when - a
number on the screen would change:

- a policy's Monitor: its status counts and its per-setting counts (the aggregates; a few rows of two unique
  indexes), and its version number (an edit);
- the overview: every policy's status counts (the aggregate table: five rows per policy), the newest device and
  the newest management change (two index-only MAX lookups), and the minute (late check-ins grow with time);
- a device: its check-in stamps (one row by primary key): every check-in sets ``last_checkin_at``, a Policy
  sync sets ``sync_requested_at`` and the lease, and Pending marking clears ``desired_fingerprint``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db.models import IntegerField, Max, Value
from django.utils import timezone

from devices.models import Device

from .models import PolicySettingStatusCount, PolicyStatusCount

POLL_SECONDS = 5


def _digest(parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def policy_digest(policy, rows) -> str:
    """The version of a policy's Monitor from its non-zero aggregate rows: (setting key or "", status, count)."""
    return _digest([policy.version, sorted((key, status, n) for key, status, n in rows if n > 0)])


def policy_version(policy) -> str:
    """What the Monitor page shows of one policy (one query: a UNION over the two aggregate tables)."""
    pid = policy.pk
    rows = (
        PolicyStatusCount.objects.filter(policy_id=pid)
        .exclude(count=0)
        .values_list(Value(""), "status", "count")
        .union(
            PolicySettingStatusCount.objects.filter(policy_id=pid)
            .exclude(count=0)
            .values_list("setting_key", "status", "count"),
            all=True,
        )
    )
    return policy_digest(policy, rows)


def overview_parts() -> tuple[list, dict]:
    """The inputs of the overview's version (two queries): every policy's non-zero status counts, and the
    newest device and newest management change (two index-only MAX lookups)."""
    counts = sorted(PolicyStatusCount.objects.exclude(count=0).values_list("policy_id", "status", "count"))
    devices = Device.objects.aggregate(
        newest=Max("pk", output_field=IntegerField()), changed=Max("management_changed_at")
    )
    return counts, devices


def overview_version(now=None, parts: tuple[list, dict] | None = None) -> str:
    """What the overview shows; the minute is part of it because late check-ins grow with time."""
    now = now or timezone.now()
    counts, devices = parts or overview_parts()
    return _digest([counts, devices["newest"], devices["changed"], int(now.timestamp() // 60)])


def devices_key(parts: tuple[list, dict]) -> str:
    """Changes whenever a device is added or onboarding changes who manages a device or its enrollment status."""
    return _digest([parts[1]["newest"], parts[1]["changed"]])


def counts_key(parts: tuple[list, dict]) -> str:
    """Changes whenever any policy's status counts change."""
    return _digest(parts[0])


DEVICE_STAMPS = (
    "last_checkin_at",
    "sync_requested_at",
    "checkin_lease_until",
    "desired_fingerprint",
    "management_changed_at",
    "tamper_protection",
)


def device_digest(device) -> str:
    """The version of a device already loaded (with the DEVICE_STAMPS fields)."""
    return _digest([getattr(device, name) for name in DEVICE_STAMPS])


def device_version(device_pk: int) -> str | None:
    """A device's check-in stamps (one query by primary key); None when the device is gone."""
    row = Device.objects.filter(pk=device_pk).values_list(*DEVICE_STAMPS).first()
    return None if row is None else _digest(list(row))
