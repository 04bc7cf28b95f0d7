from __future__ import annotations

import pytest
from django.db import connection

from console.models import ServiceHeartbeat
from console.tasks import heartbeat
from tests.helpers import wait_for


@pytest.mark.worker
def test_a_real_worker_runs_a_task_sent_over_redis_and_writes_postgresql(celery_worker_process, settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert connection.vendor == "postgresql"
    heartbeat.delay("ci-probe")
    row = wait_for(lambda: ServiceHeartbeat.objects.filter(name="ci-probe").first(), timeout=60)
    assert row.hostname
