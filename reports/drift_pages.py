"""Endpoint security › Reports › Drift: every change of an effective value in the tenant (last 24 h, 7 days or
30 days), by setting and source, filterable, paged and exported to CSV; the device list of a person's scope."""

from __future__ import annotations

from datetime import timedelta

import django_filters
import django_tables2 as tables
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from console.listing import ObjectListView
from console.tables import WhenColumn
from devices.scope import scoped
from policies.catalog import display_value

from .drift import SOURCE_LABELS, setting_label
from .models import DriftEvent

WINDOWS = {"24h": ("Last 24 hours", timedelta(hours=24)), "7d": ("Last 7 days", timedelta(days=7)),
           "30d": ("Last 30 days", timedelta(days=30))}  # fmt: skip
DEFAULT_WINDOW = "24h"


def _value(event_key: str, value) -> str:
    if value is None:
        return "Not configured"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(empty)"
    try:
        return display_value(event_key, value)
    except Exception:  # a value the catalog cannot label is shown as it is, never a 500
        return str(value)


def _setting_choices() -> list[tuple[str, str]]:
    keys = DriftEvent.objects.order_by().values_list("setting_key", flat=True).distinct()
    return sorted(((k, setting_label(k)) for k in keys), key=lambda pair: pair[1].lower())


class DriftFilterSet(django_filters.FilterSet):
    window = django_filters.ChoiceFilter(
        label="Time range",
        choices=[(k, v[0]) for k, v in WINDOWS.items()],
        method="by_window",
        empty_label=None,
    )
    setting = django_filters.ChoiceFilter(field_name="setting_key", label="Setting", choices=())
    source = django_filters.ChoiceFilter(field_name="source", label="Configured by", choices=())
    q = django_filters.CharFilter(field_name="device__display_name", lookup_expr="icontains", label="Device")

    class Meta:
        model = DriftEvent
        fields = ["window", "setting", "source", "q"]

    def __init__(self, data=None, *args, **kwargs):
        data = data.copy() if data is not None else {}
        data.setdefault("window", DEFAULT_WINDOW)
        super().__init__(data, *args, **kwargs)
        self.filters["setting"].extra["choices"] = _setting_choices()
        self.filters["source"].extra["choices"] = list(SOURCE_LABELS.items())

    def by_window(self, queryset, name, value):
        return queryset.filter(at__gte=timezone.now() - WINDOWS[value][1])


class DriftTable(tables.Table):
    at = WhenColumn(verbose_name="Time")
    device = tables.Column(accessor="device__display_name", verbose_name="Device")
    setting_key = tables.Column(verbose_name="Setting")
    entry = tables.Column(verbose_name="Entry", default="—")
    change = tables.Column(empty_values=(), verbose_name="Change", orderable=False)
    source = tables.Column(verbose_name="Configured by")

    class Meta:
        model = DriftEvent
        fields = ("at", "device", "setting_key", "entry", "change", "source")
        order_by = ("-at",)

    def render_device(self, record, value):
        return format_html('<a href="{}">{}</a>', reverse("devices:detail", args=[record.device_id]), value)

    def render_setting_key(self, value):
        return format_html('<span title="{}">{}</span>', value, setting_label(value))

    def render_change(self, record):
        return format_html(
            '{} <span class="muted">→</span> <strong>{}</strong>',
            _value(record.setting_key, record.old_value),
            _value(record.setting_key, record.new_value),
        )

    def render_source(self, record, value):
        label = SOURCE_LABELS.get(value, value)
        if record.old_source and record.old_source != value:
            return format_html(
                '<span class="muted">{}</span> → {}',
                SOURCE_LABELS.get(record.old_source, record.old_source),
                label,
            )
        return label


class DriftListView(ObjectListView):
    permission_required = "reports.view_driftevent"
    queryset = DriftEvent.objects.select_related("device")
    filterset_class = DriftFilterSet
    table_class = DriftTable
    template_name = "reports/drift_list.html"
    title = "Drift"
    breadcrumbs = [("Endpoint security", "policies:overview")]
    per_page = 50
    export_filename = "drift.csv"
    export_columns = [
        ("Time", lambda e: e.at.isoformat()),
        ("Device name", lambda e: e.device.display_name),
        ("Device ID", lambda e: str(e.device.device_id)),
        ("Setting", lambda e: setting_label(e.setting_key)),
        ("Setting definition ID", lambda e: e.setting_key),
        ("Entry", lambda e: e.entry),
        ("Old value", lambda e: _value(e.setting_key, e.old_value)),
        ("New value", lambda e: _value(e.setting_key, e.new_value)),
        ("Previously configured by", lambda e: SOURCE_LABELS.get(e.old_source, e.old_source)),
        ("Configured by", lambda e: SOURCE_LABELS.get(e.source, e.source)),
    ]

    def get_queryset(self):
        return scoped(super().get_queryset(), self.request.user, via="device__")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        _, qs = self.filtered()
        by_setting = (
            qs.order_by().values("setting_key").annotate(n=Count("id")).order_by("-n", "setting_key")[:10]
        )
        by_source = qs.order_by().values("source").annotate(n=Count("id")).order_by("-n", "source")
        ctx["by_setting"] = [
            {"key": row["setting_key"], "label": setting_label(row["setting_key"]), "n": row["n"]}
            for row in by_setting
        ]
        ctx["by_source"] = [
            {"key": row["source"], "label": SOURCE_LABELS.get(row["source"], row["source"]), "n": row["n"]}
            for row in by_source
        ]
        ctx["window_label"] = WINDOWS.get(self.request.GET.get("window", DEFAULT_WINDOW), WINDOWS["24h"])[0]
        return ctx
