"""Fault benchmark: the check-in pipeline survives a killed worker, a Redis restart, a PostgreSQL restart and a
corrupt message on the embedded broker, and recovers lost work within two minutes, exactly once.

    python manage.py bench_faults                        # 24,000 devices (20,000+ due), 2 workers, 4 faults
    python manage.py bench_faults --devices 1200 --quick # the short variant `make test` runs
    python manage.py bench_faults --soak 30              # 30 minutes of random faults on both stacks

Each fault runs on its stack: (a) ``kill -9`` of a worker mid-batch and its restart by the supervisor, (b) Redis
restart, (c) PostgreSQL ``restart -m fast`` on the production stack (PostgreSQL + Redis + real worker processes +
real beat), (d) a half-written and an empty message file dropped into the embedded broker's queue (SQLite +
filesystem broker). For each: every checking-in device is made due, the fault is injected once ``--at`` of them
have checked in, and the command waits until all have. It prints one line per fault —

    fault, devices due, checked in, lost, duplicated, seconds to full recovery

— then a verdict, and exits 1 on any loss, duplicate, dead worker, or recovery over ``--deadline`` seconds.
"Duplicated" counts devices with more than one check-in record in the round (every device has something to apply
in a round, so each check-in writes one) plus devices with two status rows for one policy or two setting status or
effective rows for one key.

The stacks are private: this command starts its own PostgreSQL and Redis (free ports, temporary folders; see
console/testbed.py) and a temporary SQLite + filesystem broker, and removes them afterwards. It re-runs itself
against them (``--stack``), so the database configured for the console is never touched.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Count, Q
from django.utils import timezone

from console.broker import quarantined_count
from console.celery import app
from console.management.commands.run_console import Child
from console.testbed import Postgres, Redis, Testbed, TestbedError
from devices import channel
from devices.checkins import checking_in, request_policy_sync, schedule_unscheduled
from devices.models import Device
from reports import models as m
from reports.ingest import duplicate_keys, rebuild_aggregates
from reports.models import CheckinRecord, DevicePolicyStatus

FAULTS = {
    "kill": ("production", "kill -9 of a worker mid-batch"),
    "redis": ("production", "Redis restart"),
    "postgres": ("production", "PostgreSQL restart -m fast"),
    "corrupt": ("embedded", "corrupt message on the embedded broker"),
}


@dataclass
class Round:
    fault: str
    due: int
    checked_in: int
    lost: int
    duplicated: int
    recovery: float
    workers_ok: bool

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated and self.workers_ok

    def line(self) -> str:
        return (
            f"{self.fault}, {self.due}, {self.checked_in}, {self.lost}, {self.duplicated}, {self.recovery:.1f}"
            + ("" if self.workers_ok else " (a worker stayed down)")
        )


class Command(BaseCommand):
    help = "Inject broker, database and worker faults into the check-in pipeline and measure the recovery."

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=24_000, help="fleet on the production stack")
        parser.add_argument("--embedded-devices", type=int, default=1_500, help="fleet on the embedded stack")
        parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
        parser.add_argument(
            "--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}"
        )
        parser.add_argument("--deadline", type=float, default=120.0, help="seconds allowed for recovery")
        parser.add_argument("--at", type=float, default=0.3, help="inject when this share has checked in")
        parser.add_argument("--lease", type=int, default=None, help="CHECKIN_LEASE_SECONDS for the run")
        parser.add_argument("--tick", type=int, default=None, help="CHECKIN_TICK_SECONDS for the run")
        parser.add_argument("--quick", action="store_true", help="short variant: lease 15 s, tick 2 s")
        parser.add_argument("--soak", type=float, default=0, help="minutes of random faults on each stack")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--stack", default="", help=argparse_hidden())

    def handle(self, *args, **o):
        faults = [f.strip() for f in o["faults"].split(",") if f.strip()]
        unknown = sorted(set(faults) - set(FAULTS))
        if unknown:
            raise CommandError(f"Unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}.")
        if not 100 <= o["devices"] <= 2_000_000 or not 50 <= o["embedded_devices"] <= 100_000:
            raise CommandError("--devices must be 100–2,000,000 and --embedded-devices 50–100,000.")
        if not 1 <= o["workers"] <= 16:
            raise CommandError("--workers must be between 1 and 16.")
        if not 0 < o["at"] < 1:
            raise CommandError("--at must be a share between 0 and 1, such as 0.3.")
        if o["soak"] < 0 or o["deadline"] <= 0:
            raise CommandError("--soak and --deadline must be positive.")
        o["lease"] = o["lease"] or (15 if o["quick"] else settings.CHECKIN_LEASE_SECONDS)
        o["tick"] = o["tick"] or (2 if o["quick"] else settings.CHECKIN_TICK_SECONDS)
        if o["stack"]:
            return self._inner(o, faults)
        return self._outer(o, faults)

    # ---- the outer process: private stacks, one inner run per stack --------------------------------------

    def _outer(self, o, faults: list[str]) -> None:
        stacks = {FAULTS[f][0] for f in faults} if not o["soak"] else {"production", "embedded"}
        results: list[dict] = []
        started = time.monotonic()
        if "production" in stacks:
            try:
                bed = Testbed().start()
            except (TestbedError, OSError, subprocess.CalledProcessError) as exc:
                raise CommandError(f"Could not start the private PostgreSQL and Redis: {exc}") from None
            try:
                env = {
                    "DATABASE_URL": bed.postgres.url,
                    "CELERY_BROKER_URL": bed.redis.url,
                    "CONSOLE_DATA_DIR": str(bed.root / "data"),
                    "BENCH_TESTBED": json.dumps(
                        {"root": str(bed.root), "pg": bed.postgres.port, "redis": bed.redis.port}
                    ),
                }
                results += self._run_inner(
                    "production", env, o, [f for f in faults if FAULTS[f][0] == "production"]
                )
            finally:
                bed.close()
        if "embedded" in stacks:
            with tempfile.TemporaryDirectory(prefix="mde-embedded.") as folder:
                env = {
                    "DATABASE_URL": f"sqlite:///{folder}/console.sqlite3",
                    "CELERY_BROKER_URL": "filesystem://",
                    "CONSOLE_DATA_DIR": folder,
                }
                results += self._run_inner(
                    "embedded", env, o, [f for f in faults if FAULTS[f][0] == "embedded"]
                )
        self.stdout.write("fault, devices due, checked in, lost, duplicated, seconds to full recovery")
        rounds = [Round(**r) for r in results]
        for r in rounds:
            self.stdout.write(r.line())
        late = [r for r in rounds if r.recovery > o["deadline"]]
        bad = [r for r in rounds if not r.ok] + late
        verdict = "PASS" if rounds and not bad else "FAIL"
        self.stdout.write(
            f"verdict: {verdict} — {len(rounds)} round(s), {sum(r.lost for r in rounds)} lost, "
            f"{sum(r.duplicated for r in rounds)} duplicated, slowest recovery "
            f"{max((r.recovery for r in rounds), default=0):.1f} s (limit {o['deadline']:.0f} s), "
            f"{time.monotonic() - started:.0f} s in all"
        )
        if verdict != "PASS":
            raise CommandError("bench_faults failed: see the lines above.", returncode=1)

    def _run_inner(self, stack: str, env: dict, o, faults: list[str]) -> list[dict]:
        if not faults and not o["soak"]:
            return []
        out = Path(env["CONSOLE_DATA_DIR"]) / "bench-results.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, str(settings.BASE_DIR / "manage.py"), "bench_faults", "--stack", f"{stack}:{out}",
            "--faults", ",".join(faults), "--devices", str(o["devices"]),
            "--embedded-devices", str(o["embedded_devices"]), "--workers", str(o["workers"]),
            "--deadline", str(o["deadline"]), "--at", str(o["at"]), "--lease", str(o["lease"]),
            "--tick", str(o["tick"]), "--soak", str(o["soak"]), "--seed", str(o["seed"]),
        ]  # fmt: skip
        child_env = {**os.environ, **env, "CHECKIN_LEASE_SECONDS": str(o["lease"]),
                     "CHECKIN_TICK_SECONDS": str(o["tick"])}  # fmt: skip
        self.stdout.write(
            f"== {stack} stack ({env['DATABASE_URL'].split(':')[0]} + {env['CELERY_BROKER_URL']})"
        )
        self.stdout.flush()
        proc = subprocess.run(cmd, env=child_env, cwd=settings.BASE_DIR)
        if proc.returncode != 0 or not out.exists():
            raise CommandError(f"The {stack} run failed (exit {proc.returncode}); see its output above.")
        return json.loads(out.read_text())

    # ---- the inner process: this stack's database and broker are configured in settings -------------------

    def _inner(self, o, faults: list[str]) -> None:

        stack, _, out = o["stack"].partition(":")
        faults = [f for f in faults if f in FAULTS]
        self.o, self.stack = o, stack
        self.rng = random.Random(o["seed"])
        self.bed = self._testbed()
        call_command("migrate", verbosity=0)
        devices = o["devices"] if stack == "production" else o["embedded_devices"]
        self._fleet(devices)
        self.children = self._start_children(o["workers"])
        results = []
        try:
            self._wait_for_workers()
            for fault in faults:
                results.append(self._round(fault).__dict__)
                self._say(Round(**results[-1]).line())
            if o["soak"]:
                results.append(self._soak(o["soak"] * 60).__dict__)
                self._say(Round(**results[-1]).line())
        finally:
            self._stop_children()
        Path(out).write_text(json.dumps(results))

    def _say(self, text: str) -> None:
        self.stdout.write(f"  [{self.stack}] {text}")
        self.stdout.flush()

    def _testbed(self):
        raw = os.environ.get("BENCH_TESTBED")
        if not raw:
            return None
        info = json.loads(raw)
        root = Path(info["root"])
        return {"postgres": Postgres(root, port=info["pg"]), "redis": Redis(root, port=info["redis"])}

    def _fleet(self, devices: int) -> None:

        started = time.monotonic()
        for name in ("console.demo", "devices.demo", "policies.demo"):
            importlib.import_module(name).seed(_Quiet(), devices=devices, policies=8, seed=self.o["seed"])
        while schedule_unscheduled(limit=50_000):
            pass
        self._say(f"fleet of {devices:,} devices built in {time.monotonic() - started:.0f} s")

    # ---- processes ---------------------------------------------------------------------------------------

    def _start_children(self, workers: int) -> list[Child]:
        python, env, logs = sys.executable, dict(os.environ), Path(settings.DATA_DIR)
        celery = [python, "-m", "celery", "-A", "console"]
        children = [
            Child(
                f"worker{i}",
                [
                    *celery,
                    "worker",
                    "-P",
                    "solo",
                    "-Q",
                    "sync,default,checkins",
                    "-n",
                    f"fault{i}-{os.getpid()}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel=WARNING",
                ],
                env=env,
                log_path=str(logs / f"worker{i}.log"),
            )  # fmt: skip
            for i in range(workers)
        ]
        schedule = str(logs / "bench-beat-schedule")
        beat = [*celery, "beat", "--loglevel=WARNING", "-s", schedule]
        children.append(Child("beat", beat, env=env, log_path=str(logs / "beat.log")))
        for child in children:
            child.start()
        return children

    def _supervise(self) -> None:
        now = time.monotonic()
        for child in self.children:
            child.check(now)

    def _stop_children(self) -> None:
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + 20
        for child in self.children:
            child.wait_or_kill(deadline)

    def _wait_for_workers(self) -> None:

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with suppress(Exception):
                if len(app.control.ping(timeout=1.0) or []) >= self.o["workers"]:
                    return
            self._supervise()
            time.sleep(0.5)
        raise CommandError("The Celery workers did not answer within 90 seconds.")

    def _workers_alive(self) -> bool:
        return all(c.proc is not None and c.proc.poll() is None for c in self.children)

    # ---- one round ---------------------------------------------------------------------------------------

    def _reset_round(self):
        """Every checking-in device due now, with something to apply: each check-in of the round writes one
        check-in record, so two records for one device are a duplicate check-in.

        First the pipeline is drained (``_quiesce``): a batch of the check-ins before the round (the few devices
        the fleet has due at once) could otherwise commit just after the reset started, be counted in the round,
        and then see the reset make its devices due again - a second, legitimate check-in that looked like a
        duplicate (seen as 1 to 49 "duplicated" devices after ``--faults kill``, the same ones in every run)."""

        self._quiesce()
        with connection.cursor() as cursor:
            for model in (m.DeviceSettingStatus, m.DevicePolicyStatus, m.CheckinRecord):
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")
        rebuild_aggregates()
        qs = Device.objects.filter(checking_in(), next_checkin_at__isnull=False)

        start = timezone.now()
        due = qs.update(
            agent_state={}, desired_fingerprint="", checkin_lease_until=None, sync_requested_at=None,
            next_checkin_at=start - timedelta(seconds=1),
        )  # fmt: skip
        return start, due

    def _quiesce(self) -> None:
        """No new claims (nothing due), then wait until no device holds a lease: every batch already claimed has
        finished, or its lease lapsed (its message, if it still runs, then holds nothing and does nothing)."""
        Device.objects.filter(checking_in(), next_checkin_at__isnull=False).update(
            next_checkin_at=timezone.now() + timedelta(days=1)
        )
        deadline = time.monotonic() + self.o["lease"] + 30
        while time.monotonic() < deadline:
            with self._db_may_be_down():
                if not Device.objects.filter(checkin_lease_until__gte=timezone.now()).exists():
                    return
            time.sleep(0.2)

    def _counts(self, start, *, records: bool = True) -> tuple[int, int]:
        """(devices checked in since ``start``, duplicates): devices with two check-in records since ``start``
        (when every check-in of the round writes one) plus devices with two status rows for one policy, plus
        devices with two setting status or effective rows for one key."""

        checked = Device.objects.filter(last_checkin_at__gte=start).count()
        dup_records = (
            (
                CheckinRecord.objects.filter(at__gte=start)
                .values("device")
                .annotate(n=Count("id"))
                .filter(n__gt=1)
            ).count()
            if records
            else 0
        )
        dup_rows = (
            DevicePolicyStatus.objects.values("device", "policy").annotate(n=Count("id")).filter(n__gt=1)
        ).count()
        # Setting and effective rows have no unique b-tree on PostgreSQL (reports 0015): their writers' device
        # lock is what keeps them one per key, and a fault mid-write must not break that either.
        dup_keys = {key[0] for keys in duplicate_keys(limit=100_000).values() for key in keys}
        return checked, dup_records + dup_rows + len(dup_keys)

    def _round(self, fault: str) -> Round:
        start, due = self._reset_round()
        self._say(f"{fault}: {due:,} devices due; injecting '{FAULTS[fault][1]}' at {self.o['at']:.0%}")
        injected_at = None
        deadline = time.monotonic() + max(600.0, due / 20)
        checked = 0
        while time.monotonic() < deadline:
            self._supervise()
            with self._db_may_be_down():
                checked, _ = self._counts(start)
            if injected_at is None and checked >= due * self.o["at"]:
                self._inject(fault)
                injected_at = time.monotonic()
            if injected_at is not None and checked >= due:
                break
            time.sleep(0.5)
        recovery = time.monotonic() - (injected_at or time.monotonic())
        self._settle()
        checked, duplicated = self._counts(start)
        workers_ok = self._workers_alive()
        if fault == "corrupt":
            kept = quarantined_count(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
            self._say(f"{kept} unreadable message(s) in quarantine")
            workers_ok = workers_ok and kept >= 2
        return Round(fault, due, checked, due - checked, duplicated, round(recovery, 1), workers_ok)

    def _settle(self) -> None:
        """A few ticks more: anything that would still run twice would show now."""
        end = time.monotonic() + self.o["tick"] * 2 + 2
        while time.monotonic() < end:
            self._supervise()
            time.sleep(0.5)

    @contextmanager
    def _db_may_be_down(self):

        try:
            yield
        except DatabaseError:
            connection.close()  # PostgreSQL is restarting: try again with a new connection next time
        finally:
            close_old_connections()

    def _inject(self, fault: str) -> None:
        if fault == "kill":
            victim = next(c for c in self.children if c.name.startswith("worker"))
            self._say(f"kill -9 {victim.name} (pid {victim.proc.pid})")
            os.killpg(victim.proc.pid, signal.SIGKILL)
        elif fault == "redis":
            self._say("restarting Redis (everything it held is lost: --save '')")
            self.bed["redis"].restart(down_seconds=2)
        elif fault == "postgres":
            self._say("pg_ctl restart -m fast")
            self.bed["postgres"].restart()
        elif fault == "corrupt":
            queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
            name = f"{int(time.monotonic() * 1000)}_bench"
            (queue / f"{name}a.checkins.msg").write_text('{"body": "eyJ0YXNrIjog')  # half written
            (queue / f"{name}b.sync.msg").write_bytes(b"")  # created, never written
            self._say("dropped a half-written and an empty message into the embedded broker's queue")

    # ---- soak --------------------------------------------------------------------------------------------

    def _soak(self, seconds: float) -> Round:
        """Random faults and bounded Policy syncs for ``seconds``; then every device must have exactly one
        current status per policy that targets it, and every worker must be running."""

        start, due = self._reset_round()
        kinds = [f for f, (stack, _) in FAULTS.items() if stack == self.stack]
        ids = list(Device.objects.filter(next_checkin_at__isnull=False).values_list("pk", flat=True))
        end = time.monotonic() + seconds
        next_fault = time.monotonic() + self.rng.uniform(20, 60)
        syncs = 0
        while time.monotonic() < end:
            self._supervise()
            if time.monotonic() >= next_fault:
                self._inject(self.rng.choice(kinds))
                next_fault = time.monotonic() + self.rng.uniform(20, 60)
            if syncs < 5_000:
                with self._db_may_be_down():
                    sample = list(Device.objects.filter(pk__in=self.rng.sample(ids, min(5, len(ids)))))
                    syncs += len(request_policy_sync(sample).queued)
                    due_again = self.rng.sample(ids, min(50, len(ids)))
                    Device.objects.filter(pk__in=due_again).update(next_checkin_at=start)
            time.sleep(1)
        quiet_until = time.monotonic() + self.o["deadline"]

        while time.monotonic() < quiet_until:  # faults stop; everything outstanding must finish
            self._supervise()
            with self._db_may_be_down():
                busy = Device.objects.filter(
                    Q(sync_requested_at__isnull=False) | Q(next_checkin_at__lte=timezone.now())
                ).exists()
                if not busy:
                    break
            time.sleep(1)
        recovery = self.o["deadline"] - max(0.0, quiet_until - time.monotonic())
        wrong = 0
        context = channel.current_context()
        for device in channel.checkin_queryset().filter(pk__in=ids).iterator(chunk_size=500):
            have = sorted(device.policy_statuses.values_list("policy_id", flat=True))
            if have != sorted(channel.device_policy_ids(device, context)):
                wrong += 1
        # Devices check in many times in a soak (syncs, made due again): only two rows for one policy count.
        checked, duplicated = self._counts(start, records=False)
        self._say(
            f"soak: {syncs:,} Policy syncs requested; {wrong} devices without exactly one status per policy"
        )
        return Round("soak", due, checked, wrong, duplicated, round(recovery, 1), self._workers_alive())


class _Quiet:
    def write(self, *args, **kwargs) -> None:
        pass


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS
