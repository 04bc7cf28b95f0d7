from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q

from policies.catalog import get_catalog
from policies.models import Policy, PolicyPlatform


class PolicyFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search by name", "class": "searchbox"}
        ),
    )
    platform = django_filters.ChoiceFilter(
        choices=PolicyPlatform.choices, label="Platform", empty_label="All"
    )
    profile = django_filters.ChoiceFilter(choices=(), label="Profile", empty_label="All")

    class Meta:
        model = Policy
        fields = ["q", "platform", "profile"]

    def __init__(self, *args, policy_type: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        profiles = [p.name for p in get_catalog().profiles.values() if policy_type in (None, p.policy_type)]
        self.filters["profile"].extra["choices"] = [(name, name) for name in profiles]

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))
