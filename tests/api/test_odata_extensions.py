"""What the Graph endpoints added to the lead's OData parser: `has` for flags enums, bounded nesting, and the
$filter property builders for computed properties (console.api.common)."""

from __future__ import annotations

import pytest
from django.db.models import Q

from console.api.common import bool_field, constant_field, guid_field, label_field
from console.api.errors import GraphError
from console.api.odata import parse_filter

FIELDS = {
    "technologies": "technologies",
    "managementAgent": label_field(
        "managed_by", {"mde": "msSense", "intune": "mdm", "none": "unknown"}, "managementAgent"
    ),
    "isAssigned": bool_field(Q(is_assigned=True), "isAssigned"),
    "securityEnabled": constant_field(True, "securityEnabled"),
    "id": guid_field("device_id", "id"),
}


def test_has_matches_a_flag_of_a_flags_enum():
    assert parse_filter("technologies has 'microsoftSense'", FIELDS) == Q(
        technologies__icontains="microsoftSense"
    )


def test_label_properties_compare_labels_case_insensitively():
    assert parse_filter("managementAgent eq 'MSSENSE'", FIELDS) == Q(managed_by__in=["mde"])
    assert parse_filter("startswith(managementAgent,'m')", FIELDS) == Q(managed_by__in=["mde", "intune"])
    assert parse_filter("managementAgent ne 'msSense'", FIELDS) == ~Q(managed_by__in=["mde"])


def test_boolean_and_constant_properties():
    assert parse_filter("isAssigned eq false", FIELDS) == ~Q(is_assigned=True)
    assert parse_filter("securityEnabled eq true", FIELDS) == Q()
    assert parse_filter("securityEnabled eq false", FIELDS) == Q(pk__in=[])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("(" * 40 + "technologies eq 'x'" + ")" * 40, "nested more than"),
        ("not " * 40 + "technologies eq 'x'", "nested more than"),
        ("managementAgent gt 'a'", "supports eq"),
        ("managementAgent eq 3", "quoted text"),
        ("isAssigned eq 'yes'", "eq true or eq false"),
        ("id eq 'WS-0001'", "GUID"),
        ("technologies has 3", "quoted flag"),
    ],
)
def test_hostile_or_mistyped_filters_are_400(text, problem):
    with pytest.raises(GraphError) as caught:
        parse_filter(text, FIELDS)
    assert caught.value.status_code == 400
    assert problem in str(caught.value.detail)
