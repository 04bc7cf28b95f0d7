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


@contextmanager
def worker_process(name: str):
    """A `celery worker` subprocess on the test database and the Redis broker of `make test`."""
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "console", "worker", "--loglevel=WARNING", "--concurrency=2",
         "-Q", "sync,default,checkins", "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
