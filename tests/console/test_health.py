"""Service health you can watch from outside: heartbeats of real worker and beat processes, /healthz, /metrics."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from console import health, heartbeats
from console.models import ServiceHeartbeat
from tests.helpers import beat_command, child_env, child_process, wait_for

NODENAME = f"test-{os.getpid()}@{socket.gethostname()}"  # what tests.helpers.worker_process("test") names it


def _home(client) -> str:
    return client.get("/").content.decode()


def _redis_db(url: str, db: int) -> str:
    """The same Redis server as `make test`, another database: what a test puts there touches no other test."""
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"


def beat_process(tmp_path, broker_url: str):
    """A real `celery beat` process on the test database (its tasks go to a Redis database no worker reads)."""
    env = child_env(CELERY_BROKER_URL=broker_url)
    return child_process(beat_command(tmp_path / "celerybeat-schedule"), env, tmp_path / "beat.log")


# ---- heartbeats of real processes --------------------------------------------------------------------


@pytest.mark.worker
def test_it_shows_a_worker_as_up_within_seconds_of_it_starting(celery_worker_process, ga_client):
    wait_for(lambda: NODENAME in _home(ga_client), timeout=20)

    row = ServiceHeartbeat.objects.get(name=heartbeats.WORKER_PREFIX + NODENAME)
    assert row.hostname == socket.gethostname()
    assert health.workers().ok and health.workers().value == 1


@pytest.mark.worker
def test_it_stops_counting_a_worker_as_soon_as_it_shuts_down(transactional_db):
    from tests.helpers import worker_process

    with worker_process("test") as proc:
        wait_for(lambda: health.workers().ok, timeout=20)
        proc.terminate()
        proc.wait(timeout=20)
    assert not ServiceHeartbeat.objects.filter(name__startswith=heartbeats.WORKER_PREFIX).exists()
    assert health.workers().value == 0


@pytest.mark.worker
def test_it_writes_the_beat_heartbeat_from_a_real_beat_process(transactional_db, settings, tmp_path):
    broker = _redis_db(settings.CELERY_BROKER_URL, 15)
    with beat_process(tmp_path, broker) as proc:
        row = wait_for(lambda: ServiceHeartbeat.objects.filter(name=heartbeats.BEAT).first(), timeout=20)
        assert proc.poll() is None
    assert row.hostname == socket.gethostname()
    assert (timezone.now() - row.last_seen).total_seconds() < 30
    _flush(broker)


def _flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@pytest.mark.worker
def test_it_answers_200_once_a_real_worker_and_a_real_beat_are_up(
    celery_worker_process, client, settings, tmp_path
):
    broker = _redis_db(settings.CELERY_BROKER_URL, 15)
    with beat_process(tmp_path, broker):
        response = wait_for(lambda: (r := client.get("/healthz")).status_code == 200 and r, timeout=30)
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "worker", "beat", "lease_backlog"}
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert body["checks"]["worker"]["value"] == 1
    _flush(broker)


@pytest.mark.worker
@pytest.mark.browser
def test_the_panel_in_a_real_browser_shows_the_worker_up(
    celery_worker_process, login, global_admin, live_server
):
    from playwright.sync_api import expect

    page = login(global_admin)
    panel = page.locator("#service-health")
    expect(panel).to_contain_text("Service health")
    # The card polls itself, so it turns true without a reload even if the page came first.
    expect(panel.locator("[data-testid=workers]")).to_contain_text(NODENAME, timeout=30_000)
    expect(panel).to_contain_text("Workers alive")
    page.goto(f"{live_server.url}/dashboard/")
    expect(page.locator("#service-health [data-testid=workers]")).to_contain_text(NODENAME)


# ---- the heartbeat loop survives a database that goes away --------------------------------------------


@pytest.mark.postgres
def test_a_heartbeat_loop_logs_a_database_failure_once_and_says_when_it_recovered(transactional_db, caplog):
    from django.db import connection

    pulse = heartbeats.Pulse(heartbeats.BEAT)
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = _closed_port()
    try:
        assert pulse.beat() is False
        assert pulse.beat() is False
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert pulse.beat() is True
    messages = [r.getMessage() for r in caplog.records if r.name == "console.heartbeats"]
    assert len(messages) == 2, messages
    assert "could not be written" in messages[0]
    assert "recovered" in messages[1]
    assert ServiceHeartbeat.objects.filter(name=heartbeats.BEAT).exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- /healthz ------------------------------------------------------------------------------------------


def _alive(*names: str, ago: timedelta = timedelta(0)) -> None:
    for name in names:
        ServiceHeartbeat.objects.update_or_create(
            name=name, defaults={"last_seen": timezone.now() - ago, "hostname": "probe"}
        )


@pytest.mark.django_db
def test_it_answers_503_naming_the_broker_when_the_broker_is_unreachable(client, settings):
    _alive(heartbeats.WORKER_PREFIX + "w1@probe", heartbeats.BEAT)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["status"] == "down"
    assert "Connection" in checks["broker"]["detail"]
    assert [name for name, c in checks.items() if c["status"] == "down"] == ["broker"]


@pytest.mark.postgres
def test_it_answers_503_not_500_when_the_database_is_down(transactional_db, client):
    from django.db import connection

    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = _closed_port()
    try:
        response = client.get("/healthz")
        metrics = client.get("/metrics")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "down" and "OperationalError" in checks["database"]["detail"]
    assert checks["broker"]["status"] == "ok"
    assert metrics.status_code == 200
    assert 'console_health_check_up{check="database"} 0.0' in metrics.content.decode()


@pytest.mark.django_db
def test_it_answers_503_when_the_worker_heartbeat_is_stale(client):
    _alive(heartbeats.BEAT)
    _alive(heartbeats.WORKER_PREFIX + "w1@probe", ago=timedelta(minutes=5))

    response = client.get("/healthz")

    assert response.status_code == 503
    worker = response.json()["checks"]["worker"]
    assert worker["status"] == "down"
    assert "no worker heartbeat in the last 45 s" in worker["detail"] and "w1@probe" in worker["detail"]


@pytest.mark.django_db
def test_it_answers_503_when_lost_work_waits_past_its_lease(client):
    from tests.checkins import fleet as f

    _alive(heartbeats.WORKER_PREFIX + "w1@probe", heartbeats.BEAT)
    device = f.device("PC-LOST")
    device.checkin_lease_until = timezone.now() - timedelta(minutes=3)
    device.save(update_fields=["checkin_lease_until"])

    response = client.get("/healthz?check=leases")

    assert response.status_code == 503
    leases = response.json()["checks"]["lease_backlog"]
    assert leases["value"] == 1 and "1 device(s) leased" in leases["detail"]


@pytest.mark.django_db
def test_it_runs_only_the_checks_asked_for(client):
    response = client.get("/healthz?check=db,broker")

    assert response.status_code == 200
    assert list(response.json()["checks"]) == ["database", "broker"]


@pytest.mark.django_db
def test_it_refuses_an_unknown_check_with_a_clear_message(client):
    response = client.get("/healthz?check=databse")

    assert response.status_code == 400
    assert "Unknown check 'databse'" in response.json()["error"]
    assert "database, broker, worker, beat, lease_backlog" in response.json()["error"]


@pytest.mark.django_db
def test_it_answers_within_100_ms(client):
    _alive(heartbeats.WORKER_PREFIX + "w1@probe", heartbeats.BEAT)
    client.get("/healthz")  # warm: the first request opens the connections
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.1, timings


# ---- /metrics ------------------------------------------------------------------------------------------


def _scrape(client, **headers) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.django_db
def test_it_exports_the_queue_depth_that_is_in_redis(client, settings):
    import redis

    settings.CELERY_BROKER_URL = _redis_db(settings.CELERY_BROKER_URL, 14)
    r = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    r.flushdb()
    try:
        r.lpush("sync", *[f"m{i}" for i in range(3)])
        r.lpush("checkins", *[f"m{i}" for i in range(7)])
        r.lpush("checkins\x06\x169", "urgent")  # kombu keeps priority 9 in its own list

        samples = _scrape(client)
    finally:
        r.flushdb()
    assert samples[("console_queue_depth", (("queue", "sync"),))] == 3
    assert samples[("console_queue_depth", (("queue", "checkins"),))] == 8
    assert samples[("console_queue_depth", (("queue", "default"),))] == 0


@pytest.mark.django_db
def test_it_counts_message_files_of_the_filesystem_broker_and_quarantined_ones(client, settings, tmp_path):
    queue = tmp_path / "broker" / "queue"
    queue.mkdir(parents=True)
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(queue), "data_folder_out": str(queue)}
    settings.DATA_DIR = tmp_path
    for i in range(2):
        (queue / f"{i}_abc.default.msg").write_text("{}")
    (queue / "9_abc.sync.msg").write_text("{}")
    (tmp_path / "broker" / "quarantine").mkdir()
    (tmp_path / "broker" / "quarantine" / "5_bad.default.msg").write_text("{not json")

    samples = _scrape(client)

    assert samples[("console_queue_depth", (("queue", "default"),))] == 2
    assert samples[("console_queue_depth", (("queue", "sync"),))] == 1
    assert samples[("console_broker_quarantined_messages", ())] == 1


@pytest.mark.django_db
def test_it_counts_quarantined_messages_as_zero_when_the_folder_does_not_exist(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    assert health.quarantined().value == 0


@pytest.mark.django_db
def test_it_counts_check_ins_and_rejected_reports_durably(client, django_capture_on_commit_callbacks):
    from tests.checkins import fleet as f

    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(4)]
    f.policy("AV", {f.PUA: 1}, include=[g])
    before = _scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        f.checkin(*devices)
        refused = client.post("/devicechannel/v1/report", "{}", content_type="application/json")
    assert refused.status_code == 401

    after = _scrape(client)

    assert after[("console_checkins_total", ())] - before[("console_checkins_total", ())] == 4
    assert after[("console_reports_rejected_total", ())] - before[("console_reports_rejected_total", ())] == 1


@pytest.mark.django_db
def test_it_exports_workers_overdue_devices_leases_and_beat_age(client):
    from tests.checkins import fleet as f

    _alive(heartbeats.WORKER_PREFIX + "w1@probe", heartbeats.WORKER_PREFIX + "w2@probe")
    _alive(heartbeats.BEAT, ago=timedelta(seconds=20))
    _alive(heartbeats.WORKER_PREFIX + "gone@probe", ago=timedelta(hours=1))
    late = f.device("PC-LATE")
    late.next_checkin_at = timezone.now() - timedelta(minutes=30)
    late.checkin_lease_until = timezone.now() - timedelta(seconds=5)
    late.save(update_fields=["next_checkin_at", "checkin_lease_until"])
    f.device("PC-ON-TIME")

    samples = _scrape(client)

    assert samples[("console_workers_alive", ())] == 2
    assert samples[("console_devices_overdue", ())] == 1
    assert samples[("console_leases_expired", ())] == 1
    assert 19 <= samples[("console_beat_seconds_since_heartbeat", ())] < 30
    assert samples[("console_health_check_up", (("check", "worker"),))] == 1


@pytest.mark.django_db
def test_it_asks_for_the_metrics_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert _scrape(client, Authorization="Bearer s3cret-scrape-token")


# ---- the panel ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_panel_says_how_to_start_when_nothing_ever_beat(reader_client):
    page = _home(reader_client)
    assert "No heartbeat yet" in page and "make run starts both" in page


@pytest.mark.django_db
def test_the_panel_lists_live_workers_and_what_needs_attention(reader_client):
    _alive(heartbeats.WORKER_PREFIX + "w1@probe", heartbeats.BEAT)
    _alive(heartbeats.WORKER_PREFIX + "gone@probe", ago=timedelta(hours=1))

    for url in ("/", "/dashboard/", "/service-health/"):
        page = reader_client.get(url).content.decode()
        assert "Background services running" in page, url
        assert "w1@probe" in page and "gone@probe" not in page, url
        assert "Quarantined broker messages" in page and "Lease backlog" in page and "Devices overdue" in page
