"""Small helpers shared by tests (import as `from tests.helpers import …`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "correct-horse-battery-staple"
ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    """Polls until predicate() is truthy and returns its value; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that uses the test database (and the rest of `make test`'s setup)."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env.update(extra)
    return env


@contextmanager
def child_process(cmd: list[str], env: dict[str, str], log_path: Path | None = None):
    """A subprocess in its own process group (so a test can `kill -9` it whole), stopped at the end."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        if log_path:
            out.close()


def worker_command(name: str, pool: str = "prefork") -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "console", "worker", "--loglevel=WARNING", "-P", pool,
        *(["--concurrency=2"] if pool == "prefork" else []), "-Q", "sync,default,checkins",
        "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def beat_command(schedule: Path) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "console", "beat", "--loglevel=INFO", "-s", str(schedule)]


def purge_broker() -> None:
    """Empty the Redis database of the Celery broker: queues, unacknowledged messages, bindings."""
    import redis
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


@contextmanager
def worker_process(name: str):
    """A `celery worker` subprocess on the test database and the Redis broker of `make test`."""
    proc = subprocess.Popen(
        worker_command(name), cwd=ROOT, env=child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def migrate_to(target: list[tuple[str, str]] | None = None):
    """Migrates the test database to ``target`` (the latest migrations when None); returns the executor, whose
    ``loader.project_state(target).apps`` gives that point's models."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target or executor.loader.graph.leaf_nodes())
    return executor


def stored_effective_counts() -> dict:
    """The kept effective-setting counts, {(setting, entry, intent, source): n}, to compare with
    reports.ingest.recount_effective()."""
    from reports.models import EffectiveSettingCount

    return {
        (c.setting_key, c.entry, c.intent, c.configured_by): c.count
        for c in EffectiveSettingCount.objects.exclude(count=0)
    }


@contextmanager
def recorded_statements():
    """The statements the default connection runs inside the block, as (sql, parameters) pairs: the
    parameters as the driver gets them (an array parameter stays one list)."""
    from django.db import connection

    seen: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen
