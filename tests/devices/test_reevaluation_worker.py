"""The re-evaluation job on the real stack: a switch saved in the page, the task sent over Redis, a Celery worker
re-evaluating every device in PostgreSQL while the Job shows progress."""

from __future__ import annotations

import pytest
from django.urls import reverse

from console.models import Job
from devices import services
from devices.models import Device
from tests.devices.device_factories import make_device, set_tenant
from tests.helpers import wait_for


@pytest.mark.worker
def test_a_scope_switch_is_carried_out_by_a_real_worker(celery_worker_process, client, global_admin):
    client.force_login(global_admin)
    tenant = set_tenant(windows_server_scope="tagged")
    servers = [make_device(display_name=f"SRV-APP-{n:02d}", os="windows_server") for n in range(1, 13)]
    for device in servers:
        services.reevaluate_device(device)
    assert not Device.objects.filter(managed_by="mde").exists()

    data = {name: getattr(tenant, name) for name in services.DEFENDER_FIELDS}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False}
    data["windows_server_scope"] = "all"
    assert client.post(reverse("devices:enforcement_scope"), data).status_code == 302

    job = wait_for(
        lambda: Job.objects.filter(kind=services.REEVALUATE_JOB, status="succeeded").first(), timeout=90
    )
    assert job.done == job.total == 12
    assert Device.objects.filter(managed_by="mde").count() == 12
