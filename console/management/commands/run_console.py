from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together; Ctrl-C stops all three."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port of the web server")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")

    def handle(self, *args, addr: str, concurrency: int, **options):
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"--addr must look like 127.0.0.1:8000, not {addr!r}.")
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        beat_schedule = str(settings.DATA_DIR / "celerybeat-schedule")
        commands = {
            "web": [python, manage, "runserver", addr, "--noreload"],
            "worker": [
                python, "-m", "celery", "-A", "console", "worker", "--loglevel=INFO",
                f"--concurrency={concurrency}", "-Q", settings.CELERY_WORKER_QUEUES, "-n", "worker@%h",
            ],
            "beat": [python, "-m", "celery", "-A", "console", "beat", "--loglevel=INFO", "-s", beat_schedule],
        }  # fmt: skip
        env = dict(os.environ)
        procs: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in commands.items():
            self.stdout.write(f"Starting {name}: {' '.join(cmd[1:4])} …")
            procs[name] = subprocess.Popen(cmd, env=env, start_new_session=True)
        try:
            while not stopping:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with code {proc.returncode}; stopping the others.")
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            self.stdout.write("Stopping web, worker and beat …")
            for proc in procs.values():
                if proc.poll() is None:
                    proc.terminate()  # the main process shuts its own children down (Celery's warm shutdown)
            deadline = time.monotonic() + 15
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.stdout.write("Stopped.")
