from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from console.tables import WhenColumn
from policies.models import Policy


class PolicyTable(tables.Table):
    name = tables.Column(verbose_name="Policy name")
    platform = tables.Column(verbose_name="Platform")
    profile = tables.Column(verbose_name="Policy type")
    is_assigned = tables.BooleanColumn(verbose_name="Assigned", yesno="Yes,No")
    target = tables.Column(verbose_name="Target", empty_values=(), orderable=False)
    updated_at = WhenColumn(verbose_name="Last modified")

    class Meta:
        model = Policy
        fields = ("name", "platform", "profile", "is_assigned", "target", "updated_at")
        order_by = ("name",)
        attrs = {"class": "grid", "id": "policy-table"}

    def render_name(self, record, value):
        url = reverse("policies:detail", kwargs={"policy_id": record.policy_id})
        return format_html('<a href="{}" hx-boost="false">{}</a>', url, value)

    def render_platform(self, record):
        return record.get_platform_display()

    def render_target(self):
        return "Devices"
