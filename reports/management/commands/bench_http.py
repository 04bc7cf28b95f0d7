"""Benchmark pages under load over real HTTP: many admins at once against the console served as in production.

    python manage.py bench_http --concurrency 20 --duration 30
    python manage.py bench_http --url http://10.0.0.5:8000 --pages devices,device

``bench_pages`` times one request at a time in-process; this is the other half of the question: how many
requests per second the production layout answers when twenty people use it at once. Without ``--url`` the console
is started as the README's production section serves the pages (``console.testbed.serve_production``: gunicorn's
sync workers, ``--workers 3``, with CONSOLE_PRODUCTION on, behind what would be the TLS proxy). ``--threads 4`` serves
them as the device channel is served, on threaded workers: on two cores that cost View report a third of its
requests/s (the README's figures). ``--concurrency`` clients (asyncio + httpx, one
keep-alive connection each) request one page as fast as they are answered for ``--duration`` seconds, then the
next page:

- ``devices``: All devices, page 1;
- ``policy_report``: View report of the policy that reaches the most devices, page 1;
- ``device``: a device's page, a different device each request (spread over the whole fleet).

The clients share one signed-in session of a Global Administrator (``bench-http``, created without a password:
it cannot sign in by itself). Printed per page: requests/s, p50/p95/max latency, errors, and the CPU share of the server
and of the clients (this process), of the whole machine. ``--check-rate`` / ``--check-p95-ms`` exit with an error when a page is below / above them or any request
failed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from console.testbed import (
    PAGE_POOL,
    add_server_arguments,
    benchmark_admin,
    benchmark_server,
    check_server_options,
    cpu_seconds,
    percentile,
    process_tree,
    run_coroutine,
)
from devices.models import Device
from reports.queries import largest_policy

PAGES = ("devices", "policy_report", "device")
BENCH_USER = "bench-http"


@dataclass
class Tally:
    ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)


class Command(BaseCommand):
    help = (
        "Drive pages at a concurrency over real HTTP against the production layout; print requests/s and p95."
    )

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=20, help="clients at once (default 20)")
        parser.add_argument("--duration", type=float, default=30.0, help="seconds per page (default 30)")
        parser.add_argument("--warmup", type=float, default=3.0, help="untimed seconds per page (default 3)")
        parser.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated: {', '.join(PAGES)}")
        add_server_arguments(parser, threads=1, pool=PAGE_POOL)
        parser.add_argument("--check-rate", type=float, default=0.0, help="fail below this many requests/s")
        parser.add_argument("--check-p95-ms", type=float, default=0.0, help="fail above this p95 (ms)")

    def handle(self, *args, **options):
        concurrency = options["concurrency"]
        if not 1 <= concurrency <= 500:
            raise CommandError("--concurrency must be between 1 and 500.")
        if not 0 < options["duration"] <= 3600 or not 0 <= options["warmup"] <= 600:
            raise CommandError("--duration must be between 0 and 3,600 s and --warmup between 0 and 600 s.")
        pages = [p.strip() for p in options["pages"].split(",") if p.strip()]
        unknown = sorted(set(pages) - set(PAGES))
        if unknown or not pages:
            raise CommandError(
                f"Unknown page(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(PAGES)}."
            )
        check_server_options(options)

        targets = self._targets()
        cookie = self._session_cookie()
        self.stdout.write(f"Fleet: {Device.objects.count():,} devices; concurrency: {concurrency}")
        failures: list[str] = []
        with benchmark_server(options, self.stdout.write) as (server, url):
            self.stdout.write("")
            header = f"{'page':<15} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'errors':>7} {'server CPU':>11} {'client CPU':>11}"
            self.stdout.write(header)
            self.stdout.write("-" * len(header))
            for page in pages:
                tally, wall, cpu, own = run_coroutine(
                    self._drive(
                        url, targets[page], cookie, concurrency, options, server.pid if server else None
                    ),
                    "bench-http",
                )
                rate = len(tally.ms) / wall if wall else 0.0
                p95 = percentile(tally.ms, 95)
                errors = sum(tally.errors.values())
                cores = wall * (os.cpu_count() or 1)
                share = f"{cpu / cores * 100:.0f} %" if server and wall else "-"
                client = f"{own / cores * 100:.0f} %" if wall else "-"
                self.stdout.write(
                    f"{page:<15} {rate:>8.1f} {percentile(tally.ms, 50):>8.1f} {p95:>8.1f} "
                    f"{max(tally.ms, default=0):>8.1f} {errors:>7} {share:>11} {client:>11}"
                    + (
                        f"  ({', '.join(f'{k}: {v}' for k, v in tally.errors.most_common(3))})"
                        if errors
                        else ""
                    )
                )
                slow = options["check_p95_ms"] and p95 > options["check_p95_ms"]
                if errors or slow or (options["check_rate"] and rate < options["check_rate"]):
                    failures.append(page)
        logged = getattr(server, "logged", "").strip()
        if failures and logged:
            self.stdout.write("The server logged (last lines):")
            self.stdout.write("\n".join(logged.splitlines()[-40:]))
        self.stdout.write(f"Load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if failures:
            raise CommandError(f"Below target or with errors: {', '.join(failures)}.")

    # ------------------------------------------------------------------------------------------------

    def _targets(self) -> dict[str, list[str]]:
        policy = largest_policy()
        ids = list(Device.objects.order_by("pk").values_list("pk", flat=True))
        if policy is None or not ids:
            raise CommandError("There are no devices or policies: run `manage.py seed_demo` first.")
        step = max(1, len(ids) // 5000)
        return {
            "devices": [reverse("devices:list")],
            "policy_report": [reverse("reports:policy_devices", kwargs={"policy_id": policy.policy_id})],
            "device": [reverse("devices:detail", args=[pk]) for pk in ids[::step]],
        }

    def _session_cookie(self) -> str:
        """A signed-in session of the benchmark's Global Administrator, made as ``login()`` makes it."""
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.sessions.backends.db import SessionStore

        user = benchmark_admin(BENCH_USER)
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "console.backends.RoleAssignmentBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"

    async def _drive(self, url, paths, cookie, concurrency, options, server_pid):
        import logging

        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)
        tally = Tally()
        state = {"timed": options["warmup"] == 0, "stop": float("inf"), "next": 0}
        headers = {"Cookie": cookie, "X-Forwarded-Proto": "https"}

        async def lane() -> None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
                while time.perf_counter() < state["stop"]:
                    path = paths[state["next"] % len(paths)]
                    state["next"] += 1
                    t0 = time.perf_counter()
                    try:
                        response = await client.get(path)
                    except httpx.HTTPError as exc:
                        tally.errors[type(exc).__name__] += 1
                        continue
                    ms = (time.perf_counter() - t0) * 1000
                    if not state["timed"]:
                        continue
                    if response.status_code != 200:
                        tally.errors[f"{response.status_code}"] += 1
                    else:
                        tally.ms.append(ms)

        lanes = [asyncio.create_task(lane()) for _ in range(concurrency)]
        if options["warmup"]:
            await asyncio.sleep(options["warmup"])
        state["timed"] = True
        pids = process_tree(server_pid) if server_pid else []
        started = time.perf_counter()
        cpu0, own0 = cpu_seconds(pids), time.process_time()
        state["stop"] = started + options["duration"]
        await asyncio.gather(*lanes)
        wall = time.perf_counter() - started
        return tally, wall, cpu_seconds(pids) - cpu0, time.process_time() - own0
