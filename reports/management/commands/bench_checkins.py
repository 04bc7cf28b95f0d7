"""Benchmark check-ins end to end: PostgreSQL + Redis + real Celery workers, at fleet scale.

    python manage.py bench_checkins --devices 100000 --policies 20 --workers 2

1. Builds the fleet with the seed_demo seeders when the database has fewer devices (or fewer policies).
2. Starts ``--workers`` Celery worker processes on the "checkins" and "sync" queues (0: use running workers).
3. Pass 1, everything to apply: status rows are cleared, every managed device is made due and checked in through
   the real path (claim with FOR UPDATE SKIP LOCKED -> checkin_batch tasks over the broker -> workers). The
   claimer keeps only a few batches queued, as the beat tick's per-tick limit does, so no lease expires.
4. Pass 2, nothing to change: the same devices again; a check-in must cost at most 2 SQL statements.
5. The floor: PostgreSQL COPY writing the same rows pass 1 wrote (into temp tables, psycopg3 cursor.copy); and
   once more into logged tables with the status tables' indexes, to tell the cost the report pages' indexes
   add from the rest of a check-in.
6. Policy sync round trips: request -> "sync" queue -> check-in -> done, for a sample of MDE devices.

Statements and rows written are counted inside the task code (connection.execute_wrapper) and summed in Redis.
"""

from __future__ import annotations

import importlib
import io
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from console.celery import app
from console.testbed import percentile
from devices.checkins import BATCH_SIZE, checkin_batch, claim_due, request_policy_sync, schedule_unscheduled
from devices.models import Device
from policies.models import Policy, PolicyAssignment

FLOOR_REPEATS = 3


def _timed_copy_in(raw_cursor, table: str, data: bytes) -> float:
    """Seconds to COPY ``data`` (COPY text) into ``table`` (quoted), sent in 1 MB pieces."""
    started = time.perf_counter()
    with raw_cursor.copy(f"COPY {table} FROM STDIN") as copy:
        for offset in range(0, len(data), 1 << 20):
            copy.write(data[offset : offset + (1 << 20)])
    return time.perf_counter() - started


class Command(BaseCommand):
    help = "Benchmark check-ins end to end on PostgreSQL + Redis + Celery workers (see the module docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=100_000, help="fleet size (default 100,000)")
        parser.add_argument("--policies", type=int, default=20, help="policies (default 20)")
        parser.add_argument(
            "--workers", type=int, default=2, help="worker processes to start (0: use running)"
        )
        parser.add_argument("--concurrency", type=int, default=1, help="processes per worker (default 1)")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=f"devices per check-in task (default {BATCH_SIZE}, the beat tick's)",
        )
        parser.add_argument("--sync-sample", type=int, default=50, help="Policy syncs to time (default 50)")
        parser.add_argument("--keep-state", action="store_true", help="don't clear status rows before pass 1")
        parser.add_argument(
            "--timeout", type=int, default=3600, help="seconds allowed per pass (default 3600)"
        )
        parser.add_argument("--seed", type=int, default=42)

    # ---- checks ------------------------------------------------------------------------------------------

    def _check(self, o) -> None:
        problems = []
        if not 1 <= o["devices"] <= 2_000_000:
            problems.append("--devices must be between 1 and 2,000,000.")
        if not 1 <= o["policies"] <= 500:
            problems.append("--policies must be between 1 and 500.")
        if not 0 <= o["workers"] <= 32:
            problems.append("--workers must be between 0 (use running workers) and 32.")
        if not 1 <= o["concurrency"] <= 32:
            problems.append("--concurrency must be between 1 and 32.")
        if not 10 <= o["batch_size"] <= 1000:
            problems.append("--batch-size must be between 10 and 1,000.")
        if not 0 <= o["sync_sample"] <= 1000:
            problems.append("--sync-sample must be between 0 and 1,000.")
        if o["timeout"] < 10:
            problems.append("--timeout must be at least 10 seconds.")
        if connection.vendor != "postgresql":
            problems.append(
                "bench_checkins measures PostgreSQL: set DATABASE_URL=postgres://… (this database is "
                f"{connection.vendor})."
            )
        if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
            problems.append("bench_checkins needs the Redis broker: set CELERY_BROKER_URL=redis://….")
        if problems:
            raise CommandError(" ".join(problems))

    def handle(self, *args, **o):
        self._check(o)
        import redis

        self.redis = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            raise CommandError(
                f"Can't reach the Redis broker at {settings.CELERY_BROKER_URL}: {exc}"
            ) from None
        self.o = o
        self.batch = o["batch_size"]
        self._fleet(o["devices"], o["policies"], o["seed"])
        procs = self._start_workers(o["workers"], o["concurrency"])
        try:
            self._run()
        finally:
            self._stop_workers(procs)

    # ---- fleet -------------------------------------------------------------------------------------------

    def _fleet(self, devices: int, policies: int, seed: int) -> None:
        have_devices, have_policies = Device.objects.count(), Policy.objects.count()
        if have_devices < devices:
            self.stdout.write(
                f"Building the fleet: {devices:,} devices, {policies} policies (seed_demo seeders)…"
            )
            started = time.monotonic()
            for name in ("console.demo", "devices.demo", "policies.demo"):
                importlib.import_module(name).seed(self.stdout, devices=devices, policies=policies, seed=seed)
            self.stdout.write(f"  fleet built in {time.monotonic() - started:.1f}s")
        elif have_policies < policies:
            importlib.import_module("policies.demo").seed(self.stdout, policies=policies, seed=seed)
        while schedule_unscheduled(limit=50_000):
            pass

    def _managed(self):
        return Device.objects.filter(next_checkin_at__isnull=False)

    def _describe_fleet(self) -> str:
        managed = self._managed()
        mde = managed.filter(
            managed_by="mde", management_type="MicrosoftSense", intune_enrolled=False
        ).count()
        total = managed.count()
        return (
            f"{Device.objects.count():,} devices, {total:,} checking in ({mde:,} managed by MDE, "
            f"{total - mde:,} through Intune), {Policy.objects.count()} policies "
            f"({PolicyAssignment.objects.values('policy').distinct().count()} assigned)"
        )

    def _reset(self) -> None:
        from reports import models as m

        tables = [
            m.DeviceSettingStatus,
            m.DevicePolicyStatus,
            m.PolicyStatusCount,
            m.PolicySettingStatusCount,
            m.CheckinRecord,
            m.DeviceEffectiveSetting,
            m.EffectiveSettingCount,
            m.DriftEvent,
        ]  # not the stored texts: the devices' messages are among them, and pass 1 stores its texts again anyway
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE " + ", ".join(connection.ops.quote_name(t._meta.db_table) for t in tables)
            )
        Device.objects.update(
            agent_state={}, desired_fingerprint="", effective_digest="", checkin_lease_until=None
        )
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # The update above wrote a second version of every device row. A freshly seeded fleet's table
                # holds one, so pass 1 (and the storage printed at the end) starts from that layout, not from
                # a table already twice its size.
                cursor.execute(f"VACUUM FULL {connection.ops.quote_name(Device._meta.db_table)}")
            cursor.execute("VACUUM ANALYZE")

    def _between_rounds(self) -> None:
        """What autovacuum does in the 90 minutes between two rounds, done now and timed.

        Pass 1 leaves tens of millions of new and dead rows, and autovacuum works through them for minutes. At
        1,000,000 devices a pass 2 started right after shared the two cores with the vacuum of the devices table
        (it ended 3 minutes after pass 2 did; 2,581 check-ins/s, against 2,776-2,882 in runs where it had not
        started yet). A fleet's next round comes 90 minutes later, after that work is done.
        """
        from reports import models as m

        tables = [
            Device,
            m.DeviceSettingStatus,
            m.DevicePolicyStatus,
            m.DeviceEffectiveSetting,
            m.CheckinRecord,
        ]
        started = time.monotonic()
        with connection.cursor() as cursor:
            for model in tables:
                cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")
        self.stdout.write(
            f"Between the rounds: VACUUM (ANALYZE) of the device and status tables, {time.monotonic() - started:.1f} s "
            "(autovacuum's work in the 90 minutes before a fleet's next round)"
        )

    def _make_due(self) -> int:
        now = timezone.now()
        return self._managed().update(next_checkin_at=now - timedelta(seconds=1), checkin_lease_until=None)

    # ---- workers -----------------------------------------------------------------------------------------

    def _start_workers(self, count: int, concurrency: int) -> list[subprocess.Popen]:
        procs = []
        pool = ["-P", "solo"] if concurrency == 1 else ["-P", "prefork", "-c", str(concurrency)]
        for index in range(count):
            cmd = [
                sys.executable, "-m", "celery", "-A", "console", "worker", "-Q", "sync,checkins",
                *pool, "--prefetch-multiplier", "2", "-n", f"bench{index}-{os.getpid()}@%h",
                "--without-gossip", "--without-mingle", "--loglevel=WARNING",
            ]  # fmt: skip
            procs.append(
                subprocess.Popen(
                    cmd, cwd=settings.BASE_DIR, start_new_session=True, stdout=subprocess.DEVNULL
                )
            )
        if count:
            deadline = time.monotonic() + 60
            names = {f"bench{index}-{os.getpid()}" for index in range(count)}
            while time.monotonic() < deadline:
                replies = app.control.ping(timeout=1.0) or []
                up = {name.split("@")[0] for reply in replies for name in reply}
                if names <= up:
                    break
                if any(p.poll() is not None for p in procs):
                    raise CommandError("A Celery worker exited at start; run it by hand to see why.")
            else:
                raise CommandError("The Celery workers didn't answer within 60 seconds.")
        else:
            if not app.control.ping(timeout=2.0):
                raise CommandError(
                    "--workers 0 but no Celery worker answers; start one on the checkins queue."
                )
        return procs

    def _stop_workers(self, procs: list[subprocess.Popen]) -> None:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    # ---- passes ------------------------------------------------------------------------------------------

    def _pass(self, label: str) -> dict:
        prefix = f"bench:{uuid.uuid4().hex[:8]}:{label}"
        outstanding_max = max(4, (self.o["workers"] or 2) * self.o["concurrency"] * 3)
        sent = claimed = 0
        started = time.perf_counter()
        deadline = started + self.o["timeout"]
        exhausted = False
        while True:
            done = int(self.redis.get(f"{prefix}:batches") or 0)
            if not exhausted and sent - done < outstanding_max:
                ids, lease = claim_due((outstanding_max - (sent - done)) * self.batch)
                if not ids:
                    exhausted = True
                for start in range(0, len(ids), self.batch):
                    checkin_batch.apply_async(
                        args=[ids[start : start + self.batch], lease.isoformat(), "scheduled", prefix]
                    )
                    sent += 1
                claimed += len(ids)
            if exhausted and done >= sent:
                break
            if time.perf_counter() > deadline:
                raise CommandError(
                    f"{label}: not finished within --timeout {self.o['timeout']}s ({done}/{sent})."
                )
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        get = lambda key: int(self.redis.get(f"{prefix}:{key}") or 0)  # noqa: E731
        per_checkin, latency = [], []
        for raw in self.redis.lrange(f"{prefix}:batch_times", 0, -1):
            n, seconds, wait = raw.decode().split(":")
            per_checkin.extend([float(seconds) / int(n)] * int(n))
            latency.append(float(wait))
        checkins = get("checkins")
        stats = {
            "claimed": claimed,
            "checkins": checkins,
            "changed": get("changed"),
            "lost": get("lost"),
            "errors": get("errors"),
            "elapsed": elapsed,
            "rate": checkins / elapsed if elapsed else 0.0,
            "statements": get("statements"),
            "rows": get("rows"),
            "p50": percentile(per_checkin, 50) * 1000,
            "p95": percentile(per_checkin, 95) * 1000,
            "lat50": percentile(latency, 50),
            "lat95": percentile(latency, 95),
            "batches": sent,
        }
        self.redis.delete(*list(self.redis.scan_iter(f"{prefix}:*")))
        return stats

    def _print_pass(self, title: str, s: dict) -> None:
        n = max(s["checkins"], 1)
        self.stdout.write(title)
        self.stdout.write(
            f"  {s['checkins']:,} check-ins in {s['elapsed']:.1f} s = {s['rate']:,.1f} check-ins/s end to end "
            f"({s['batches']:,} batches; {s['changed']:,} changed; {s['lost']:,} lost leases; "
            f"{s['errors']:,} failed batches)"
        )
        self.stdout.write(
            f"  one check-in: p50 {s['p50']:.2f} ms, p95 {s['p95']:.2f} ms (batch time / devices in the batch); "
            f"claim -> reported: p50 {s['lat50']:.2f} s, p95 {s['lat95']:.2f} s"
        )
        self.stdout.write(
            f"  SQL per check-in: {s['statements'] / n:.3f} statements, {s['rows'] / n:.1f} rows written "
            f"({s['statements']:,} statements, {s['rows']:,} rows in all)"
        )

    def _run(self) -> None:
        o = self.o
        self.stdout.write(
            f"Fleet: {self._describe_fleet()}. Workers: {o['workers'] or 'running'} × {o['concurrency']} "
            f"process(es), batches of {self.batch}, {os.cpu_count()} CPU cores."
        )
        if not o["keep_state"]:
            self._reset()
        due = self._make_due()
        first = self._pass("pass1")
        self._print_pass(f"Pass 1 - every device applies its policies ({due:,} due):", first)
        self._between_rounds()
        self._make_due()
        second = self._pass("pass2")
        self._print_pass("Pass 2 - nothing to change:", second)
        per = second["statements"] / max(second["checkins"], 1)
        verdict = "OK" if per <= 2 else "TOO MANY"
        self.stdout.write(
            f"  statements per check-in with nothing to change: {per:.3f} (target ≤ 2: {verdict})"
        )
        copy_seconds, copy_rows, per_table, indexed_seconds = self._copy_floor()
        floor_rate = first["checkins"] / copy_seconds if copy_seconds else 0.0
        share = lambda rate: rate / max(floor_rate, 1e-9) * 100  # noqa: E731
        self.stdout.write(
            f"Floor - PostgreSQL COPY of the rows pass 1 wrote: {copy_rows:,} rows in {copy_seconds:.2f} s "
            f"({copy_rows / max(copy_seconds, 1e-9):,.0f} rows/s) = {floor_rate:,.0f} check-ins/s if writing were "
            f"all there is; pass 1 reached {share(first['rate']):.1f} % of it (target ≥ 25 %: "
            f"{'met' if share(first['rate']) >= 25 else 'NOT met'})."
        )
        self.stdout.write(
            "  rows copied: " + ", ".join(f"{table} {rows:,}" for table, rows in per_table.items())
        )
        self.stdout.write(
            f"  pass 2 writes no status rows and reached {share(second['rate']):.1f} % of the same floor: what a "
            "check-in costs besides its status rows (load, answer, apply, validate, compare, rewrite the device "
            "row), which pass 1 pays too."
        )
        indexed_rate = first["checkins"] / indexed_seconds if indexed_seconds else 0.0
        self.stdout.write(
            f"  the same rows into logged tables with the status tables' indexes: {indexed_seconds:.2f} s = "
            f"{indexed_rate:,.0f} check-ins/s; pass 1 reached {first['rate'] / max(indexed_rate, 1e-9) * 100:.1f} "
            "% of it. The indexes the reports read cost the difference between the two floors; what pass 1 "
            "takes beyond this one is the check-in itself."
        )
        if o["sync_sample"]:
            self._sync_sample(o["sync_sample"])
        self._storage()
        goal = 185
        self.stdout.write(
            f"Goal ≥ {goal} check-ins/s (1,000,000 devices every 90 minutes): pass 1 {first['rate']:,.1f}/s "
            f"{'met' if first['rate'] >= goal else 'NOT met'}, pass 2 {second['rate']:,.1f}/s "
            f"{'met' if second['rate'] >= goal else 'NOT met'}."
        )

    # ---- storage per device ------------------------------------------------------------------------------

    def _storage(self) -> None:
        """Bytes per device: every table of the database with its indexes and TOAST (pg_total_relation_size)."""
        devices = Device.objects.count()
        if connection.vendor != "postgresql" or not devices:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 2 DESC"
            )
            sizes = cursor.fetchall()
        total = sum(size for _, size in sizes)
        top = ", ".join(f"{name} {size / devices:,.0f}" for name, size in sizes[:4])
        verdict = "met" if total / devices <= 8192 else "NOT met"
        self.stdout.write(
            f"Storage: {total / 1e6:,.0f} MB for {devices:,} devices = {total / devices:,.0f} bytes per device "
            f"(target ≤ 8 KB: {verdict}; largest, bytes per device: {top})"
        )

    # ---- the COPY floor ----------------------------------------------------------------------------------

    def _copy_floor(self) -> tuple[float, int, dict[str, int], float]:
        """COPY the rows pass 1 wrote (status rows, effective settings, history, the device columns a check-in
        writes) into temp tables. Returns (seconds, rows, rows per table, seconds with indexes).

        Seconds with indexes: each status and history table's rows once more, COPYed once into a logged table
        created ``LIKE`` it with its indexes and constraints (empty, as pass 1 starts with those tables empty);
        the device columns count as in the floor (pass 1 updates them in place; a copy of the devices table's
        indexes would not be the same work).

        Each table's COPY is timed ``FLOOR_REPEATS`` times and the median kept: one timing swung from 3.3 to 6.2 s
        between runs of the same code on the same 100,000-device database (autovacuum and checkpoints share the
        two cores), and this floor is the yardstick pass 1 is measured against."""
        from reports import models as m

        qn = connection.ops.quote_name
        sources = [
            (m.DeviceSettingStatus._meta.db_table, "*", ""),
            (m.DevicePolicyStatus._meta.db_table, "*", ""),
            (m.DeviceEffectiveSetting._meta.db_table, "*", ""),
            (m.CheckinRecord._meta.db_table, "*", ""),
            (
                Device._meta.db_table,
                "id, last_checkin_at, next_checkin_at, checkin_lease_until, desired_fingerprint, agent_state, "
                "effective_digest",
                " WHERE last_checkin_at IS NOT NULL",
            ),
        ]
        total_rows, total_seconds, indexed_seconds, per_table = 0, 0.0, 0.0, {}
        with connection.cursor() as cursor:
            raw = cursor.cursor
            for table, columns, where in sources:
                buffer = io.BytesIO()
                with raw.copy(f"COPY (SELECT {columns} FROM {qn(table)}{where}) TO STDOUT") as copy:
                    for data in copy:
                        buffer.write(data)
                rows = buffer.getvalue().count(b"\n")
                temp = f"bench_copy_{table}"
                cursor.execute(f"DROP TABLE IF EXISTS {qn(temp)}")
                cursor.execute(
                    f"CREATE TEMP TABLE {qn(temp)} AS SELECT {columns} FROM {qn(table)} WITH NO DATA"
                )
                data = buffer.getvalue()
                timings = []
                for _ in range(FLOOR_REPEATS):
                    cursor.execute(f"TRUNCATE {qn(temp)}")
                    timings.append(_timed_copy_in(raw, qn(temp), data))
                total_seconds += statistics.median(timings)
                total_rows += rows
                per_table[table] = rows
                cursor.execute(f"DROP TABLE {qn(temp)}")
                if table == Device._meta.db_table:
                    indexed_seconds += statistics.median(timings)
                    continue
                indexed = f"bench_indexed_{table}"
                cursor.execute(f"DROP TABLE IF EXISTS {qn(indexed)}")
                cursor.execute(
                    f"CREATE TABLE {qn(indexed)} (LIKE {qn(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                    "INCLUDING INDEXES)"
                )
                try:
                    indexed_seconds += _timed_copy_in(raw, qn(indexed), data)
                finally:
                    cursor.execute(f"DROP TABLE {qn(indexed)}")
        return total_seconds, total_rows, per_table, indexed_seconds

    # ---- Policy sync round trips -------------------------------------------------------------------------

    def _sync_sample(self, count: int) -> None:
        devices = list(
            Device.objects.filter(managed_by="mde", management_type="MicrosoftSense", intune_enrolled=False)
            .filter(Q(checkin_lease_until__isnull=True))
            .order_by("?")[:count]
        )
        if not devices:
            return
        times = []
        for device in devices:
            started = time.perf_counter()
            request_policy_sync([device])
            deadline = started + 60
            while Device.objects.filter(pk=device.pk, sync_requested_at__isnull=False).exists():
                if time.perf_counter() > deadline:
                    break
                time.sleep(0.005)
            times.append(time.perf_counter() - started)
        self.stdout.write(
            f"Policy sync round trip (request -> sync queue -> check-in -> status written), {len(times)} devices "
            f"one at a time: p50 {statistics.median(times) * 1000:.0f} ms, p95 {percentile(times, 95) * 1000:.0f} ms"
        )
