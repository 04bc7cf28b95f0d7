"""Benchmark the big CSV exports: rows per second and memory, as a signed-in Global Administrator downloads them.

    python manage.py bench_exports                 # All devices, the largest policy's device status, audit log
    python manage.py bench_exports --exports devices --repeat 3

Each export is requested through django.test.Client (the whole middleware stack) and its streamed body is read
to the end, as a browser would. Printed per export: rows, seconds, rows/s, the bytes sent, and memory: the peak
resident set size of this process before and after (``ru_maxrss``, which only grows: an export that held its rows
in memory would raise it by about the size of its body) and the growth of Python's own allocations over the
export (``tracemalloc`` peak, with ``--tracemalloc``; it slows the export down, so rows/s is then not the figure).
The target is 50,000 rows/s with constant memory (issue 17): ``--check`` exits with an error below ``--min-rate``.

Build the fleet first, e.g. ``manage.py seed_demo --devices 100000 --policies 20`` on PostgreSQL.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum
from django.urls import reverse

from devices.models import Device
from policies.models import Policy

from .bench_pages import Command as PagesCommand

EXPORTS = ("devices", "policy_devices", "audit_log")


@dataclass
class ExportResult:
    export: str
    rows: int
    seconds: float
    size: int
    rss_before_mb: float
    rss_after_mb: float
    traced_peak_mb: float | None

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Command(BaseCommand):
    help = "Time the big CSV exports (rows/s, peak memory) through the Django test client."

    def add_arguments(self, parser):
        parser.add_argument(
            "--exports", default=",".join(EXPORTS), help=f"comma-separated subset of: {', '.join(EXPORTS)}"
        )
        parser.add_argument("--repeat", type=int, default=1, help="downloads per export (default 1)")
        parser.add_argument(
            "--min-rate", type=float, default=50_000.0, help="rows/s target, for the verdict (default 50,000)"
        )
        parser.add_argument("--check", action="store_true", help="exit with an error below --min-rate")
        parser.add_argument(
            "--tracemalloc",
            action="store_true",
            help="also trace Python allocations (peak during the export); slows it down",
        )

    def handle(self, *args, **options):
        exports = [e.strip() for e in options["exports"].split(",") if e.strip()]
        unknown = sorted(set(exports) - set(EXPORTS))
        if unknown or not exports:
            raise CommandError(
                f"Unknown export(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(EXPORTS)}."
            )
        repeat = options["repeat"]
        if not 1 <= repeat <= 100:
            raise CommandError("--repeat must be between 1 and 100.")
        if not 0 < options["min_rate"] <= 10_000_000:
            raise CommandError("--min-rate must be between 0 and 10,000,000.")

        from reports.models import PolicyStatusCount

        pages = PagesCommand()
        client = pages._client()
        urls = {
            "devices": reverse("devices:list") + "?export=csv",
            "audit_log": reverse("audit_logs") + "?export=csv",
        }
        if PolicyStatusCount.objects.exists() or Policy.objects.exists():
            try:
                policy = pages._policy("", Policy, PolicyStatusCount)
            except CommandError:
                policy = None
            if policy is not None:
                urls["policy_devices"] = (
                    reverse("reports:policy_devices", kwargs={"policy_id": policy.policy_id}) + "?export=csv"
                )
                reach = PolicyStatusCount.objects.filter(policy=policy).aggregate(n=Sum("count"))["n"] or 0
                self.stdout.write(f"Policy: {policy.name} ({reach:,} devices)")
        self.stdout.write(f"Fleet: {Device.objects.count():,} devices; downloads per export: {repeat}")
        header = (
            f"{'export':<16} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'MB sent':>8} "
            f"{'peak RSS MB':>18} {'py peak MB':>10}"
        )
        self.stdout.write("")
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        results = []
        for name in exports:
            if name not in urls:
                self.stdout.write(f"{name:<16} {'skip':>10}  (no policy)")
                continue
            for _ in range(repeat):
                result = self._measure(client, name, urls[name], options["tracemalloc"])
                results.append(result)
                traced = f"{result.traced_peak_mb:.1f}" if result.traced_peak_mb is not None else "-"
                self.stdout.write(
                    f"{name:<16} {result.rows:>10,} {result.seconds:>8.2f} {result.rate:>10,.0f} "
                    f"{result.size / 1e6:>8.1f} {result.rss_before_mb:>8.0f} -> {result.rss_after_mb:>6.0f} "
                    f"{traced:>10}"
                )
        self.stdout.write("")
        slow = [r for r in results if r.rows >= 1000 and r.rate < options["min_rate"]]
        if slow:
            self.stdout.write(
                self.style.WARNING(
                    f"Below {options['min_rate']:,.0f} rows/s: {', '.join(sorted({r.export for r in slow}))}"
                )
            )
            if options["check"]:
                raise CommandError("Some exports are below the rows/s target.")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Every export of 1,000 rows or more is at or above {options['min_rate']:,.0f} rows/s."
                )
            )

    def _measure(self, client, name: str, url: str, trace: bool) -> ExportResult:
        before = _maxrss_mb()
        if trace:
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        response = client.get(url)
        if response.status_code != 200 or not response.streaming:
            raise CommandError(
                f"{name}: GET {url} answered {response.status_code} (streamed: {response.streaming})."
            )
        size = lines = 0
        for piece in response.streaming_content:
            size += len(piece)
            lines += piece.count(b"\n")
        seconds = time.perf_counter() - started
        traced = None
        if trace:
            traced = (tracemalloc.get_traced_memory()[1] - base) / 1e6
            tracemalloc.stop()
        # one header line; the exports' cells hold no line breaks of their own (names, ids, labels, times)
        return ExportResult(name, max(lines - 1, 0), seconds, size, before, _maxrss_mb(), traced)
