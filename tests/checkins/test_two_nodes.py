"""Beyond one box: two worker nodes and two web processes on one PostgreSQL and one Redis lose and repeat nothing.

Each worker node is its own process with its own node name and its own extra queue (as on two machines); both
take the shared check-in queue. Each web process is its own gunicorn. Beat makes the fleet due; devices with a
credential check in over HTTP through the two web processes in turn. Every scheduled device must be checked in
exactly once by the two nodes together, and every HTTP check-in is accepted once: the same report sent again to
the other web process is refused (the report token's compare-and-set lives in PostgreSQL, not in a process).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import httpx
import pytest
from django.db.models import Count
from django.utils import timezone

from console.models import ServiceHeartbeat
from devices import agent, credentials
from devices.models import Device
from reports.models import CheckinRecord
from tests.checkins import fleet as f
from tests.helpers import child_env, child_process, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.postgres]


def _node(name: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "console", "worker", "--loglevel=WARNING", "-P", "prefork",
        "--concurrency=1", "-Q", f"sync,default,checkins,{name}", "-n", f"{name}-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def _web(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "console.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]


def _report(doc: dict, state: agent.AgentState) -> tuple[dict, agent.AgentState]:
    new, reports = agent.apply(state, doc["desired"])
    body = {
        "protocolVersion": 1,
        "desiredFingerprint": doc["desiredFingerprint"],
        "reportToken": doc["reportToken"],
        "settings": {
            k: {"status": r.status, "value": r.value, "errorCode": r.error_code, "message": r.message}
            for k, r in reports.items()
        },
        "agentState": new.to_dict(),
    }
    return body, new


def test_two_worker_nodes_and_two_web_processes_lose_and_repeat_nothing(tmp_path, transactional_db):
    from console.testbed import free_port, wait_port

    devices = f.bulk_fleet(600)
    http_devices = devices[-12:]
    Device.objects.filter(pk__in=[d.pk for d in http_devices]).update(
        next_checkin_at=timezone.now() + timedelta(hours=2)  # not due: only their agents check them in
    )
    scheduled = len(devices) - len(http_devices)
    tokens = credentials.issue_many([d.pk for d in http_devices])
    tenant = str(f.tenant().tenant_id)
    env = child_env(CHECKIN_LEASE_SECONDS="10", CHECKIN_TICK_SECONDS="1", CONSOLE_DATA_DIR=str(tmp_path))
    beat = [sys.executable, "-m", "celery", "-A", "console", "beat", "--loglevel=WARNING",
            "-s", str(tmp_path / "beat-schedule")]  # fmt: skip
    ports = [free_port(), free_port()]
    done = lambda: CheckinRecord.objects.filter(kind="scheduled").count()  # noqa: E731
    with (
        child_process(_node("node-a"), env, tmp_path / "node-a.log"),
        child_process(_node("node-b"), env, tmp_path / "node-b.log"),
        child_process(_web(ports[0]), env, tmp_path / "web-a.log"),
        child_process(_web(ports[1]), env, tmp_path / "web-b.log"),
        child_process(beat, env, tmp_path / "beat.log"),
    ):
        for port in ports:
            wait_port(port, timeout=60)
        states = {d.pk: agent.AgentState.initial() for d in http_devices}
        refused = 0
        for round_ in range(2):
            for i, d in enumerate(http_devices):
                here, there = ports[(i + round_) % 2], ports[(i + round_ + 1) % 2]
                headers = {"Authorization": f"Bearer {tokens[d.pk]}", "X-Tenant-Id": tenant}
                doc = httpx.get(
                    f"http://127.0.0.1:{here}/devicechannel/v1/checkin", headers=headers, timeout=30
                )
                assert doc.status_code == 200, doc.text
                body, states[d.pk] = _report(doc.json(), states[d.pk])
                url = "/devicechannel/v1/report"
                first = httpx.post(f"http://127.0.0.1:{there}{url}", json=body, headers=headers, timeout=30)
                assert first.status_code == 200, first.text
                again = httpx.post(f"http://127.0.0.1:{here}{url}", json=body, headers=headers, timeout=30)
                refused += again.status_code == 409
        wait_for(lambda: done() >= scheduled, timeout=150)
        nodes = wait_for(
            lambda: (
                set(ServiceHeartbeat.objects.filter(name__contains="node-").values_list("name", flat=True))
                if ServiceHeartbeat.objects.filter(name__contains="node-").count() >= 2
                else None
            ),
            timeout=60,
        )

    assert refused == 2 * len(http_devices)
    assert any("node-a" in n for n in nodes) and any("node-b" in n for n in nodes)
    per_device = CheckinRecord.objects.values("device", "kind").annotate(n=Count("id"))
    scheduled_counts = [r["n"] for r in per_device if r["kind"] == "scheduled"]
    http_counts = {r["device"]: r["n"] for r in per_device if r["kind"] == "http"}
    assert len(scheduled_counts) == scheduled and set(scheduled_counts) == {1}  # none lost, none twice
    assert http_counts == {d.pk: 2 for d in http_devices}
    assert not Device.objects.filter(checkin_lease_until__isnull=False).exists()
