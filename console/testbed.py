"""Private PostgreSQL and Redis servers for benchmarks (bench_faults, the soak), started and stopped like `.ci/test.sh`.

Each server gets a private data folder and a free loopback port, so a benchmark never touches a configured
database or broker and can restart them at will (the faults it injects). As root, PostgreSQL runs as the
``postgres`` user (it refuses to run as root). Also the one percentile helper the benchmarks print with. Nothing here is used by the console itself.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class TestbedError(RuntimeError):
    pass


def percentile(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of the benchmarks' timings; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TestbedError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def _pg_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in p.split("/")[4].split(".")],
    )
    if not found:
        raise TestbedError("PostgreSQL is not installed: apt-get install postgresql (or set DATABASE_URL).")
    return Path(found[-1]).parent


@dataclass
class Postgres:
    """``pg_ctl`` on a private cluster; ``restart()`` is ``pg_ctl restart -m fast``."""

    root: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self):
        self.bin = _pg_bin()
        self.data = self.root / "pg"
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/mde"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_pg, *args], check=check, capture_output=True, text=True)

    def start(self) -> Postgres:
        if self.as_pg:
            shutil.chown(self.root, "postgres")
        if not self.data.exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--no-sync")  # fmt: skip
        self._ctl("start")
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "mde"], capture_output=True)  # fmt: skip
        return self

    def _ctl(self, action: str, *extra: str) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")  # fmt: skip
        result = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"),
                           "-w", "-o", opts, *extra, action, check=False)  # fmt: skip
        if result.returncode != 0:
            raise TestbedError(f"pg_ctl {action} failed: {result.stderr.strip() or result.stdout.strip()}")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)


@dataclass
class Redis:
    """``redis-server --save ''``: a restart loses everything queued, as a crashed Redis without persistence does."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        if not shutil.which("redis-server"):
            raise TestbedError(
                "Redis is not installed: apt-get install redis-server (or set CELERY_BROKER_URL)."
            )
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--dir", str(self.root), "--logfile", str(self.root / "redis.log"),
             "--pidfile", str(self.root / "redis.pid")],
            check=True, capture_output=True,
        )  # fmt: skip
        wait_port(self.port)
        return self

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.1)
            except OSError:
                return

    def restart(self, down_seconds: float = 1.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


class Testbed:
    """A private PostgreSQL and/or Redis in one temporary folder, removed on ``close()``."""

    def __init__(self, postgres: bool = True, redis: bool = True):
        self.root = Path(tempfile.mkdtemp(prefix="mde-bench."))
        self.root.chmod(0o755)
        self.postgres = Postgres(self.root) if postgres else None
        self.redis = Redis(self.root) if redis else None

    def start(self) -> Testbed:
        try:
            if self.postgres:
                self.postgres.start()
            if self.redis:
                self.redis.start()
        except Exception:
            self.close()
            raise
        return self

    def close(self) -> None:
        for server in (self.redis, self.postgres):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        shutil.rmtree(self.root, ignore_errors=True)
