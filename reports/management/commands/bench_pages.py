"""Benchmark the status pages as a signed-in Global Administrator sees them.

    python manage.py bench_pages --iterations 50

Each page is rendered through django.test.Client (the whole middleware stack, sessions, templates), warmed up,
then timed ``--iterations`` times; the SQL statements of every request are counted with
``connection.execute_wrapper``. Pages: the Endpoint security overview, a policy's Monitor page, View report page
1, Per setting status, a device drill-in, the fleet Effective settings report, and the three live polls
(unchanged: 204). The policy is the one that
reaches the most devices (from the aggregates) unless ``--policy`` names one.

The big lists (keyset paged): All devices page 1 sorted by each sortable column (and check-in time descending),
filtered by Managed by and by OS, searched, its second page (a cursor) and its last page; the largest group's
members (page 1 and last); the audit log (page 1 and last); a device's page; the list of the policy's type.

Build the fleet first, e.g. ``manage.py seed_demo --devices 100000 --policies 20`` on PostgreSQL.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count, Sum
from django.test.utils import override_settings
from django.urls import reverse

from console.testbed import benchmark_admin, percentile
from devices.models import Device, Group
from policies.models import SLUG_OF_TYPE, Policy
from reports.queries import largest_policy

REPORT_PAGES = (
    "overview",
    "monitor",
    "view_report",
    "view_report_by_status",
    "view_report_by_last_report",
    "view_report_errors",
    "per_setting",
    "drill_in",
    "overview_live",
    "monitor_live",
    "effective",
    "effective_live",
)
# All devices sorted by each sortable column (keyset paged: console/listing.py)
DEVICE_SORTS = (
    "display_name",
    "managed_by",
    "os",
    "os_version",
    "join_type",
    "enrollment_status",
    "tamper_protection",
    "mde_onboarded",
    "last_checkin_at",
)
LIST_PAGES = (
    "devices",
    *(f"devices_by_{column}" for column in DEVICE_SORTS),
    "devices_desc_checkin",
    "devices_mde",
    "devices_os",
    "devices_search",
    "devices_next",
    "devices_last",
    "group_members",
    "group_last",
    "audit_log",
    "audit_last",
    "device_page",
    "policy_list",
)
PAGES = REPORT_PAGES + LIST_PAGES
BENCH_USER = "bench-pages-ga"


@dataclass
class Result:
    page: str
    url: str
    status: int
    times_ms: list[float]
    queries: list[int]
    size: int

    @property
    def p50(self) -> float:
        return percentile(self.times_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.times_ms, 95)


def _link(client, url: str, rel: str) -> str:
    """The ``rel`` link (next/prev) of a keyset paged list, "" when it has none."""
    found = re.search(rf'<a href="(\?[^"]*)" rel="{rel}"', client.get(url).content.decode())
    return found.group(1).replace("&amp;", "&") if found else ""


def _positive(name: str, value: int, low: int, high: int) -> int:
    if value < low or value > high:
        raise CommandError(f"--{name} must be between {low:,} and {high:,} (got {value}).")
    return value


class Command(BaseCommand):
    help = "Time the status pages (p50/p95 and SQL statement counts) through the Django test client."

    def add_arguments(self, parser):
        parser.add_argument("--iterations", type=int, default=30, help="timed requests per page (default 30)")
        parser.add_argument(
            "--warmup", type=int, default=3, help="untimed requests per page first (default 3)"
        )
        parser.add_argument("--per-page", type=int, default=25, help="View report page size (default 25)")
        parser.add_argument(
            "--policy", default="", help="policy id (GUID) or exact name; default: the largest"
        )
        parser.add_argument(
            "--pages",
            default=",".join(PAGES),
            help=f"comma-separated subset of: reports, lists (each a group of pages), {', '.join(PAGES)}",
        )
        parser.add_argument(
            "--budget-ms",
            type=float,
            default=150.0,
            help="p95 budget per page, for the verdict (default 150)",
        )
        parser.add_argument(
            "--check", action="store_true", help="exit with an error if a page is over budget"
        )
        parser.add_argument(
            "--cold",
            action="store_true",
            help="clear the cache before every request (the overview's tenant-wide counts are then recomputed)",
        )
        parser.add_argument(
            "--debug",
            action="store_true",
            help="keep settings.DEBUG (query logging) on; off by default, as in production",
        )

    # ------------------------------------------------------------------------------------------------

    def handle(self, *args, **options):
        iterations = _positive("iterations", options["iterations"], 1, 100_000)
        warmup = _positive("warmup", options["warmup"], 0, 1_000)
        per_page = _positive("per-page", options["per_page"], 1, 200)
        if not 0 < options["budget_ms"] <= 60_000:
            raise CommandError("--budget-ms must be between 0 and 60,000.")
        groups = {"reports": REPORT_PAGES, "lists": LIST_PAGES}
        pages = [
            q for p in options["pages"].split(",") if p.strip() for q in groups.get(p.strip(), [p.strip()])
        ]
        unknown = sorted(set(pages) - set(PAGES))
        if unknown or not pages:
            raise CommandError(
                f"Unknown page(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(PAGES)}."
            )

        from reports.models import DevicePolicyStatus, DeviceSettingStatus, PolicyStatusCount

        policy = self._policy(options["policy"], Policy, PolicyStatusCount)
        client = self._client()
        urls = self._urls(policy, per_page, DevicePolicyStatus, client)

        devices = Device.objects.count()
        self.stdout.write(
            f"Fleet: {devices:,} devices, {Policy.objects.count():,} policies, "
            f"{DevicePolicyStatus.objects.count():,} policy status rows, "
            f"{DeviceSettingStatus.objects.count():,} setting status rows ({connection.vendor})"
        )
        reach = PolicyStatusCount.objects.filter(policy=policy).aggregate(n=Sum("count"))["n"] or 0
        self.stdout.write(
            f"Policy: {policy.name} ({reach:,} devices)   iterations: {iterations}, warm-up: {warmup}, "
            f"cache: {'cleared before each request' if options['cold'] else 'warm'}, "
            f"DEBUG: {'on' if options['debug'] and settings.DEBUG else 'off'}"
        )
        self.stdout.write("")
        header = f"{'page':<28} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}  url"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        results = []
        for page in pages:
            if page not in urls:
                self.stdout.write(f"{page:<28} {'skip':>6}  (nothing to show it with)")
                continue
            with override_settings(DEBUG=settings.DEBUG if options["debug"] else False):
                result = self._measure(client, page, urls[page], iterations, warmup, options["cold"])
            results.append(result)
            q = (
                str(result.queries[0])
                if min(result.queries) == max(result.queries)
                else f"{min(result.queries)}-{max(result.queries)}"
            )
            self.stdout.write(
                f"{page:<28} {result.status:>6} {result.p50:>8.1f} {result.p95:>8.1f} "
                f"{max(result.times_ms):>8.1f} {q:>8}  {result.url}"
            )
        over = [r for r in results if r.p95 > options["budget_ms"]]
        self.stdout.write("")
        if over:
            self.stdout.write(
                self.style.WARNING(
                    f"Over the {options['budget_ms']:.0f} ms p95 budget: {', '.join(r.page for r in over)}"
                )
            )
            if options["check"]:
                raise CommandError("Some pages are over budget.")
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Every page is within the {options['budget_ms']:.0f} ms p95 budget.")
            )

    # ------------------------------------------------------------------------------------------------

    def _policy(self, wanted: str, Policy, PolicyStatusCount):
        if wanted:
            try:
                return Policy.objects.get(policy_id=uuid.UUID(wanted))
            except (ValueError, Policy.DoesNotExist):
                policy = Policy.objects.filter(name=wanted).first()
                if policy is None:
                    raise CommandError(f"No policy with id or name {wanted!r}.") from None
                return policy
        policy = largest_policy()
        if policy is None:
            raise CommandError("There are no policies: run `manage.py seed_demo` first.")
        return policy

    def _client(self):
        from django.test import Client

        user = benchmark_admin(BENCH_USER)
        host = next(
            (h for h in settings.ALLOWED_HOSTS if h and h != "*" and not h.startswith(".")), "testserver"
        )
        client = Client(HTTP_HOST=host.strip("[]") if host.startswith("[") else host)
        client.force_login(user)
        return client

    def _urls(self, policy, per_page: int, DevicePolicyStatus, client) -> dict[str, str]:
        kwargs = {"policy_id": policy.policy_id}
        report = f"{reverse('reports:policy_devices', kwargs=kwargs)}?per_page={per_page}"
        urls = {
            "overview": reverse("reports:overview"),
            "monitor": reverse("reports:policy_monitor", kwargs=kwargs),
            "view_report": report,
            # the Status column's sort, and the link from the Monitor's error count
            "view_report_by_status": f"{report}&sort=status",
            "view_report_by_last_report": f"{report}&sort=-last_reported_at",
            "view_report_errors": f"{report}&status=error",
            "per_setting": reverse("reports:policy_settings", kwargs=kwargs),
        }
        first = (
            DevicePolicyStatus.objects.filter(policy=policy)
            .order_by("-error_count", "-conflict_count", "device_id")
            .values_list("device_id", flat=True)
            .first()
        )
        if first is not None:
            urls["drill_in"] = reverse(
                "reports:policy_device_settings", kwargs={**kwargs, "device_pk": first}
            )
        from reports import live

        urls["overview_live"] = f"{reverse('reports:overview_live')}?v={live.overview_version()}"
        urls["monitor_live"] = (
            f"{reverse('reports:policy_monitor_live', kwargs=kwargs)}?v={live.policy_version(policy)}"
        )
        from reports import effective

        urls["effective"] = reverse("reports:effective_settings")
        urls["effective_live"] = (
            f"{reverse('reports:effective_settings_live')}?v={effective.fleet_version(None)}"
        )
        urls.update(self._list_urls(policy, client))
        return urls

    def _list_urls(self, policy, client) -> dict[str, str]:
        """The big lists; the cursor pages (next, last) are the links page 1 itself offers."""
        devices = reverse("devices:list")
        urls = {"devices": devices}
        for column in DEVICE_SORTS:
            urls[f"devices_by_{column}"] = f"{devices}?sort={column}"
        urls["devices_desc_checkin"] = f"{devices}?sort=-last_checkin_at"
        urls["devices_mde"] = f"{devices}?managed_by=mde"
        urls["devices_os"] = f"{devices}?os=macos&sort=-last_checkin_at"
        sample = Device.objects.order_by("pk").values_list("display_name", flat=True).first()
        if sample:
            urls["devices_search"] = f"{devices}?q={sample[-6:]}"
        urls["devices_last"] = f"{devices}?last=1"
        nxt = _link(client, devices, "next")
        if nxt:
            urls["devices_next"] = devices + nxt
        group = Group.objects.filter(member_count__gt=0).order_by("-member_count", "pk").first()
        if group is None:  # counts not kept (a hand-made fleet): count the memberships once
            group = (
                Group.objects.annotate(n=Count("memberships")).filter(n__gt=0).order_by("-n", "pk").first()
            )
        if group is not None:
            members = reverse("devices:group_detail", args=[group.pk])
            urls["group_members"] = members
            urls["group_last"] = f"{members}?last=1"
        audit = reverse("audit_logs")
        urls["audit_log"] = audit
        urls["audit_last"] = f"{audit}?last=1"
        device = Device.objects.order_by("pk").values_list("pk", flat=True).first()
        if device is not None:
            urls["device_page"] = reverse("devices:detail", args=[device])
        urls["policy_list"] = reverse(
            "policies:list", kwargs={"policy_type": SLUG_OF_TYPE[policy.policy_type]}
        )
        return urls

    def _measure(self, client, page: str, url: str, iterations: int, warmup: int, cold: bool) -> Result:
        counter = {"n": 0}

        def count(execute, sql, params, many, context):
            counter["n"] += 1
            return execute(sql, params, many, context)

        status, size = 0, 0
        for _ in range(warmup):
            response = client.get(url)
            status = response.status_code
            if status >= 400:
                raise CommandError(f"{page}: GET {url} answered {status}.")
        times: list[float] = []
        queries: list[int] = []
        with connection.execute_wrapper(count):
            for _ in range(iterations):
                if cold:
                    cache.clear()
                counter["n"] = 0
                started = time.perf_counter()
                response = client.get(url)
                body = b"".join(response.streaming_content) if response.streaming else response.content
                times.append((time.perf_counter() - started) * 1000)
                queries.append(counter["n"])
                status, size = response.status_code, len(body)
                if status >= 400:
                    raise CommandError(f"{page}: GET {url} answered {status}.")
        return Result(page, url, status, times, queries, size)
