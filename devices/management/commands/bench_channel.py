"""Benchmark the device channel over real HTTP: simulated agents check in, apply and report, as devices do.

    python manage.py bench_channel --agents 5000 --concurrency 16 --duration 300
    python manage.py bench_channel --url http://10.0.0.5:8000 --agents 5000     # a console already running

Each agent is a device of the database with its own bearer credential (issued here in bulk: the devices driven
get a new credential and their old one is revoked, so run it on a benchmark database). The agents are spread
evenly over the fleet; give as many as the run has check-ins (``--agents 60000`` for 300 s at 200/s) so that, as in
a real fleet, nearly every check-in reads a row no earlier one of the run has read. A full check-in is what a
real agent does: ``GET /devicechannel/v1/checkin`` -> ``devices.agent.apply`` on the agent's own local state
(kept in memory from one check-in to the next, starting from the state the database holds) -> ``POST
/devicechannel/v1/report``. ``--concurrency`` agents are in flight at once (asyncio + httpx, one connection
each); an agent never overlaps itself. The load generator runs on this machine, so its CPU is part of the box's.

Without ``--url`` the console is started as the README's production section serves the device channel: ``gunicorn -c
python:console.serving console.wsgi --workers 3 --threads 4`` (its channel pool) with CONSOLE_PRODUCTION on, behind what would be the TLS proxy (``BEHIND_PROXY`` and
``X-Forwarded-Proto: https`` on every request), on this database and the Redis of CELERY_BROKER_URL/CACHE_URL.

Printed: full check-ins and check-ins/s, request p50/p95 for each of the two requests, errors by status/code,
the server's CPU share (its processes' CPU time over wall time x cores) and the load generator's, and the
machine's load average. ``--check-rate`` exits with an error below that many check-ins/s or on any error.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

from django.core.management.base import BaseCommand, CommandError

from console.models import TenantSettings
from console.testbed import (
    CHANNEL_POOL,
    add_server_arguments,
    benchmark_server,
    check_server_options,
    cpu_seconds,
    percentile,
    process_tree,
    run_coroutine,
)
from devices import agent, credentials
from devices.checkins import checking_in
from devices.models import Device

CHECKIN = "/devicechannel/v1/checkin"
REPORT = "/devicechannel/v1/report"


@dataclass
class Agent:
    pk: int
    token: str
    state: agent.AgentState


@dataclass
class Tally:
    checkin_ms: list[float] = field(default_factory=list)
    report_ms: list[float] = field(default_factory=list)
    full: int = 0
    changed: int = 0
    errors: Counter = field(default_factory=Counter)


class Command(BaseCommand):
    help = (
        "Drive the device channel over HTTP with simulated agents; print check-ins/s, latency, errors, CPU."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=5000, help="devices driven (default 5,000)")
        parser.add_argument(
            "--concurrency", type=int, default=16, help="agents in flight at once (default 16)"
        )
        parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
        parser.add_argument(
            "--checkins", type=int, default=0, help="stop after this many full check-ins (0: run --duration)"
        )
        parser.add_argument("--warmup", type=float, default=5.0, help="untimed seconds first (default 5)")
        add_server_arguments(parser, threads=4, pool=CHANNEL_POOL)
        parser.add_argument(
            "--check-rate",
            type=float,
            default=0.0,
            help="exit with an error below this many full check-ins/s, or on any error",
        )

    def handle(self, *args, **options):
        n, concurrency = options["agents"], options["concurrency"]
        if not 1 <= n <= 1_000_000:
            raise CommandError("--agents must be between 1 and 1,000,000.")
        if not 1 <= concurrency <= 1000:
            raise CommandError("--concurrency must be between 1 and 1,000.")
        if not 0 < options["duration"] <= 86_400:
            raise CommandError("--duration must be between 0 and 86,400 seconds.")
        if options["checkins"] < 0 or not 0 <= options["warmup"] <= 3600:
            raise CommandError("--checkins must be 0 or more and --warmup between 0 and 3,600 seconds.")
        check_server_options(options)
        tenant = TenantSettings.load()
        if tenant.tenant_id is None:
            raise CommandError("The tenant has no MDE tenant id yet: run `manage.py seed_demo` first.")
        agents = self._agents(n)
        fleet = Device.objects.count()
        until = (
            f"until {options['checkins']:,} check-ins"
            if options["checkins"]
            else f"{options['duration']:.0f} s"
        )
        self.stdout.write(
            f"Fleet: {fleet:,} devices; agents: {len(agents):,} (new credentials issued); "
            f"concurrency: {concurrency}; {until}"
        )
        with benchmark_server(options, self.stdout.write) as (server, url):
            headers = {"X-Tenant-Id": str(tenant.tenant_id), "X-Forwarded-Proto": "https"}
            # the agents touch no ORM: the coroutine's thread needs no database connection
            tally, wall, server_cpu, own_cpu = run_coroutine(
                self._run(url, agents, headers, concurrency, options, server.pid if server else None),
                "bench-channel",
            )
        self._print(tally, wall, server_cpu, own_cpu, bool(server), options)

    # ------------------------------------------------------------------------------------------------

    def _agents(self, n: int) -> list[Agent]:
        """``n`` devices spread evenly over the whole fleet (every k-th by id), not its first ``n``: a fleet of a
        million checks in all over its tables, and a benchmark that kept to the first rows would measure a cache.
        """
        eligible = list(
            Device.objects.filter(checking_in(), managed_by="mde").order_by("pk").values_list("pk", flat=True)
        )
        if not eligible:
            raise CommandError("No device is managed by MDE: run `manage.py seed_demo` first.")
        step = max(1, len(eligible) // n)
        chosen = eligible[::step][:n]
        rows = []
        for start in range(0, len(chosen), 5000):
            rows.extend(
                Device.objects.filter(pk__in=chosen[start : start + 5000])
                .order_by("pk")
                .values_list("pk", "agent_state", "tamper_protection")
            )
        tokens = credentials.issue_many([pk for pk, _, _ in rows])
        agents = []
        for pk, state, tamper in rows:
            local = (
                agent.AgentState.from_dict(state)
                if state
                else agent.AgentState.initial(tamper_protection=tamper)
            )
            agents.append(Agent(pk, tokens[pk], local))
        return agents

    async def _run(self, url, agents, headers, concurrency, options, server_pid):
        import logging

        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request

        tally = Tally()
        timed = {"on": options["warmup"] == 0}
        stop_at = {"t": float("inf")}
        limit = options["checkins"]
        slices = [agents[i::concurrency] for i in range(concurrency)]

        async def one(client: httpx.AsyncClient, a: Agent) -> None:
            auth = {"Authorization": f"Bearer {a.token}"}
            t0 = time.perf_counter()
            response = await client.get(CHECKIN, headers=auth)
            t1 = time.perf_counter()
            if response.status_code != 200:
                tally.errors[f"checkin {response.status_code} {_code(response)}"] += 1
                return
            doc = response.json()
            state, reports = agent.apply(a.state, doc["desired"])
            body = {
                "protocolVersion": 1,
                "desiredFingerprint": doc["desiredFingerprint"],
                "reportToken": doc["reportToken"],
                "settings": {
                    k: {"status": r.status, "value": r.value, "errorCode": r.error_code, "message": r.message}
                    for k, r in reports.items()
                },
                "agentState": state.to_dict(),
            }
            t2 = time.perf_counter()
            response = await client.post(REPORT, json=body, headers=auth)
            t3 = time.perf_counter()
            if response.status_code != 200:
                tally.errors[f"report {response.status_code} {_code(response)}"] += 1
                return
            a.state = state
            if timed["on"]:
                tally.checkin_ms.append((t1 - t0) * 1000)
                tally.report_ms.append((t3 - t2) * 1000)
                tally.full += 1
                tally.changed += bool(response.json().get("changed"))

        async def lane(mine: list[Agent]) -> None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
                i = 0
                while time.perf_counter() < stop_at["t"] and not (limit and tally.full >= limit):
                    try:
                        await one(client, mine[i % len(mine)])
                    except httpx.HTTPError as exc:
                        tally.errors[f"{type(exc).__name__}"] += 1
                    i += 1

        lanes = [asyncio.create_task(lane(s)) for s in slices if s]
        if options["warmup"]:
            await asyncio.sleep(options["warmup"])
        timed["on"] = True
        tally.errors.clear()
        server_pids = (
            process_tree(server_pid) if server_pid else []
        )  # after the warm-up: the workers are forked
        started = time.perf_counter()
        cpu0, own0 = cpu_seconds(server_pids), _own_cpu()
        stop_at["t"] = started + options["duration"]
        await asyncio.gather(*lanes)
        wall = time.perf_counter() - started
        return tally, wall, cpu_seconds(server_pids) - cpu0, _own_cpu() - own0

    def _print(self, tally: Tally, wall: float, server_cpu: float, own_cpu: float, started: bool, options):
        cores = os.cpu_count() or 1
        rate = tally.full / wall if wall else 0.0
        errors = sum(tally.errors.values())
        self.stdout.write("")
        self.stdout.write(
            f"Full check-ins: {tally.full:,} in {wall:.1f} s = {rate:,.1f}/s "
            f"({tally.changed:,} reports changed something)"
        )
        for name, values in (("check-in GET", tally.checkin_ms), ("report POST", tally.report_ms)):
            self.stdout.write(
                f"  {name:<13} p50 {percentile(values, 50):7.1f} ms   p95 {percentile(values, 95):7.1f} ms   "
                f"max {max(values, default=0):7.1f} ms"
            )
        self.stdout.write(
            f"Errors: {errors:,}"
            + (f" ({', '.join(f'{k}: {v}' for k, v in tally.errors.most_common())})" if errors else "")
        )
        server = f"{server_cpu / (wall * cores) * 100:.0f} %" if started and wall else "not measured (--url)"
        self.stdout.write(
            f"CPU share of {cores} cores: server {server}, load generator {own_cpu / (wall * cores) * 100:.0f} %"
            if wall
            else "CPU: not measured"
        )
        self.stdout.write(f"Load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if options["check_rate"]:
            if errors:
                raise CommandError(f"{errors} errors.")
            if rate < options["check_rate"]:
                raise CommandError(f"{rate:,.1f} check-ins/s is below {options['check_rate']:,.1f}.")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _code(response) -> str:
    try:
        return str(response.json().get("error", {}).get("code", ""))
    except ValueError:
        return ""
