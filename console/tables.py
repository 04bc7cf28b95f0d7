from __future__ import annotations

from html import escape

import django_tables2 as tables
from django.contrib.auth import get_user_model
from django.template import Context
from django.template.loader import get_template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from .datetimes import when_html
from .models import AuditEvent, WebhookDelivery
from .rbac import role_names


class FastRows:
    """Body rows built by calling each column's ``cell_<name>(record)`` directly, as strings.

    django-tables2 renders a cell through signature inspection, per-cell attribute dictionaries and format_html
    (``BoundRow.items``): about 0.2 ms a cell, 60 ms for 25 rows of All devices, which capped the page at 9
    requests/s on two cores (bench_http). Headers, sorting and paging stay django-tables2's; the body is built here.
    Each ``cell_<name>`` returns HTML with every text escaped. A column's static ``attrs={"td": {"class": ...}}``
    is kept. A FastRows table sets ``Meta.template_name = "console/fast_table.html"``.
    """

    def row_attrs_for(self, record) -> dict[str, str]:
        return {}

    @property
    def row_html(self):
        plan = []
        for column in self.columns:
            css = column.column.attrs.get("td", {}).get("class")
            plan.append(
                (getattr(self, f"cell_{column.name}"), f'<td class="{escape(css)}">' if css else "<td>")
            )
        for row in self.paginated_rows:
            record = row.record
            attrs = "".join(f' {k}="{escape(str(v))}"' for k, v in self.row_attrs_for(record).items())
            body = "".join(f"{td}{cell(record)}</td>" for cell, td in plan)
            yield mark_safe(f"<tr{attrs}>{body}</tr>")  # the cell_* methods escape every text


class WhenColumn(tables.Column):
    """A timestamp column in the console's one date format (console/datetimes.py), exact time on hover."""

    def __init__(self, *args, ago: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.ago = ago

    def render(self, value):
        return mark_safe(when_html(value, ago=self.ago))


class RowTemplateColumn(tables.TemplateColumn):
    """A TemplateColumn that renders each row without re-running the context processors.

    django-tables2 renders a ``template_name`` with ``request=``, so every row re-ran the shell's context
    processors (two queries a row: the audit log had 57 queries at 25 rows). The page's context, already
    computed once (csrf_token, perms, ...), is passed down flattened instead: the query count stays constant.
    """

    def render(self, record, table, value, bound_column, **kwargs):
        parent_context = getattr(table, "context", None) or Context()
        context = self.get_context_data(
            record=record, table=table, value=value, bound_column=bound_column, **kwargs
        )
        with parent_context.update(context):
            return get_template(self.template_name).render(parent_context.flatten())


def _text(value) -> str:
    """A cell's text as django-tables2 shows it: escaped, and "—" for nothing."""
    return "—" if value in (None, "") else escape(str(value))


def _changes_html(before: dict | None, after: dict | None) -> str:
    """The audit event's changes, folded: one row a property, its old and new value."""
    before, after = before or {}, after or {}
    if not before and not after:
        return '<span class="muted">—</span>'
    rows = (
        [(key, before.get(key, ""), value) for key, value in after.items()]
        if after
        else [(key, value, "") for key, value in before.items()]
    )
    body = "".join(
        f'<tr><td class="mono">{escape(str(key))}</td><td class="mono">{escape(str(old))}</td>'
        f'<td class="mono">{escape(str(new))}</td></tr>'
        for key, old, new in rows
    )
    return (
        '<details><summary class="small">View</summary><table class="grid small"><tr><th>Property</th>'
        f"<th>Old value</th><th>New value</th></tr>{body}</table></details>"
    )


class AuditEventTable(FastRows, tables.Table):
    """The audit log. Rows are built as strings (FastRows): a full page of 50 policy events, whose changes hold
    every setting of the policy, took 150-250 ms to render through django-tables2 and a template per row."""

    at = WhenColumn(verbose_name="Date")
    actor_name = tables.Column(verbose_name="Initiated by")
    source = tables.Column(verbose_name="Source")
    action = tables.Column(verbose_name="Activity")
    object_type = tables.Column(verbose_name="Object type")
    object_repr = tables.Column(verbose_name="Target")
    ip = tables.Column(verbose_name="IP address")
    changes = tables.Column(verbose_name="Changes", orderable=False, empty_values=())

    class Meta:
        model = AuditEvent
        fields = ("at", "actor_name", "source", "action", "object_type", "object_repr", "ip", "changes")
        order_by = ("-at",)
        template_name = "console/fast_table.html"

    def cell_at(self, record):
        return when_html(record.at)

    def cell_actor_name(self, record):
        return _text(record.actor_name)

    def cell_source(self, record):
        return _text(record.get_source_display())

    def cell_action(self, record):
        return f'<span class="mono">{escape(record.action)}</span>'

    def cell_object_type(self, record):
        return _text(record.object_type)

    def cell_object_repr(self, record):
        return _text(record.object_repr)

    def cell_ip(self, record):
        return _text(record.ip)

    def cell_changes(self, record):
        return _changes_html(record.before, record.after)


class UserTable(tables.Table):
    username = tables.LinkColumn("user_detail", args=[tables.A("pk")], verbose_name="User name")
    name = tables.Column(empty_values=(), verbose_name="Name", orderable=False)
    email = tables.Column(verbose_name="Email")
    is_active = tables.BooleanColumn(verbose_name="Enabled", yesno="Enabled,Disabled")
    roles = tables.Column(empty_values=(), verbose_name="Roles", orderable=False)
    last_login = WhenColumn(verbose_name="Last sign-in", default="Never")

    class Meta:
        model = get_user_model()
        fields = ("username", "name", "email", "is_active", "roles", "last_login")
        order_by = ("username",)

    def render_name(self, record):
        return record.get_full_name() or "—"

    def render_roles(self, record):
        return ", ".join(role_names(record)) or "—"


class WebhookDeliveryTable(tables.Table):
    created_at = WhenColumn(verbose_name="Created")
    event_type = tables.Column(verbose_name="Event")
    status = tables.Column(verbose_name="Status")
    attempts = tables.Column(verbose_name="Attempts")
    last_status_code = tables.Column(verbose_name="Last response", default="—")
    next_attempt_at = WhenColumn(verbose_name="Next attempt", default="—")
    delivered_at = WhenColumn(verbose_name="Delivered", default="—")
    history = tables.TemplateColumn(
        template_name="console/partials/webhook_attempts.html", verbose_name="Attempts log", orderable=False
    )

    class Meta:
        model = WebhookDelivery
        fields = (
            "created_at", "event_type", "status", "attempts", "last_status_code", "next_attempt_at",
            "delivered_at", "history",
        )  # fmt: skip
        order_by = ("-created_at",)

    def render_event_type(self, value):
        return format_html('<span class="mono">{}</span>', value)

    def render_status(self, record, value):
        css = {"succeeded": "pill-green", "failed": "pill-red"}.get(record.status, "")
        return format_html('<span class="pill {}">{}</span>', css, value)

    def render_next_attempt_at(self, record, value):
        if record.status != WebhookDelivery.Status.PENDING:
            return "—"
        return mark_safe(when_html(value))
