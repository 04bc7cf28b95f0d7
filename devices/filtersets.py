from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q

from .models import MDE_JOINED, MDE_MANAGED, Device, Group, ManagedBy, OSType
from .onboarding import ENROLLMENT_STATUSES

NO_LABEL = "none"


class DeviceFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label="Search by name",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search by device name", "class": "searchbox"}
        ),
    )
    os = django_filters.ChoiceFilter(choices=OSType.choices, label="OS", empty_label="All")
    managed_by = django_filters.ChoiceFilter(choices=ManagedBy.choices, label="Managed by", empty_label="All")
    label = django_filters.ChoiceFilter(
        method="filter_label",
        label="Label",
        empty_label="All",
        choices=[(MDE_JOINED, MDE_JOINED), (MDE_MANAGED, MDE_MANAGED), (NO_LABEL, "No label")],
    )
    enrollment_status = django_filters.ChoiceFilter(
        label="MDE Enrollment status",
        empty_label="All",
        choices=[
            (status, status if status == codes or not codes else f"{status} ({codes})")
            for status, codes in ENROLLMENT_STATUSES
        ],
        method="filter_status",
    )
    tag = django_filters.CharFilter(
        method="filter_tag", label="Tag", widget=forms.TextInput(attrs={"size": 14})
    )

    tamper_protection = django_filters.ChoiceFilter(
        label="Tamper Protection",
        empty_label="All",
        choices=[("on", "On"), ("off", "Off")],
        method="filter_on",
    )
    mde_onboarded = django_filters.ChoiceFilter(
        label="Onboarded to MDE",
        empty_label="All",
        choices=[("on", "Yes"), ("off", "No")],
        method="filter_on",
    )

    class Meta:
        model = Device
        fields = [
            "q",
            "os",
            "managed_by",
            "label",
            "enrollment_status",
            "tag",
            "tamper_protection",
            "mde_onboarded",
        ]

    def search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(display_name__icontains=value) if value else queryset

    def filter_label(self, queryset, name, value):
        if value == NO_LABEL:
            return queryset.filter(system_labels="")
        return queryset.filter(system_labels__contains=f",{value},")

    def filter_on(self, queryset, name, value):
        """A sensor fact that is on or off (Tamper Protection, onboarded to MDE)."""
        return queryset.filter(**{name: value == "on"})

    def filter_status(self, queryset, name, value):
        return queryset.filter(enrollment_status=value)

    def filter_tag(self, queryset, name, value):
        value = value.strip()
        if not value or "," in value:
            return queryset.none() if value else queryset
        return queryset.filter(tags__icontains=f",{value},")


class GroupFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label="Search by name",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search by group name", "class": "searchbox"}
        ),
    )
    membership_type = django_filters.ChoiceFilter(
        choices=Group.Membership.choices, label="Membership type", empty_label="All"
    )
    object_kind = django_filters.ChoiceFilter(
        choices=Group.ObjectKind.choices, label="Members are", empty_label="All"
    )

    class Meta:
        model = Group
        fields = ["q", "membership_type", "object_kind"]

    def search(self, queryset, name, value):
        value = value.strip()
        return (
            queryset.filter(Q(name__icontains=value) | Q(description__icontains=value)) if value else queryset
        )
