"""The console never stops checking in: faults of the broker, a worker and the supervisor, with real processes.

Each test reproduces something seen in use (issue "Never stop checking in"): a worker killed by a half-written
message on the embedded broker, a worker that exits when Redis restarts, `run_console` stopping the web server
because its worker died, and devices of a killed worker's batches left leased for ten minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from console.models import ServiceHeartbeat
from console.testbed import Redis, free_port
from tests.checkins import fleet as f
from tests.helpers import ROOT, child_env, child_process, wait_for, worker_command

SEND_PROBE = (
    "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'console.settings'); django.setup();"
    "from console.tasks import heartbeat; [heartbeat.delay(sys.argv[1]) for _ in range(int(sys.argv[2]))]"
)


def _send_probe(env: dict, name: str, count: int = 1) -> None:
    subprocess.run([sys.executable, "-c", SEND_PROBE, name, str(count)], cwd=ROOT, env=env, check=True)


def _heartbeat(name: str):
    return ServiceHeartbeat.objects.filter(name=name).first()


@pytest.mark.worker
def test_a_worker_on_the_embedded_broker_sets_a_half_written_message_aside(tmp_path, transactional_db):
    env = child_env(CELERY_BROKER_URL="filesystem://", CONSOLE_DATA_DIR=str(tmp_path))
    with child_process(worker_command("fs", pool="solo"), env, tmp_path / "worker.log") as worker:
        _send_probe(env, "fs-up")
        wait_for(lambda: _heartbeat("fs-up"), timeout=60)
        queue = tmp_path / "broker" / "queue"
        (queue / "1_beat.default.msg").write_bytes(b"")  # created by the publisher, not yet written
        (queue / "2_beat.default.msg").write_text('{"body": "eyJ0YXNrIjog')  # half written
        _send_probe(env, "fs-after")

        wait_for(lambda: _heartbeat("fs-after"), timeout=60)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
    kept = sorted(p.name for p in (tmp_path / "broker" / "quarantine").iterdir())
    assert kept == ["1_beat.default.msg", "2_beat.default.msg"]
    assert "set aside" in (tmp_path / "worker.log").read_text()


@pytest.mark.worker
def test_a_worker_reconnects_when_redis_restarts_with_messages_in_flight(tmp_path, transactional_db):
    redis = Redis(tmp_path).start()
    try:
        env = child_env(CELERY_BROKER_URL=redis.url, CONSOLE_DATA_DIR=str(tmp_path / "data"))
        with child_process(worker_command("restart"), env, tmp_path / "worker.log") as worker:
            _send_probe(env, "redis-up")
            wait_for(lambda: _heartbeat("redis-up"), timeout=60)
            for _ in range(6):  # kombu's crash needs unacknowledged messages at the moment Redis goes away
                _send_probe(env, "in-flight", 1500)
                redis.restart(down_seconds=1)
                time.sleep(4)
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            _send_probe(env, "redis-after")
            wait_for(lambda: _heartbeat("redis-after"), timeout=60)
    finally:
        redis.stop()


def _children_of(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


def _page_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_run_console_restarts_a_killed_worker_and_keeps_serving_pages(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["CONSOLE_DATA_DIR"] = str(tmp_path)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    login = f"http://127.0.0.1:{port}/login/"
    with child_process([*manage, "run_console", "--addr", f"127.0.0.1:{port}", "--concurrency", "1"], env,
                       tmp_path / "console.log") as console:  # fmt: skip
        wait_for(lambda: _page_answers(login), timeout=90)
        workers = wait_for(
            lambda: [p for p, cmd in _children_of(console.pid).items() if " worker " in cmd], timeout=60
        )
        os.killpg(workers[0], signal.SIGKILL)

        time.sleep(3)
        assert console.poll() is None
        assert _page_answers(login)
        wait_for(
            lambda: [
                p for p, cmd in _children_of(console.pid).items() if " worker " in cmd and p != workers[0]
            ],
            timeout=60,
        )
        console.send_signal(signal.SIGINT)
        console.wait(timeout=40)
    log = (tmp_path / "console.log").read_text()
    assert "worker" in log and "restarting it in" in log
    assert not _page_answers(login)


@pytest.mark.worker
@pytest.mark.postgres
def test_devices_of_a_killed_worker_are_checked_in_again_within_the_lease_exactly_once(
    tmp_path, transactional_db
):
    from django.db.models import Count

    from devices.models import Device
    from reports.models import CheckinRecord

    devices = f.bulk_fleet(3000)
    env = child_env(CHECKIN_LEASE_SECONDS="10", CHECKIN_TICK_SECONDS="1", CONSOLE_DATA_DIR=str(tmp_path))
    beat = [sys.executable, "-m", "celery", "-A", "console", "beat", "--loglevel=WARNING",
            "-s", str(tmp_path / "beat-schedule")]  # fmt: skip
    done = lambda: Device.objects.filter(last_checkin_at__isnull=False).count()  # noqa: E731
    with child_process(beat, env, tmp_path / "beat.log"):
        with child_process(worker_command("doomed", pool="solo"), env, tmp_path / "doomed.log") as doomed:
            wait_for(lambda: done() >= 200, timeout=120, interval=0.05)
            os.killpg(doomed.pid, signal.SIGKILL)  # mid-batch: its batch and everything it prefetched is lost
            killed_at = time.monotonic()
        assert done() < len(devices)
        with child_process(worker_command("replacement"), env, tmp_path / "replacement.log"):
            wait_for(lambda: done() == len(devices), timeout=100)
            recovered = time.monotonic() - killed_at

    assert recovered < 100  # the lease (10 s here) plus ticks and the work, never the old ten minutes
    twice = CheckinRecord.objects.values("device").annotate(n=Count("id")).filter(n__gt=1).count()
    assert twice == 0
    assert CheckinRecord.objects.count() == len(devices)
    assert not Device.objects.filter(checkin_lease_until__isnull=False).exists()


@pytest.mark.worker
def test_a_redis_channel_closed_after_its_connection_detached_still_restores_its_unacked_messages(settings):
    """kombu's path to the crash, step by step: Celery's consumer closes its connection when Redis goes away;
    kombu detaches the transport from the connection before the channel is closed, and closing the channel
    restores its unacknowledged messages through a pool built from the detached connection's details."""
    import uuid

    from kombu import Connection

    name = f"detached-{uuid.uuid4().hex[:8]}"
    with Connection(settings.CELERY_BROKER_URL, transport="console.broker:RedisTransport") as conn:
        queue = conn.SimpleQueue(name)
        queue.put({"n": 1})
        queue.get(timeout=5)  # delivered, not acknowledged
        conn.transport.client = None  # what Connection._do_close_transport does first
        queue.channel.close()  # plain kombu: AttributeError: 'NoneType' object has no attribute 'hostname'
    with Connection(settings.CELERY_BROKER_URL) as conn:
        again = conn.SimpleQueue(name)
        assert again.get(timeout=5).payload == {"n": 1}
        again.clear()
        again.close()
