"""On the real PostgreSQL with two worker processes: concurrent claims never share a device, and a batch
delivered twice (and run at the same time by different workers) checks each device in exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections

from tests.checkins import fleet as f
from tests.helpers import wait_for, worker_process

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.worker]


@pytest.fixture
def second_worker(celery_worker_process):
    """Another worker process, as if on another machine (same PostgreSQL and Redis)."""
    with worker_process("second") as proc:
        yield proc


def test_concurrent_claims_never_hand_out_the_same_device(transactional_db):
    from devices.checkins import claim_due

    f.bulk_fleet(400)
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claimer():
        try:
            barrier.wait()
            for _ in range(10):
                ids, _ = claim_due(25)
                results.append(ids)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    claimed = Counter(pk for ids in results for pk in ids)
    assert sum(claimed.values()) == 400
    assert max(claimed.values()) == 1


def test_two_workers_never_check_a_device_in_twice(second_worker, celery_worker_process):
    from console.celery import app
    from devices.checkins import checkin_batch, claim_due
    from devices.models import Device
    from reports.ingest import recount, stored_counts
    from reports.models import CheckinRecord, DevicePolicyStatus

    devices = f.bulk_fleet(600)
    wait_for(lambda: len(app.control.ping(timeout=1.0) or []) >= 2, timeout=60)

    batches = []
    while True:
        ids, lease = claim_due(50)
        if not ids:
            break
        batches.append((ids, lease.isoformat()))
    assert sum(len(ids) for ids, _ in batches) == 600
    for ids, lease in batches:  # every batch delivered twice, as a broker may redeliver
        checkin_batch.apply_async(args=[ids, lease, "scheduled"])
        checkin_batch.apply_async(args=[ids, lease, "scheduled"])

    wait_for(lambda: CheckinRecord.objects.values("device").distinct().count() == 600, timeout=120)
    wait_for(lambda: not Device.objects.filter(checkin_lease_until__isnull=False).exists(), timeout=60)
    import redis
    from django.conf import settings

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    wait_for(lambda: broker.llen("checkins") == 0, timeout=60)
    import time

    time.sleep(3)  # let the second copies finish

    per_device = Counter(CheckinRecord.objects.values_list("device_id", flat=True))
    assert len(per_device) == 600
    assert set(per_device.values()) == {1}, "a device was checked in twice"
    assert DevicePolicyStatus.objects.count() == 1200
    assert set(DevicePolicyStatus.objects.values_list("status", flat=True)) <= {"error", "succeeded"}
    for d in Device.objects.filter(pk__in=[x.pk for x in devices]):
        assert d.checkin_lease_until is None
        assert timedelta(minutes=80) < d.next_checkin_at - d.last_checkin_at < timedelta(minutes=100)
    assert recount() == stored_counts()
