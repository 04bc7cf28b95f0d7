"""`make run`'s supervisor: the web server, a Celery worker and Celery beat, each restarted when it exits.

A child that exits (a crash, an out-of-memory kill, a `kill -9`) is started again after a backoff that doubles
from 1 s to 60 s and resets once the child has stayed up for a minute; each exit and restart is one log line. The
web server is never stopped because a worker or beat died. Ctrl-C (or SIGTERM) stops all three: each gets
SIGTERM (Celery's warm shutdown) and, after 15 s, SIGKILL.

In production a service manager does this job (systemd units in the README's Production section).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

log = logging.getLogger("console.supervisor")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
STABLE_AFTER = 60.0  # seconds up after which the backoff starts again from BACKOFF_FIRST
STOP_GRACE = 15.0


@dataclass
class Child:
    name: str
    cmd: list[str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: float = BACKOFF_FIRST
    restarts: int = 0
    env: dict = field(default_factory=dict)
    log_path: str | None = None  # where its output goes (default: this terminal)

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
        )
        if out is not None:
            out.close()
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("Started %s (pid %s)", self.name, self.proc.pid)

    def check(self, now: float) -> None:
        """Notice an exit and schedule the restart; start it again when its backoff has passed."""
        if self.proc is not None and self.restart_at is None and self.proc.poll() is not None:
            if now - self.started_at >= STABLE_AFTER:
                self.backoff = BACKOFF_FIRST
            self.restart_at = now + self.backoff
            log.warning(
                "%s (pid %s) exited with code %s; restarting it in %.0f s",
                self.name, self.proc.pid, self.proc.returncode, self.backoff,
            )  # fmt: skip
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        if self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.start()
            log.info("%s restarted (restart #%d)", self.name, self.restarts)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the main process shuts its own children down (Celery's warm shutdown)

    def wait_or_kill(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Command(BaseCommand):
    help = (
        "Run the web server, a Celery worker and Celery beat together, restarting any that exits; "
        "Ctrl-C stops all three."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port of the web server")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")

    def handle(self, *args, addr: str, concurrency: int, **options):
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"--addr must look like 127.0.0.1:8000, not {addr!r}.")
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        children = self._children(addr, concurrency)
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for child in children:
            child.start()
        self.stdout.write(
            f"Console on http://{addr}/ — web, worker and beat supervised; Ctrl-C stops all three."
        )
        try:
            while not stopping:
                now = time.monotonic()
                for child in children:
                    child.check(now)
                time.sleep(0.5)
        finally:
            self.stdout.write("Stopping web, worker and beat …")
            for child in children:
                child.terminate()
            deadline = time.monotonic() + STOP_GRACE
            for child in children:
                child.wait_or_kill(deadline)
        self.stdout.write("Stopped.")

    def _children(self, addr: str, concurrency: int) -> list[Child]:
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        beat_schedule = str(settings.DATA_DIR / "celerybeat-schedule")
        env = dict(os.environ)
        return [
            Child("web", [python, manage, "runserver", addr, "--noreload"], env=env),
            Child(
                "worker",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "console",
                    "worker",
                    "--loglevel=INFO",
                    f"--concurrency={concurrency}",
                    "-Q",
                    settings.CELERY_WORKER_QUEUES,
                    "-n",
                    "worker@%h",
                ],
                env=env,
            ),  # fmt: skip
            Child(
                "beat",
                [python, "-m", "celery", "-A", "console", "beat", "--loglevel=INFO", "-s", beat_schedule],
                env=env,
            ),
        ]
