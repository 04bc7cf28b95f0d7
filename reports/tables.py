"""django-tables2 tables of the report lists: headers, sorting and pagination are django-tables2's; the body rows
are built as plain strings (console.tables.FastRows). Every cell reads the row and its select_related objects only, so a
page of any size is one query."""

from __future__ import annotations

from html import escape

import django_tables2 as tables
from django.urls import reverse

from console.datetimes import when_html
from console.tables import FastRows
from devices.models import ManagedBy, OSType

from . import charts
from .queries import STATUS_ICON, STATUS_LABEL, STATUS_ORDER

MANAGED_BY_PILL = {"mde": "pill-purple", "intune": "pill-blue", "co_managed": "pill-blue"}
OS_LABEL = dict(OSType.choices)
MANAGED_BY_LABEL = dict(ManagedBy.choices)


def status_cell(status: str) -> str:
    return (
        f'<span class="status st-{escape(status)}" data-status="{escape(status)}"><svg class="ico">'
        f'<use href="#i-{STATUS_ICON.get(status, "info")}"/></svg>{escape(STATUS_LABEL.get(status, status or "—"))}</span>'
    )


def managed_by_cell(managed_by: str) -> str:
    return (
        f'<span class="pill {MANAGED_BY_PILL.get(managed_by, "")}">'
        f"{escape(MANAGED_BY_LABEL.get(managed_by, managed_by))}</span>"
    )


def when_cell(value) -> str:
    """A timestamp as the admin center lists it: the console's one format (the exact time on hover)."""
    if value is None:
        return '<span class="muted">Never</span>'
    return when_html(value)


def link_cell(url: str, text: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<a href="{escape(url)}"{cls} hx-boost="false">{escape(text)}</a>'


def setting_bar(row) -> str:
    """A device's settings for the policy as a small stacked bar (the counts are stored on the row)."""
    counts = {
        "succeeded": row.succeeded_count,
        "error": row.error_count,
        "conflict": row.conflict_count,
        "not_applicable": row.not_applicable_count,
        "pending": row.pending_count,
    }
    segments = [charts.Segment(STATUS_LABEL[s], counts[s], charts.COLORS[s], key=s) for s in STATUS_ORDER]
    total = sum(counts.values())
    return (
        f'<span class="minibar">{charts.stacked_bar(segments, width=90, height=8, title="Settings")}'
        f'<span class="small muted">{total:,} setting{"" if total == 1 else "s"}</span></span>'
    )


class PolicyDeviceTable(FastRows, tables.Table):
    """View report: the devices that received the policy."""

    device = tables.Column(verbose_name="Device", order_by=("device_name", "device_id"))
    status = tables.Column(verbose_name="Status", order_by=("status", "device_name", "device_id"))
    settings = tables.Column(verbose_name="Settings", orderable=False)
    # Not sortable: OS and Managed by are the device's, and sorting a policy's devices by them joined and
    # sorted every row of the policy (at 1,000,000 devices, the largest policy: 1.9 s and 5.4 s for 25 rows).
    # Every sortable column is answered by an index of the policy status rows (Device, Status, Last report time).
    os = tables.Column(verbose_name="OS", orderable=False)
    managed_by = tables.Column(verbose_name="Managed by", orderable=False)
    last_reported_at = tables.Column(
        verbose_name="Last report time", order_by=("last_reported_at", "device_id")
    )

    class Meta:
        template_name = "console/fast_table.html"
        attrs = {"class": "grid", "id": "policy-device-table"}
        order_by = ("device",)

    def __init__(self, *args, policy=None, overrides_for=None, **kwargs):
        self.policy = policy
        # device ids -> {device id: [source labels]} where a setting this policy delivered is overridden by another
        # source; asked once, for the devices of the page
        self.overrides_for = overrides_for
        self._overrides: dict | None = None
        super().__init__(*args, **kwargs)
        # One reverse() per page instead of one per row: the drill-in URL ends with "<device pk>/".
        self._drill = reverse(
            "reports:policy_device_settings", kwargs={"policy_id": policy.policy_id, "device_pk": 0}
        ).removesuffix("0/")

    @property
    def overrides(self) -> dict:
        if self._overrides is None:
            ids = [row.record.device_id for row in self.paginated_rows]
            self._overrides = self.overrides_for(ids) if self.overrides_for and ids else {}
        return self._overrides

    def row_attrs_for(self, record):
        return {"data-device": record.device.display_name, "data-status": record.status}

    def cell_device(self, record):
        return link_cell(f"{self._drill}{record.device_id}/", record.device.display_name, "rowlink")

    def cell_status(self, record):
        cell = status_cell(record.status)
        sources = self.overrides.get(record.device_id) if self.overrides else None
        if sources and record.status == "succeeded":
            labels = ", ".join(escape(label) for label in sources)
            cell += f'<div class="overridden small" data-overridden="1">Overridden by {labels}</div>'
        return cell

    def cell_settings(self, record):
        return setting_bar(record)

    def cell_os(self, record):
        return escape(OS_LABEL.get(record.device.os, record.device.os))

    def cell_managed_by(self, record):
        return managed_by_cell(record.device.managed_by)

    def cell_last_reported_at(self, record):
        return when_cell(record.last_reported_at)


class ProblemTable(FastRows, tables.Table):
    """Overview: device × policy rows in Error or Conflict (newest first; not sortable: see the view)."""

    device = tables.Column(verbose_name="Device", orderable=False)
    policy = tables.Column(verbose_name="Policy", orderable=False)
    status = tables.Column(verbose_name="Status", orderable=False)
    settings = tables.Column(verbose_name="Settings", orderable=False)
    os = tables.Column(verbose_name="OS", orderable=False)
    last_reported_at = tables.Column(verbose_name="Last report time", orderable=False)

    class Meta:
        template_name = "console/fast_table.html"
        attrs = {"class": "grid", "id": "problem-table"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sample = "00000000-0000-0000-0000-000000000000"
        self._monitor = reverse("reports:policy_monitor", kwargs={"policy_id": sample}).split(sample)

    def row_attrs_for(self, record):
        return {"data-device": record.device.display_name, "data-policy": record.policy.name}

    def cell_device(self, record):
        prefix, suffix = self._monitor
        return link_cell(
            f"{prefix}{record.policy.policy_id}{suffix}devices/{record.device_id}/",
            record.device.display_name,
        )

    def cell_policy(self, record):
        prefix, suffix = self._monitor
        return link_cell(f"{prefix}{record.policy.policy_id}{suffix}", record.policy.name)

    def cell_status(self, record):
        return status_cell(record.status)

    def cell_settings(self, record):
        return setting_bar(record)

    def cell_os(self, record):
        return escape(OS_LABEL.get(record.device.os, record.device.os))

    def cell_last_reported_at(self, record):
        return when_cell(record.last_reported_at)


class LateDeviceTable(FastRows, tables.Table):
    """Overview: devices whose last check-in is older than expected."""

    display_name = tables.Column(verbose_name="Device", order_by=("display_name", "pk"))
    os = tables.Column(verbose_name="OS", order_by=("os", "display_name"))
    managed_by = tables.Column(verbose_name="Managed by", order_by=("managed_by", "display_name"))
    last_checkin_at = tables.Column(verbose_name="Last check-in", order_by=("last_checkin_at", "pk"))
    next_checkin_at = tables.Column(verbose_name="Expected check-in", order_by=("next_checkin_at", "pk"))

    class Meta:
        template_name = "console/fast_table.html"
        attrs = {"class": "grid", "id": "late-device-table"}
        order_by = ("next_checkin_at",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._device = reverse("devices:detail", args=[0]).removesuffix("0/")

    def row_attrs_for(self, record):
        return {"data-device": record.display_name}

    def cell_display_name(self, record):
        return link_cell(f"{self._device}{record.pk}/", record.display_name)

    def cell_os(self, record):
        return escape(OS_LABEL.get(record.os, record.os))

    def cell_managed_by(self, record):
        return managed_by_cell(record.managed_by)

    def cell_last_checkin_at(self, record):
        return when_cell(record.last_checkin_at)

    def cell_next_checkin_at(self, record):
        return when_cell(record.next_checkin_at)
