"""Filters of the report lists. They validate and render the filter forms; the querying itself is done by
reports.queries (the same functions the Graph reports call), so the console and the API always agree."""

from __future__ import annotations

import django_filters
from django import forms

from devices.models import OSType

from .queries import PROBLEM_STATUSES, STATUS_LABEL, STATUS_ORDER, DeviceFilters

STATUS_CHOICES = [(s, STATUS_LABEL[s]) for s in STATUS_ORDER]


def _search(placeholder: str) -> django_filters.CharFilter:
    return django_filters.CharFilter(
        method="noop",
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": placeholder, "class": "searchbox"}),
    )


class _ReportFilterSet(django_filters.FilterSet):
    def noop(self, queryset, name, value):  # the view queries through reports.queries
        return queryset


class PolicyDeviceFilterSet(_ReportFilterSet):
    """View report: the devices of one policy."""

    q = _search("Search by device name")
    status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, label="Status", empty_label="All", method="noop"
    )
    os = django_filters.ChoiceFilter(choices=OSType.choices, label="OS", empty_label="All", method="noop")
    setting = django_filters.ChoiceFilter(
        choices=[], label="Setting", empty_label="All settings", method="noop"
    )
    setting_status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, label="Setting status", empty_label="Any", method="noop"
    )

    def __init__(self, *args, setting_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        field = self.form.fields["setting"]
        field.choices = [("", "All settings"), *setting_choices]
        field.widget.attrs["class"] = "setting-select"

    def to_filters(self) -> DeviceFilters:
        data = self.form.cleaned_data if self.is_bound and self.is_valid() else {}
        return DeviceFilters(
            status=data.get("status") or "",
            os=data.get("os") or "",
            q=(data.get("q") or "").strip(),
            setting=data.get("setting") or "",
            setting_status=data.get("setting_status") or "",
        )


class ProblemFilterSet(_ReportFilterSet):
    """Overview › devices with errors or conflicts (device × policy rows)."""

    q = _search("Search by device name")
    status = django_filters.ChoiceFilter(
        choices=[(s, STATUS_LABEL[s]) for s in PROBLEM_STATUSES],
        label="Status",
        empty_label="Error or conflict",
        method="noop",
    )
    policy = django_filters.ChoiceFilter(
        choices=[], label="Policy", empty_label="All policies", method="noop"
    )
    os = django_filters.ChoiceFilter(choices=OSType.choices, label="OS", empty_label="All", method="noop")

    def __init__(self, *args, policy_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.form.fields["policy"].choices = [("", "All policies"), *policy_choices]


class LateDeviceFilterSet(_ReportFilterSet):
    """Overview › devices whose last check-in is older than expected."""

    q = _search("Search by device name")
    os = django_filters.ChoiceFilter(choices=OSType.choices, label="OS", empty_label="All", method="noop")


def cleaned(filterset: django_filters.FilterSet) -> dict:
    """The valid filter values (an invalid form filters nothing and shows its errors)."""
    if filterset.is_bound and filterset.is_valid():
        return {k: v for k, v in filterset.form.cleaned_data.items() if v not in (None, "")}
    return {}
