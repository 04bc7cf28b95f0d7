from __future__ import annotations

import django_filters
from django import forms

from .models import AuditEvent


class AuditEventFilterSet(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="icontains", label="Actor")
    action = django_filters.CharFilter(lookup_expr="icontains", label="Action")
    object_type = django_filters.ChoiceFilter(label="Object type", choices=())
    source = django_filters.ChoiceFilter(choices=AuditEvent.Source.choices, label="Source")
    start = django_filters.DateFilter(
        field_name="at", lookup_expr="date__gte", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    end = django_filters.DateFilter(
        field_name="at", lookup_expr="date__lte", label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "object_type", "source", "start", "end"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        types = AuditEvent.objects.order_by("object_type").values_list("object_type", flat=True).distinct()
        self.filters["object_type"].extra["choices"] = [(t, t) for t in types if t]
