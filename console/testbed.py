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
import sys
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


# ---------------------------------------------------------------------------------------------------------
# The console served as the README's production section serves it (bench_channel, bench_http)
# ---------------------------------------------------------------------------------------------------------


def production_database_url() -> str:
    """This process's database as a URL for a server it starts (PostgreSQL only: production's database)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        raise TestbedError("The console is served as production serves it: that needs PostgreSQL.")
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def serve_production(workers: int, threads: int = 1, timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """``gunicorn -c python:console.serving console.wsgi`` with CONSOLE_PRODUCTION on, behind what would be the TLS proxy (BEHIND_PROXY), on
    this database and the Redis of CELERY_BROKER_URL / CACHE_URL; returns (process, base URL) once it listens.
    ``threads`` > 1 is gunicorn's gthread worker (keep-alive connections)."""
    from django.conf import settings

    port = free_port()
    broker = settings.CELERY_BROKER_URL
    cache = os.environ.get("CACHE_URL") or (
        broker.rsplit("/", 1)[0] + "/1" if broker.startswith("redis") else ""
    )
    if not cache.startswith("redis"):
        raise TestbedError("Production needs Redis: set CELERY_BROKER_URL (or CACHE_URL) to a redis:// URL.")
    env = dict(os.environ)
    env.update(
        CONSOLE_PRODUCTION="true",
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY if len(settings.SECRET_KEY) >= 50 else "bench-" + "x" * 60,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=production_database_url(),
        CELERY_BROKER_URL=broker if broker.startswith("redis") else cache,
        CACHE_URL=cache,
        BEHIND_PROXY="true",
    )
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:console.serving", "console.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads), "--log-level", "warning",
    ]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    # "once per release" (README): the pages' static files come from the manifest collectstatic writes
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=root, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    if collected.returncode != 0:
        raise TestbedError(f"collectstatic failed:\n{(collected.stderr or collected.stdout)[-3000:]}")
    # The server's output goes to a file, never to a pipe nobody reads: a server logging errors under load would
    # fill the pipe and hang on its next write.
    log = tempfile.NamedTemporaryFile(prefix="mde-bench-server.", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log.name  # type: ignore[attr-defined]
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = Path(log.name).read_text(errors="replace")
            raise TestbedError(f"gunicorn exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TestbedError(f"gunicorn did not listen within {timeout:.0f} s.")


def stop_server(proc: subprocess.Popen) -> str:
    """Stop a server of ``serve_production``; returns the end of what it logged (its log file is removed)."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    path = Path(getattr(proc, "log_path", "") or "/nonexistent")
    out = path.read_text(errors="replace")[-5000:] if path.is_file() else ""
    path.unlink(missing_ok=True)
    return out


# ---- the HTTP benchmarks' server (bench_channel, bench_http) ------------------------------------------------


# The README's two gunicorn pools: the pages and the API on sync workers, the device channel on threaded ones.
PAGE_POOL = "sync workers, as the README serves the pages"
CHANNEL_POOL = "gthread with keep-alive, as the README serves the device channel"


def add_server_arguments(parser, *, threads: int, pool: str) -> None:
    parser.add_argument("--url", default="", help="a console already serving (default: start gunicorn)")
    parser.add_argument(
        "--workers", type=int, default=3, help="gunicorn workers when started (default 3, as the README)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=threads,
        help=f"threads per gunicorn worker when started (default {threads}: {pool}; 1: sync workers, more: "
        "gthread)",
    )


def check_server_options(options) -> str:
    """The ``--url`` to use ("": start one), or a CommandError naming the bad option."""
    from django.core.management.base import CommandError

    for name in ("workers", "threads"):
        if not 1 <= options[name] <= 64:
            raise CommandError(f"--{name} must be between 1 and 64.")
    url = options["url"].rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise CommandError("--url must start with http:// or https://.")
    return url


@contextlib.contextmanager
def benchmark_server(options, write):
    """(process, base URL) of the console under test: ``--url`` as given (process None), or gunicorn started as
    the README's production section serves it, said with ``write``, and stopped afterwards (what it logged is then
    the process's ``logged``)."""
    from django.core.management.base import CommandError

    url = check_server_options(options)
    if url:
        yield None, url
        return
    try:
        server, url = serve_production(options["workers"], options["threads"])
    except TestbedError as exc:
        raise CommandError(str(exc)) from None
    write(
        f"Server: gunicorn -c python:console.serving console.wsgi --workers {options['workers']} "
        f"--threads {options['threads']} on {url} (production)"
    )
    try:
        yield server, url
    finally:
        server.logged = stop_server(server)  # type: ignore[attr-defined]


def benchmark_admin(username: str):
    """The benchmark's Global Administrator, created without a password (it cannot sign in by itself)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from console.roles import GLOBAL_ADMIN, sync_roles

    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        sync_roles()
        user = User.objects.create_user(username=username, password=None)
        user.groups.add(Group.objects.get(name=GLOBAL_ADMIN))
    return user


def run_coroutine(coroutine, name: str):
    """asyncio.run on a thread of its own: a caller may already run an event loop in this thread (a Jupyter shell,
    or a test process where Playwright's sync API left one), and asyncio.run refuses that."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc; a process that ended counts as 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def established_connections(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections each process holds on its local ``port`` (Linux /proc): how gunicorn's workers
    share the clients' keep-alive connections."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                inodes.add(fields[9])
    held: dict[int, int] = {}
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        count = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
        if count:
            held[pid] = count
    return held


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (gunicorn's master and workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found
