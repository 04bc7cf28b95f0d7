"""Demo status: one round of check-ins for every managed demo device, so dashboards and reports look real.

Runs after the devices and policies seeders (manage.py seed_demo). In-process and batched (the same
``run_checkins`` the Celery workers run), with a small simulated fault rate, plus a pilot group of two devices
whose policy tries to turn off behavior monitoring: Tamper Protection blocks it. Afterwards the devices' last
check-ins get a random phase over the next 90 minutes, so the cadence continues without waves.
"""

from __future__ import annotations

import random
import time
from collections import Counter

from django.db import transaction
from django.utils import timezone

from devices import checkins, scheduling
from devices.models import Device, Group, GroupMember
from policies import services
from policies.models import Policy

DEMO_FAULT_RATE = 0.004
TAMPER_GROUP = "Tamper Protection pilot"
TAMPER_POLICY = "Helpdesk pilot - behavior monitoring off"
BEHAVIOR = "device_vendor_msft_policy_config_defender_allowbehaviormonitoring"
CLOUD_BLOCK = "device_vendor_msft_policy_config_defender_cloudblocklevel"


def _tamper_pilot(stdout) -> None:
    """Two Tamper-Protected Windows devices get a policy that would turn off behavior monitoring."""
    if Policy.objects.filter(name=TAMPER_POLICY).exists():
        return
    pilots = list(
        Device.objects.filter(
            managed_by="mde", management_type="MicrosoftSense", os="windows", intune_enrolled=False
        )
        .exclude(tamper_protection=False)
        .order_by("pk")[:2]
    )
    if not pilots:
        return
    group, _ = Group.objects.get_or_create(
        name=TAMPER_GROUP,
        defaults={"description": "Helpdesk pilot of a legacy antivirus configuration (demo)."},
    )
    for device in pilots:
        GroupMember.objects.get_or_create(group=group, device=device)
    Group.objects.filter(pk=group.pk).update(member_count=group.memberships.count())
    values = {BEHAVIOR: 0, CLOUD_BLOCK: 2}
    try:
        services.create_policy(
            "Microsoft Defender Antivirus",
            "windows",
            TAMPER_POLICY,
            "Turns off behavior monitoring for a helpdesk troubleshooting pilot. Tamper Protection blocks it.",
            values,
            {"include": [group.pk]},
        )
    except ImportError:  # pragma: no cover - the policies app always has services
        return
    stdout.write(f"  Tamper Protection pilot: {', '.join(d.display_name for d in pilots)}")


class Progress:
    """A line every ``every`` seconds on a long seed: done, rate and the time left (100,000 devices take minutes)."""

    def __init__(self, stdout, what: str, total: int, every: float = 10.0):
        self.stdout, self.what, self.total, self.every = stdout, what, total, every
        self.started = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every or done >= self.total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        left = (self.total - done) / rate if rate else 0
        self.stdout.write(
            f"  {self.what}: {done:,} of {self.total:,} ({done * 100 // max(self.total, 1)} %), "
            f"{rate:,.0f}/s, about {_duration(left)} left"
        )
        if hasattr(self.stdout, "flush"):
            self.stdout.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def seed(stdout, seed: int = 42, **_) -> None:
    from reports.ingest import rebuild_aggregates

    started = time.monotonic()
    rng = random.Random(seed)
    rebuild_aggregates()  # the device seeder replaced the fleet with set-based deletes
    _tamper_pilot(stdout)
    now = timezone.now()
    ids = list(Device.objects.filter(checkins.checking_in()).order_by("pk").values_list("pk", flat=True))
    totals: Counter = Counter()
    progress = Progress(stdout, "Check-ins", len(ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        lease = timezone.now() + checkins.LEASE  # per chunk: a long seed must not outlive its leases
        Device.objects.filter(pk__in=chunk).update(checkin_lease_until=lease)
        run = checkins.run_checkins(chunk, kind="scheduled", lease=lease, fault_rate=DEMO_FAULT_RATE, rng=rng)
        totals["checked_in"] += run.checked_in
        totals["changed"] += run.changed
        progress.update(start + len(chunk))
    # The next check-ins get a random phase over the interval, so the 90-minute cadence never comes in waves.
    updates = [Device(pk=pk, next_checkin_at=scheduling.first_checkin_at(now, rng)) for pk in ids]
    with transaction.atomic():
        Device.objects.bulk_update(updates, ["next_checkin_at"], batch_size=200)
    from reports.models import DevicePolicyStatus

    by_status = Counter(DevicePolicyStatus.objects.values_list("status", flat=True))
    stdout.write(
        f"Check-ins: {totals['checked_in']:,} devices in {time.monotonic() - started:.1f}s; policy statuses: "
        + ", ".join(f"{k} {v:,}" for k, v in by_status.most_common())
    )
