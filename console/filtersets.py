from __future__ import annotations

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from .models import AuditEvent, WebhookDelivery
from .rbac import roles


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


class UserFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.ChoiceFilter(
        field_name="is_active",
        choices=[("true", "Enabled"), ("false", "Disabled")],
        method="by_status",
        label="Account",
    )
    role = django_filters.ChoiceFilter(method="by_role", label="Role", choices=())

    class Meta:
        model = get_user_model()
        fields = ["q", "status", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["role"].extra["choices"] = [(n, n) for n in roles().values_list("name", flat=True)]

    def search(self, queryset, name, value):
        return queryset.filter(
            Q(username__icontains=value)
            | Q(email__icontains=value)
            | Q(first_name__icontains=value)
            | Q(last_name__icontains=value)
        )

    def by_status(self, queryset, name, value):
        return queryset.filter(is_active=value == "true")

    def by_role(self, queryset, name, value):
        return queryset.filter(
            Q(groups__name=value)
            | Q(role_assignments__role__name=value)
            | Q(admin_groups__role_assignments__role__name=value)
        ).distinct()


class WebhookDeliveryFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WebhookDelivery.Status.choices, label="Status")
    event_type = django_filters.CharFilter(lookup_expr="icontains", label="Event")

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type"]
