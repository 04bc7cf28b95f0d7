"""Heartbeats that the worker and beat processes write themselves, so the health panel is true from the first second.

A heartbeat *task* needs beat to schedule it, the broker to carry it and a free worker to run it: its row appears
only after the first schedule interval and goes stale whenever the queues are busy. So each process stamps its
own row instead:

- a worker on Celery's ``worker_ready`` signal, then every ``INTERVAL`` seconds from a thread of its main
  process, one row per worker ("worker:<nodename>"), removed again on a clean shutdown;
- beat from its scheduler's ``tick()`` (console.beat.HeartbeatScheduler), at most every ``INTERVAL`` seconds.

A loop whose write fails logs once, keeps trying, and logs again when it recovers; it never stops the process.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

log = logging.getLogger(__name__)

INTERVAL = 15  # seconds between two stamps of one process
STALE_AFTER = 3 * INTERVAL  # a row older than this means the process stopped (three missed stamps)
WORKER_PREFIX = "worker:"
BEAT = "beat"


def stamp(name: str) -> None:
    """Write one heartbeat row, then close this thread's database connection.

    Open, write, close: the worker's prefork pool forks child processes after this thread started, and a child
    must never inherit (and share) a live connection; beat is idle between ticks and should hold none either.
    """
    from django.db import connection
    from django.utils import timezone

    from .models import ServiceHeartbeat

    try:
        ServiceHeartbeat.objects.update_or_create(
            name=name, defaults={"last_seen": timezone.now(), "hostname": socket.gethostname()}
        )
    finally:
        connection.close()


def forget(name: str) -> None:
    """Remove a row when its process stops cleanly, so "workers alive" drops at once rather than after a minute."""
    from django.db import connection

    from .models import ServiceHeartbeat

    try:
        ServiceHeartbeat.objects.filter(name=name).delete()
    finally:
        connection.close()


class Pulse:
    """One heartbeat loop: stamps its row and logs the first failure and the recovery, not every retry."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing_since: float | None = None

    def beat(self) -> bool:
        try:
            stamp(self.name)
        except Exception as exc:  # a database that is down or restarting must never stop the process
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                log.warning(
                    "Heartbeat %s could not be written (%s: %s); retrying every %d s",
                    self.name, type(exc).__name__, exc, INTERVAL,
                )  # fmt: skip
            return False
        if self.failing_since is not None:
            log.warning(
                "Heartbeat %s recovered after %.0f s", self.name, time.monotonic() - self.failing_since
            )
            self.failing_since = None
        return True


class WorkerHeartbeat(threading.Thread):
    """Stamps "worker:<nodename>" now and every INTERVAL seconds until stopped (a daemon: never holds up exit)."""

    def __init__(self, nodename: str) -> None:
        super().__init__(name=f"heartbeat {nodename}", daemon=True)
        self.row = WORKER_PREFIX + nodename
        self.pulse = Pulse(self.row)
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            self.pulse.beat()
            if self.stopped.wait(INTERVAL):
                return

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
        try:
            forget(self.row)
        except Exception as exc:  # the row then just goes stale
            log.warning("Heartbeat %s could not be removed at shutdown: %s", self.row, exc)


_running: dict[str, WorkerHeartbeat] = {}


def on_worker_ready(sender=None, **kwargs) -> None:
    """Celery's worker_ready (main process, consumer ready): the worker says it is up at once."""
    nodename = getattr(sender, "hostname", None) or socket.gethostname()
    if nodename in _running:
        return
    _running[nodename] = thread = WorkerHeartbeat(nodename)
    thread.start()


def on_worker_shutdown(sender=None, **kwargs) -> None:
    nodename = getattr(sender, "hostname", None) or socket.gethostname()
    thread = _running.pop(nodename, None)
    if thread is not None:
        thread.stop()


def connect() -> None:
    """Hook the worker's heartbeat to Celery's signals (called from ConsoleConfig.ready in every process)."""
    from celery import signals

    signals.worker_ready.connect(on_worker_ready, dispatch_uid="console.heartbeats.ready", weak=False)
    signals.worker_shutdown.connect(
        on_worker_shutdown, dispatch_uid="console.heartbeats.shutdown", weak=False
    )
