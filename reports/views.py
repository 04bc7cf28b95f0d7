"""Status pages: the Endpoint security overview, a policy's Monitor with View report, the per-device drill-in and
Per setting status, their live partials and CSV exports. Views stay thin: every number and row comes from
reports.queries (shared with the Graph reports), every chart from reports.charts, every version from reports.live.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib.auth.decorators import permission_required
from django.core.cache import cache
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET
from django.views.generic import TemplateView

from console import audit, scopetags
from console.listing import CsvColumn, ObjectListView, stream_csv, stream_csv_values
from devices import tally
from devices.agent import effective_defaults
from devices.checkins import panel_context
from devices.models import Device, ManagedBy, OSType
from devices.scope import scope_group_ids, scoped, visible_devices
from policies.catalog import get_catalog
from policies.models import SLUG_OF_TYPE, Policy, PolicyAssignment

from . import charts, effective, live, queries
from .filtersets import LateDeviceFilterSet, PolicyDeviceFilterSet, ProblemFilterSet, cleaned
from .models import STATUS_CODES, DeviceEffectiveSetting, DevicePolicyStatus, Status
from .queries import STATUS_LABEL, STATUS_ORDER
from .tables import LateDeviceTable, PolicyDeviceTable, ProblemTable

PERMISSION = "reports.view_devicepolicystatus"
BREADCRUMBS = [("Endpoint security", "policies:overview")]
MAX_PER_PAGE = 200
CACHE_SECONDS = 60
PREVIEW_ROWS = 6


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


class KnownCountPaginator(Paginator):
    """A paginator that takes the total from the aggregates when they know it (no COUNT(*) over the fleet)."""

    def __init__(self, object_list, per_page, *args, known_count: int | None = None, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.known_count = known_count

    @cached_property
    def count(self) -> int:
        return super().count if self.known_count is None else self.known_count


def configure_table(request, table, *, per_page: int = 25, known_count: int | None = None):
    """RequestConfig, with the page size capped and the total from the aggregates when known."""
    table.request = request
    order_by = request.GET.getlist(table.prefixed_order_by_field)
    if order_by:
        table.order_by = order_by
    try:
        size = int(request.GET.get(table.prefixed_per_page_field, per_page))
    except ValueError:
        size = per_page
    size = min(max(size, 1), MAX_PER_PAGE)
    page = request.GET.get(table.prefixed_page_field, 1)
    try:
        table.paginate(paginator_class=KnownCountPaginator, per_page=size, page=page, known_count=known_count)
    except PageNotAnInteger:
        table.page = table.paginator.page(1)
    except EmptyPage:
        table.page = table.paginator.page(table.paginator.num_pages)
    return table


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_CHUNK = 2000


def _cell(value):
    """Text a spreadsheet would run as a formula (device names come from devices) is exported as text."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def export_csv(filename: str, header: list[str], rows):
    """console.listing.stream_csv (constant memory) with formula-looking text neutralised."""
    return stream_csv(filename, header, ([_cell(v) for v in row] for row in rows))


def _policy(policy_id) -> Policy:
    """A policy the signed-in person sees through their scope tags (console.scopetags); another is a 404."""
    return get_object_or_404(
        scopetags.visible(Policy.objects.all(), audit.current_actor().user), policy_id=policy_id
    )


def _type_url(policy: Policy) -> str:
    return reverse("policies:list", kwargs={"policy_type": SLUG_OF_TYPE[policy.policy_type]})


def _policy_context(policy: Policy, active: str) -> dict[str, Any]:
    """Breadcrumbs, tabs and sub-navigation shared by the Monitor pages of one policy."""
    kwargs = {"policy_id": policy.policy_id}
    return {
        "policy": policy,
        "breadcrumbs": BREADCRUMBS,
        "type_url": _type_url(policy),
        "type_label": policy.get_policy_type_display(),
        "active": active,
        "monitor_url": reverse("reports:policy_monitor", kwargs=kwargs),
        "devices_url": reverse("reports:policy_devices", kwargs=kwargs),
        "settings_url": reverse("reports:policy_settings", kwargs=kwargs),
    }


def _status_segments(counts: dict[str, int], link=None) -> list[charts.Segment]:
    return [
        charts.Segment(STATUS_LABEL[s], counts.get(s, 0), charts.COLORS[s], link(s) if link else "", s)
        for s in STATUS_ORDER
    ]


def _unchanged(request, version: str | None) -> bool:
    return version is not None and request.GET.get("v") == version


def _poll_response(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------------------------------------------
# Endpoint security overview
# ---------------------------------------------------------------------------------------------------------


def _cached(key: str, compute):
    """Tenant-wide counts that only change with the fleet, computed once per change and shared by every viewer:
    the key carries the version of their inputs (reports.live), the timeout bounds what a version can miss (a
    deleted device)."""
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


def _viewer_scope(user) -> tuple | None:
    """(devices, policies) a viewer is limited to, or None for someone who sees the whole tenant (a Global
    Administrator, or a role over all devices and every scope tag): they keep the fast aggregate path."""
    if user is None or (scope_group_ids(user) is None and scopetags.tag_scope(user) is None):
        return None
    return visible_devices(user), scopetags.visible(Policy.objects.all(), user)


def overview_context(now=None, user=None) -> dict[str, Any]:
    """The Endpoint security overview. For a viewer limited to some devices or scope tags every chart and count
    is computed from their devices and policies (the tenant-wide aggregates and their cache are for those who
    see everything)."""
    now = now or timezone.now()
    parts = live.overview_parts()
    devices_key, counts_key = live.devices_key(parts), live.counts_key(parts)
    scope = _viewer_scope(user)
    devices_url = reverse("devices:list")
    if scope is None:
        if tally.kept():  # exact and a few dozen rows to read: always fresh
            by_os = queries.mde_devices_by_os()
            groups, not_evaluated = queries.enrollment_breakdown()
        else:
            by_os = _cached(f"reports:mde-by-os:{devices_key}", queries.mde_devices_by_os)
            groups, not_evaluated = _cached(f"reports:enrollment:{devices_key}", queries.enrollment_breakdown)
        types = queries.policies_by_type(parts[0])
    else:
        by_os = queries.mde_devices_by_os(scope[0])
        groups, not_evaluated = queries.enrollment_breakdown(scope[0])
        types = queries.policies_by_type(queries.scoped_status_rows(scope[1], scope[0]), policies=scope[1])
    palette = dict(zip(OSType.values, charts.PALETTE, strict=False))
    platform_segments = [
        charts.Segment(
            label,
            by_os.get(value, 0),
            palette[value],
            f"{devices_url}?{urlencode({'managed_by': ManagedBy.MDE, 'os': value})}",
            value,
        )
        for value, label in OSType.choices
    ]
    mde_total = sum(by_os.values())

    enrollment_segments = [
        charts.Segment(
            f"{g.status} ({g.codes})" if g.codes and g.codes != g.status else g.status,
            g.count,
            charts.COLORS["succeeded"]
            if g.success
            else charts.COLORS["error" if g.error else "not_applicable"],
            f"{devices_url}?{urlencode({'enrollment_status': g.status})}" if g.linkable else "",
            g.status,
        )
        for g in groups
    ]
    enrollment_errors = sum(g.count for g in groups if g.error)

    totals = queries.empty_counts()
    for t in types:
        for s, n in t.counts.items():
            totals[s] += n
    issues_url = reverse("reports:issue_devices")

    def issue_link(status: str) -> str:
        return f"{issues_url}?{urlencode({'status': status})}" if status in queries.PROBLEM_STATUSES else ""

    type_rows = []
    for t in types:
        items = []
        for item in t.policies:
            monitor = reverse("reports:policy_monitor", kwargs={"policy_id": item.policy.policy_id})
            devices = reverse("reports:policy_devices", kwargs={"policy_id": item.policy.policy_id})
            items.append(
                {
                    "summary": item,
                    "monitor_url": monitor,
                    "bar": charts.stacked_bar(
                        _status_segments(item.counts, lambda s, d=devices: f"{d}?status={s}"),
                        width=160,
                        height=10,
                        title=item.policy.name,
                    ),
                    "cells": [(s, item.counts[s], f"{devices}?status={s}") for s in STATUS_ORDER],
                }
            )
        type_rows.append(
            {
                "type": t,
                "items": items,
                "counts": t.counts,
                "bar": charts.stacked_bar(_status_segments(t.counts), width=220, height=10, title=t.label),
            }
        )
    late_devices = scope[0] if scope else None
    late_count = queries.late_device_count(now, late_devices, cap=queries.LATE_COUNT_CAP)
    return {
        "now": now,
        "version": live.overview_version(now, parts),
        "mde_total": mde_total,
        "platform_donut": charts.donut(
            platform_segments, center_label="devices", title="MDE-managed devices"
        ),
        "platform_legend": charts.legend(platform_segments),
        "enrollment_bars": charts.bar_list(enrollment_segments, title="MDE enrollment status"),
        "enrollment_total": sum(g.count for g in groups),
        "enrollment_errors": enrollment_errors,
        "not_evaluated": not_evaluated,
        "devices_url": devices_url,
        "mde_devices_url": f"{devices_url}?managed_by=mde",
        "status_totals": totals,
        "status_donut": charts.donut(
            _status_segments(totals, issue_link),
            center_label="policy statuses",
            title="Policy status, all policies",
        ),
        "status_legend": charts.legend(_status_segments(totals, issue_link)),
        "types": type_rows,
        "policy_count": sum(len(t.policies) for t in types),
        "problem_devices": _cached(
            f"reports:problem-devices:{counts_key}",
            lambda: queries.problem_device_count(
                {pid for pid, status, n in parts[0] if status in queries.PROBLEM_STATUSES and n > 0}
            ),
        )
        if scope is None
        else queries.problem_device_count(scope=scope),
        "problem_pairs": {s: totals[s] for s in queries.PROBLEM_STATUSES},
        "problem_rows": list(queries.problem_rows_queryset(scope=scope)[:PREVIEW_ROWS]),
        "issues_url": issues_url,
        "late_count": late_count,
        "late_more": late_count > queries.LATE_COUNT_CAP,
        "late_cap": queries.LATE_COUNT_CAP,
        "late_rows": list(queries.late_devices_queryset(now, late_devices)[:PREVIEW_ROWS])
        if late_count
        else [],
        "late_url": reverse("reports:late_devices"),
        "late_minutes": int(_interval_minutes() * queries.LATE_FACTOR),
        "interval_minutes": int(_interval_minutes()),
        "live_url": reverse("reports:overview_live"),
        "poll_seconds": live.POLL_SECONDS,
    }


def _interval_minutes() -> float:
    from django.conf import settings

    return settings.CHECKIN_INTERVAL.total_seconds() / 60


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def overview(request):
    context = overview_context(user=request.user)
    context.update(title="Endpoint security overview", breadcrumbs=BREADCRUMBS)
    return render(request, "reports/overview.html", context)


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def overview_live(request):
    """204 while nothing on the overview changed; the refreshed body when something did."""
    now = timezone.now()
    if _unchanged(request, live.overview_version(now)):
        return _poll_response(HttpResponse(status=204))
    return _poll_response(
        render(request, "reports/partials/overview_body.html", overview_context(now, user=request.user))
    )


class _ReportListView(ObjectListView):
    """ObjectListView whose querying is done by reports.queries and whose total can come from the aggregates."""

    permission_required = PERMISSION
    per_page = 25
    partial_template_name = "reports/partials/table.html"
    device_path = "device__"  # from a row of the report to its device ("" when the rows are devices)

    def known_count(self, filterset) -> int | None:
        return None

    def in_scope(self):
        """``filtered()`` narrowed to the devices of the person's role-assignment scope (devices.scope)."""
        filterset, qs = self.filtered()
        return filterset, scoped(qs, self.request.user, via=self.device_path)

    def get(self, request, *args, **kwargs):
        if request.GET.get("export") == "csv" and self.export_values:
            _, qs = self.in_scope()
            return stream_csv_values(self.export_filename or "export.csv", qs, self.export_values)
        if request.GET.get("export") == "csv" and self.export_columns:
            _, qs = self.in_scope()
            return export_csv(
                self.export_filename or "export.csv",
                [name for name, _ in self.export_columns],
                (
                    [get(obj) for _, get in self.export_columns]
                    for obj in qs.iterator(chunk_size=EXPORT_CHUNK)
                ),
            )
        return super().get(request, *args, **kwargs)

    def table_kwargs(self) -> dict[str, Any]:
        return {}

    def get_context_data(self, **kwargs):
        ctx = TemplateView.get_context_data(self, **kwargs)
        filterset, qs = self.in_scope()
        table = self.table_class(qs, **self.table_kwargs())
        # the aggregates count the whole tenant: a person scoped to groups gets a count of their rows instead
        whole_tenant = (
            scope_group_ids(self.request.user) is None and scopetags.tag_scope(self.request.user) is None
        )
        known = self.known_count(filterset) if whole_tenant else None
        configure_table(self.request, table, per_page=self.per_page, known_count=known)
        ctx.update(
            table=table,
            filterset=filterset,
            title=self.title,
            breadcrumbs=self.breadcrumbs,
            can_export=bool(self.export_columns or self.export_values),
            partial_template=self.partial_template_name,
        )
        return ctx


def _iso(value) -> str:
    return value.isoformat() if value else ""


class IssueDeviceListView(_ReportListView):
    """Overview › Devices with errors or conflicts: every device × policy in Error or Conflict, newest first."""

    title = "Devices with errors or conflicts"
    breadcrumbs = [*BREADCRUMBS, ("Overview", "reports:overview")]
    table_class = ProblemTable
    template_name = "reports/issue_devices.html"
    export_filename = "devices-with-errors-or-conflicts.csv"
    export_columns = [
        ("Device name", lambda r: r.device.display_name),
        ("Device ID", lambda r: str(r.device.device_id)),
        ("Policy", lambda r: r.policy.name),
        ("Policy ID", lambda r: str(r.policy.policy_id)),
        ("Status", lambda r: STATUS_LABEL.get(r.status, r.status)),
        ("Error settings", lambda r: r.error_count),
        ("Conflict settings", lambda r: r.conflict_count),
        ("OS", lambda r: r.device.get_os_display()),
        ("Managed by", lambda r: r.device.get_managed_by_display()),
        ("Last report time", lambda r: _iso(r.last_reported_at)),
    ]

    @cached_property
    def policy_choices(self):
        policies = scopetags.visible(Policy.objects.all(), self.request.user)
        return [(str(p.policy_id), p.name) for p in policies.only("policy_id", "name").order_by("name")]

    def filtered(self):
        filterset = ProblemFilterSet(
            self.request.GET or None,
            queryset=DevicePolicyStatus.objects.none(),
            request=self.request,
            policy_choices=self.policy_choices,
        )
        data = cleaned(filterset)
        statuses = [data["status"]] if data.get("status") else list(queries.PROBLEM_STATUSES)
        qs = queries.problem_rows_queryset(statuses)
        if scopetags.tag_scope(self.request.user) is not None:  # only the policies the viewer's tags show
            qs = qs.filter(policy__in=scopetags.visible(Policy.objects.all(), self.request.user))
        if data.get("policy"):
            qs = qs.filter(policy__policy_id=data["policy"])
        if data.get("os"):
            qs = qs.filter(device__os=data["os"])
        if data.get("q", "").strip():
            qs = qs.filter(device__display_name__icontains=data["q"].strip())
        self._filters = data
        return filterset, qs

    def known_count(self, filterset) -> int | None:
        data = self._filters
        if data.get("os") or data.get("q", "").strip():
            return None
        statuses = [data["status"]] if data.get("status") else list(queries.PROBLEM_STATUSES)
        if data.get("policy"):
            policy = Policy.objects.filter(policy_id=data["policy"]).only("pk").first()
            counts = queries.policy_status_counts(policy.pk) if policy else queries.empty_counts()
        else:
            counts = queries.problem_pair_counts()
        return sum(counts.get(s, 0) for s in statuses)


class LateDeviceListView(_ReportListView):
    """Overview › Devices whose last check-in is older than expected."""

    title = "Devices not checking in"
    breadcrumbs = [*BREADCRUMBS, ("Overview", "reports:overview")]
    table_class = LateDeviceTable
    filterset_class = LateDeviceFilterSet
    template_name = "reports/late_devices.html"
    device_path = ""
    export_filename = "devices-not-checking-in.csv"
    export_columns = [
        ("Device name", lambda d: d.display_name),
        ("Device ID", lambda d: str(d.device_id)),
        ("OS", lambda d: d.get_os_display()),
        ("Managed by", lambda d: d.get_managed_by_display()),
        ("Last check-in", lambda d: _iso(d.last_checkin_at)),
        ("Expected check-in", lambda d: _iso(d.next_checkin_at)),
    ]

    def filtered(self):
        filterset = LateDeviceFilterSet(
            self.request.GET or None, queryset=Device.objects.none(), request=self.request
        )
        data = cleaned(filterset)
        qs = queries.late_devices_queryset()
        if data.get("os"):
            qs = qs.filter(os=data["os"])
        if data.get("q", "").strip():
            qs = qs.filter(display_name__icontains=data["q"].strip())
        return filterset, qs

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["interval_minutes"] = int(_interval_minutes())
        ctx["late_minutes"] = int(_interval_minutes() * queries.LATE_FACTOR)
        return ctx


# ---------------------------------------------------------------------------------------------------------
# Policy › Monitor
# ---------------------------------------------------------------------------------------------------------


def monitor_context(policy: Policy) -> dict[str, Any]:
    counts = queries.policy_status_counts(policy)
    devices_url = reverse("reports:policy_devices", kwargs={"policy_id": policy.policy_id})
    settings_url = reverse("reports:policy_settings", kwargs={"policy_id": policy.policy_id})
    segments = _status_segments(counts, lambda s: f"{devices_url}?status={s}")
    settings = queries.setting_status_counts(policy, devices=sum(counts.values()))
    attention = sorted((s for s in settings if s.problems), key=lambda s: (-s.problems, s.name))[:6]
    setting_totals = queries.empty_counts()
    for s in settings:
        for status, n in s.counts.items():
            setting_totals[status] += n
    attention_rows = [
        {
            "setting": s,
            "bar": charts.stacked_bar(
                _status_segments(
                    s.counts,
                    lambda st, k=s.key: f"{devices_url}?{urlencode({'setting': k, 'setting_status': st})}",
                ),
                width=140,
                height=8,
                title=s.name,
            ),
            "error_url": f"{devices_url}?{urlencode({'setting': s.key, 'setting_status': Status.ERROR})}",
            "conflict_url": f"{devices_url}?{urlencode({'setting': s.key, 'setting_status': Status.CONFLICT})}",
        }
        for s in attention
    ]
    total = sum(counts.values())
    succeeded = counts[Status.SUCCEEDED]
    applicable = total - counts[Status.NOT_APPLICABLE]
    return {
        "policy": policy,
        "counts": counts,
        "total": total,
        "success_rate": (100 * succeeded // applicable) if applicable else None,
        "donut": charts.donut(segments, center_label="devices", title="Device check-in status"),
        "legend": charts.legend(segments),
        "setting_count": len(settings),
        "setting_totals": setting_totals,
        "setting_bar": charts.stacked_bar(
            _status_segments(setting_totals), width=260, height=10, title="Settings"
        ),
        "attention": attention_rows,
        "devices_url": devices_url,
        "settings_url": settings_url,
        "version": live.policy_digest(
            policy,
            [("", s, n) for s, n in counts.items()]
            + [(s.key, st, n) for s in settings for st, n in s.counts.items()],
        ),
        "live_url": reverse("reports:policy_monitor_live", kwargs={"policy_id": policy.policy_id}),
        "poll_seconds": live.POLL_SECONDS,
        "now": timezone.now(),
    }


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def policy_monitor(request, policy_id):
    policy = _policy(policy_id)
    context = {**_policy_context(policy, "monitor"), **monitor_context(policy)}
    assignments = dict(
        PolicyAssignment.objects.filter(policy=policy)
        .values_list("intent")
        .annotate(n=Count("pk"))
        .order_by()
    )
    context.update(
        title=policy.name,
        included_groups=assignments.get(PolicyAssignment.Intent.INCLUDE, 0),
        excluded_groups=assignments.get(PolicyAssignment.Intent.EXCLUDE, 0),
    )
    return render(request, "reports/policy_monitor.html", context)


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def policy_monitor_live(request, policy_id):
    policy = _policy(policy_id)
    if _unchanged(request, live.policy_version(policy)):
        return _poll_response(HttpResponse(status=204))
    return _poll_response(render(request, "reports/partials/monitor_body.html", monitor_context(policy)))


class PolicyDeviceListView(_ReportListView):
    """View report: the devices that received the policy, with status, last report time and Managed by."""

    table_class = PolicyDeviceTable
    template_name = "reports/policy_devices.html"
    per_page = 25

    def dispatch(self, request, *args, **kwargs):
        if not self.has_permission():  # before the lookup: no 404-vs-403 probing of policy ids
            return self.handle_no_permission()
        self.policy = _policy(kwargs["policy_id"])
        self.title = self.policy.name
        self.export_filename = f"{_slug(self.policy.name)}-device-status.csv"
        return super().dispatch(request, *args, **kwargs)

    @cached_property
    def setting_choices(self) -> list[tuple[str, str]]:
        """The policy's settings by name (no query), plus a catalog setting asked for by a link from Per setting
        status that the policy no longer configures (its devices still report it until they check in)."""
        keys = set(self.policy.values or {})
        wanted = self.request.GET.get("setting", "")
        if wanted and get_catalog().get(wanted) is not None:
            keys.add(wanted)
        return sorted(((key, queries.setting_name(key)) for key in keys), key=lambda c: (c[1].lower(), c[0]))

    def filtered(self):
        filterset = PolicyDeviceFilterSet(
            self.request.GET or None,
            queryset=DevicePolicyStatus.objects.none(),
            request=self.request,
            setting_choices=self.setting_choices,
        )
        self.filters = filterset.to_filters()
        qs = queries.policy_devices_queryset(self.policy, self.filters).order_by("device_name", "device_id")
        return filterset, qs

    def known_count(self, filterset) -> int | None:
        return queries.policy_device_total(self.policy, self.filters)

    def in_scope(self):
        filterset, qs = super().in_scope()
        if self.request.GET.get("export") == "csv":
            qs = qs.annotate(overridden_by=effective.overridden_by_expression(self.policy.pk))
        return filterset, qs

    def table_kwargs(self) -> dict[str, Any]:
        policy_id = self.policy.pk
        return {
            "policy": self.policy,
            "overrides_for": lambda ids: effective.policy_device_overrides(policy_id, ids),
        }

    # PostgreSQL writes the CSV (COPY), no model instances (console/listing.py): ≥ 50,000 rows/s
    export_values = [
        CsvColumn("Device name", "device_name"),
        CsvColumn("Device ID", "device__device_id", "str"),
        CsvColumn("Status", "status", "choice", tuple(STATUS_LABEL.items()), STATUS_CODES),
        CsvColumn("Succeeded settings", "succeeded_count", "str"),
        CsvColumn("Error settings", "error_count", "str"),
        CsvColumn("Conflict settings", "conflict_count", "str"),
        CsvColumn("Not applicable settings", "not_applicable_count", "str"),
        CsvColumn("Pending settings", "pending_count", "str"),
        CsvColumn("OS", "device__os", "choice", tuple(OSType.choices)),
        CsvColumn("OS version", "device__os_version"),
        CsvColumn("Managed by", "device__managed_by", "choice", tuple(ManagedBy.choices)),
        CsvColumn("Last report time", "last_reported_at", "iso"),
        CsvColumn("Message", "message_text__text"),
        CsvColumn("Overridden by", "overridden_by", "str"),  # fixed labels: one use of the bare column
    ]

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(_policy_context(self.policy, "devices"))
        f = self.filters
        ctx["setting_filter"] = queries.setting_name(f.setting) if f.setting else ""
        ctx["filters"] = f
        ctx["setting_status_label"] = STATUS_LABEL.get(f.setting_status, "")
        ctx["title"] = self.policy.name
        return ctx


def _slug(name: str) -> str:
    from django.utils.text import slugify

    return slugify(name) or "policy"


def _device_for_policy(request, policy: Policy, device_pk: int) -> tuple[Device, DevicePolicyStatus | None]:
    device = get_object_or_404(scoped(Device.objects.defer("agent_state"), request.user), pk=device_pk)
    row = DevicePolicyStatus.objects.filter(policy=policy, device=device).first()
    return device, row


def drill_context(policy: Policy, device: Device, row: DevicePolicyStatus | None) -> dict[str, Any]:
    settings = queries.device_setting_rows(device, policy)
    counts = queries.empty_counts()
    for s in settings:
        counts[s.status] = counts.get(s.status, 0) + 1
    segments = _status_segments(counts)
    overrides = effective.device_overrides(device.pk)
    for s in settings:
        source = overrides.get(s.key) if s.status == Status.SUCCEEDED else None
        s.overridden_by = effective.source_label(source) if source else ""
    return {
        "device": device,
        "row": row,
        "settings": settings,
        "setting_counts": counts,
        "donut": charts.donut(segments, size=120, thickness=18, center_label="settings", title="Settings"),
        "legend": charts.legend(segments),
        "version": live.device_digest(device),
        "live_url": reverse(
            "reports:policy_device_settings_live",
            kwargs={"policy_id": policy.policy_id, "device_pk": device.pk},
        ),
        "poll_seconds": live.POLL_SECONDS,
        "now": timezone.now(),
    }


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def policy_device_settings(request, policy_id, device_pk: int):
    """One device's per-setting status for the policy, and for each setting the other policies that manage it."""
    policy = _policy(policy_id)
    device, row = _device_for_policy(request, policy, device_pk)
    context = drill_context(policy, device, row)
    if row is None and not context["settings"]:
        raise Http404("This device has no status for this policy.")
    if request.GET.get("export") == "csv":
        return export_csv(
            f"{_slug(device.display_name)}-{_slug(policy.name)}-settings.csv",
            [
                "Setting",
                "Setting ID",
                "Policy value",
                "Device value",
                "Status",
                "Error code",
                "Message",
                "Other policies",
            ],
            (
                [
                    s.name,
                    s.key,
                    s.configured,
                    s.value,
                    s.label,
                    s.error_code,
                    s.message,
                    "; ".join(f"{o.policy.name} ({o.label})" for o in s.others),
                ]
                for s in context["settings"]
            ),
        )
    context.update(_policy_context(policy, "devices"), title=device.display_name)
    return render(request, "reports/policy_device_settings.html", context)


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def policy_device_settings_live(request, policy_id, device_pk: int):
    policy = _policy(policy_id)
    if _unchanged(request, live.device_version(device_pk)):
        return _poll_response(HttpResponse(status=204))
    device, row = _device_for_policy(request, policy, device_pk)
    context = {**drill_context(policy, device, row), "policy": policy}
    return _poll_response(render(request, "reports/partials/drill_body.html", context))


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def policy_device_setting(request, policy_id, device_pk: int, setting_key: str):
    """One setting on one device: this policy's value and status, and every other policy that manages it."""
    policy = _policy(policy_id)
    device = get_object_or_404(scoped(Device.objects.defer("agent_state"), request.user), pk=device_pk)
    rows = {r.key: r for r in queries.device_setting_rows(device, policy)}
    setting = rows.get(setting_key)
    if setting is None:
        raise Http404("This policy doesn't manage that setting on this device.")
    sdef = get_catalog().get(setting_key)
    context = _policy_context(policy, "devices")
    context.update(
        title=setting.name,
        device=device,
        setting=setting,
        sdef=sdef,
        others=setting.others,
        drill_url=reverse(
            "reports:policy_device_settings", kwargs={"policy_id": policy.policy_id, "device_pk": device.pk}
        ),
    )
    return render(request, "reports/policy_device_setting.html", context)


# ---------------------------------------------------------------------------------------------------------
# Per setting status
# ---------------------------------------------------------------------------------------------------------


SETTING_SORTS = {
    "name": lambda s: (s.name.lower(), s.key),
    **{st: (lambda s, st=st: (s.counts[st], s.name.lower())) for st in STATUS_ORDER},
}


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def policy_settings(request, policy_id):
    """Every setting of the policy with its device counts per status, each count linking to those devices.

    A plain template rather than django-tables2: a policy has at most a few hundred settings, all on one page,
    and every cell is a precomputed link (django-tables2's per-cell machinery costs more than the queries)."""
    policy = _policy(policy_id)
    settings = queries.setting_status_counts(policy)
    overrides = effective.policy_overrides(policy.pk, [s.key for s in settings])
    for s in settings:
        by_source = overrides.get(s.key, {})
        s.overridden = sum(by_source.values())
        s.overridden_sources = [(effective.source_label(code), n) for code, n in sorted(by_source.items())]
    q = request.GET.get("q", "").strip()[:200]
    only_problems = request.GET.get("problems") == "1"
    rows = [
        s
        for s in settings
        if (not q or q.lower() in s.name.lower() or q.lower() in s.key.lower())
        and (not only_problems or s.problems)
    ]
    sort = request.GET.get("sort", "")
    key = sort.lstrip("-")
    if key in SETTING_SORTS:
        rows.sort(key=SETTING_SORTS[key], reverse=sort.startswith("-"))
    if request.GET.get("export") == "csv":
        return export_csv(
            f"{_slug(policy.name)}-per-setting-status.csv",
            [
                "Setting",
                "Setting ID",
                "Category",
                "Configured value",
                *(STATUS_LABEL[s] for s in STATUS_ORDER),
                "Succeeded but overridden",
                "Overridden by",
            ],
            (
                [
                    s.name,
                    s.key,
                    s.category,
                    s.configured,
                    *(s.counts[st] for st in STATUS_ORDER),
                    s.overridden,
                    "; ".join(f"{label} {n}" for label, n in s.overridden_sources),
                ]
                for s in rows
            ),
        )
    devices_url = reverse("reports:policy_devices", kwargs={"policy_id": policy.policy_id})
    table = []
    for s in rows:
        links = {
            st: f"{devices_url}?{urlencode({'setting': s.key, 'setting_status': st})}" for st in STATUS_ORDER
        }
        table.append(
            {
                "setting": s,
                "bar": charts.stacked_bar(
                    [
                        charts.Segment(STATUS_LABEL[st], s.counts[st], charts.COLORS[st], links[st], st)
                        for st in STATUS_ORDER
                    ],
                    width=120,
                    height=8,
                    title=s.name,
                ),
                "cells": [(st, s.counts[st], links[st]) for st in STATUS_ORDER],
            }
        )
    params = request.GET.copy()
    params.pop("sort", None)
    base = params.urlencode()
    headers = []
    for k in ("name", *STATUS_ORDER):
        # Names sort A to Z first, counts largest first; a second click reverses.
        if k == "name":
            following = "-name" if sort == "name" else "name"
        else:
            following = k if sort == f"-{k}" else f"-{k}"
        headers.append(
            {
                "key": k,
                "label": "Setting" if k == "name" else STATUS_LABEL[k],
                "url": "?" + "&".join(p for p in (base, f"sort={following}") if p),
                "order": "asc" if sort == k else "desc" if sort == f"-{k}" else "",
            }
        )
    totals = queries.empty_counts()
    for s in settings:
        for status, n in s.counts.items():
            totals[status] += n
    context = _policy_context(policy, "settings")
    context.update(
        title=policy.name,
        rows=table,
        headers=headers,
        sort=sort,
        q=q,
        only_problems=only_problems,
        setting_count=len(settings),
        totals=totals,
        totals_bar=charts.stacked_bar(_status_segments(totals), width=300, height=12, title="All settings"),
        problem_settings=sum(1 for s in settings if s.problems),
    )
    if request.htmx and not request.htmx.boosted:
        return render(request, "reports/partials/settings_list.html", context)
    return render(request, "reports/policy_settings.html", context)


# ---------------------------------------------------------------------------------------------------------
# Device page: the check-in panel, live
# ---------------------------------------------------------------------------------------------------------


@require_GET
@permission_required("devices.view_device", raise_exception=True)
def device_panel_live(request, pk: int):
    """The device page's check-in panel (templates/checkins/device_panel.html), refreshed when the device's
    check-in stamps change: 204 while they don't. Include reports/partials/device_panel_live.html to use it."""
    version = live.device_version(pk)
    if version is None:
        raise Http404("No such device.")
    if _unchanged(request, version):
        return _poll_response(HttpResponse(status=204))
    context = panel_context(request, pk)
    context.update(
        version=version,
        live_url=reverse("reports:device_panel_live", args=[pk]),
        poll_seconds=live.POLL_SECONDS,
    )
    return _poll_response(render(request, "reports/partials/device_panel_live_body.html", context))


# ---------------------------------------------------------------------------------------------------------
# Effective settings: the fleet report (a console extension: Defender shows one device at a time)
# ---------------------------------------------------------------------------------------------------------

EFFECTIVE_KINDS = (
    ("", "All types"),
    ("asr", "ASR rules"),
    ("av", "Antivirus settings"),
    ("exclusion", "Exclusions"),
)


def _effective_filters(request) -> tuple[dict[str, Any], list[str]]:
    errors = []
    kind = request.GET.get("kind", "")
    if kind not in dict(EFFECTIVE_KINDS):
        errors.append(f"There is no type “{kind[:40]}”: showing every type.")
        kind = ""
    return {
        "kind": kind,
        "only_overridden": request.GET.get("overridden") == "1",
        "q": request.GET.get("q", "").strip()[:200],
        "universe": tuple(effective_defaults()),
    }, errors


def effective_context(request, filters: dict[str, Any]) -> dict[str, Any]:
    rows, reporting = effective.fleet_rows(request.user, **filters)
    devices_url = reverse("reports:effective_devices")
    table = []
    for r in rows:
        base = {"setting": r.setting_key, "entry": r.entry}

        def link(bucket, source="", base=base):
            params = {**base, "bucket": bucket, **({"source": source} if source else {})}
            return f"{devices_url}?{urlencode({k: v for k, v in params.items() if v != ''})}"

        table.append(
            {
                "row": r,
                "matches_url": link("matches"),
                "overridden": [(label, n, link("overridden", code)) for code, label, n in r.overridden_list],
                "unmanaged": [(label, n, link("unmanaged", code)) for code, label, n in r.unmanaged_list],
                "not_configured_url": link("not_configured"),
            }
        )
    return {
        "rows": table,
        "reporting": reporting,
        "overridden_settings": sum(1 for r in rows if r.overridden_total),
        "version": effective.fleet_version(request.user),
        "live_url": reverse("reports:effective_settings_live")
        + ("?" + request.GET.urlencode() if request.GET else ""),
        "poll_seconds": live.POLL_SECONDS,
        "now": timezone.now(),
        "filters": filters,
    }


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def effective_settings(request):
    """Endpoint security › Reports › Effective settings: per setting, ASR rule and exclusion entry, the devices
    that enforce what the policies intend, the devices where another source wins (by source), and the devices
    where nothing configures it."""
    filters, errors = _effective_filters(request)
    if request.GET.get("export") == "csv":
        rows, _ = effective.fleet_rows(request.user, **filters)
        response = HttpResponse(effective.fleet_csv(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="effective-settings.csv"'
        return response
    context = effective_context(request, filters)
    context.update(
        title="Effective settings",
        breadcrumbs=BREADCRUMBS,
        kinds=EFFECTIVE_KINDS,
        filter_errors=errors,
        csv_url="?" + "&".join(p for p in (request.GET.urlencode(), "export=csv") if p),
    )
    return render(request, "reports/effective_settings.html", context)


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def effective_settings_live(request):
    if _unchanged(request, effective.fleet_version(request.user)):
        return _poll_response(HttpResponse(status=204))
    filters, _ = _effective_filters(request)
    return _poll_response(
        render(request, "reports/partials/effective_body.html", effective_context(request, filters))
    )


EFFECTIVE_BUCKETS = {
    "matches": "Devices matching intent",
    "overridden": "Devices where another source wins",
    "unmanaged": "Devices configured without a policy intent",
    "not_configured": "Devices where nothing configures it",
}


@require_GET
@permission_required(PERMISSION, raise_exception=True)
def effective_devices(request):
    """The devices behind one count of the Effective settings report."""
    setting = request.GET.get("setting", "")
    entry = request.GET.get("entry", "")
    bucket = request.GET.get("bucket", "")
    source = request.GET.get("source", "")
    problems = []
    if not request.GET:
        return render(
            request,
            "reports/effective_devices.html",
            {
                "title": "Effective settings",
                "breadcrumbs": BREADCRUMBS,
                "problems": ["Choose a count in the Effective settings report to see its devices."],
            },
        )
    if get_catalog().get(setting) is None:
        problems.append("Choose a setting from the Effective settings report: this one isn't in the catalog.")
    if bucket not in EFFECTIVE_BUCKETS:
        problems.append(f"There is no count “{bucket[:40]}”; choose one from the report.")
    if source and source not in effective.SOURCE_LABELS:
        problems.append(f"There is no source “{source[:40]}”.")
    if problems:
        return render(
            request,
            "reports/effective_devices.html",
            {"title": "Effective settings", "breadcrumbs": BREADCRUMBS, "problems": problems},
            status=400,
        )
    devices = effective.fleet_devices(request.user, setting, entry, bucket, source)
    paginator = Paginator(
        devices.only("pk", "display_name", "os", "os_version", "managed_by", "last_checkin_at"), 50
    )
    page = paginator.get_page(request.GET.get("page"))
    rows = {
        r.device_id: r
        for r in DeviceEffectiveSetting.objects.filter(
            setting_key=setting, entry=entry, device_id__in=[d.pk for d in page.object_list]
        )
    }
    items = [
        {
            "device": d,
            "value": effective.value_text(setting, entry, rows[d.pk].value) if d.pk in rows else "Default",
            "source": effective.source_label(rows[d.pk].configured_by) if d.pk in rows else "Default",
        }
        for d in page.object_list
    ]
    label = EFFECTIVE_BUCKETS[bucket] + (f" ({effective.source_label(source)})" if source else "")
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "reports/effective_devices.html",
        {
            "title": effective.setting_name(setting),
            "breadcrumbs": BREADCRUMBS,
            "bucket_label": label,
            "entry": entry,
            "items": items,
            "page": page,
            "query": params.urlencode(),
        },
    )
