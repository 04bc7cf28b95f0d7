from __future__ import annotations

import pytest
from django.db.models import Q
from django.http import QueryDict
from django.test import RequestFactory

from console.api.errors import GraphError
from console.api.odata import next_link, parse_filter, parse_query

FIELDS = {
    "displayName": "display_name",
    "managementAgent": lambda lookup, value: Q(managed_by="mde") if value == "msSense" else Q(pk__in=[]),
    "operatingSystem": "os",
    "groupTypes": lambda lookup, value: Q(membership_type="dynamic" if value == "DynamicMembership" else "x"),
    "lastSyncDateTime": "last_checkin_at",
}


def test_eq_and_ne_build_exact_lookups():
    assert parse_filter("displayName eq 'PC-1'", FIELDS) == Q(display_name__exact="PC-1")
    assert parse_filter("displayName ne 'PC-1'", FIELDS) == ~Q(display_name__exact="PC-1")


def test_and_binds_tighter_than_or():
    q = parse_filter("displayName eq 'a' or displayName eq 'b' and operatingSystem eq 'Windows'", FIELDS)
    assert q == Q(display_name__exact="a") | (Q(display_name__exact="b") & Q(os__exact="Windows"))


def test_parentheses_and_not():
    q = parse_filter("not (displayName eq 'a' or displayName eq 'b')", FIELDS)
    assert q == ~(Q(display_name__exact="a") | Q(display_name__exact="b"))


def test_functions_startswith_and_contains():
    assert parse_filter("startswith(displayName,'SRV')", FIELDS) == Q(display_name__istartswith="SRV")
    assert parse_filter("contains(displayName, 'SQL')", FIELDS) == Q(display_name__icontains="SQL")


def test_quotes_are_escaped_by_doubling():
    assert parse_filter("displayName eq 'O''Brien'", FIELDS) == Q(display_name__exact="O'Brien")


def test_computed_properties_use_their_callable():
    assert parse_filter("managementAgent eq 'msSense'", FIELDS) == Q(managed_by="mde")


def test_any_lambda_on_a_collection():
    q = parse_filter("groupTypes/any(c:c eq 'DynamicMembership')", FIELDS)
    assert q == Q(membership_type="dynamic")


def test_null_compares_with_isnull():
    assert parse_filter("lastSyncDateTime eq null", FIELDS) == Q(last_checkin_at__isnull=True)


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("displayName eq", 14, "expected a value"),
        ("nope eq 'x'", 0, "cannot be filtered"),
        ("displayName like 'x'", 12, "expected an operator"),
        ("(displayName eq 'x'", 19, "expected ')'"),
        ("displayName eq 'x' xor 1", 19, "expected 'and', 'or'"),
        ("displayName eq 'x' and", 22, "property name"),
        ("displayName eq #", 15, "unexpected"),
    ],
)
def test_bad_filters_name_the_position_and_the_problem(text, position, problem):
    with pytest.raises(GraphError) as caught:
        parse_filter(text, FIELDS)
    assert caught.value.status_code == 400
    assert f"position {position}" in str(caught.value.detail)
    assert problem in str(caught.value.detail)


def test_query_options_are_validated():
    params = QueryDict("$top=5&$skip=10&$orderby=displayName desc&$count=true&$select=id,displayName")
    q = parse_query(params, fields=FIELDS, orderable={"displayName": "display_name"})
    assert (q.top, q.skip, q.count, q.orderby, q.select) == (
        5,
        10,
        True,
        ["-display_name"],
        ["id", "displayName"],
    )


@pytest.mark.parametrize(
    "raw",
    ["$top=abc", "$top=5000", "$orderby=nope", "$orderby=displayName sideways", "$count=maybe", "$unknown=1",
     "$expand=secrets"],
)  # fmt: skip
def test_bad_query_options_are_400(raw):
    with pytest.raises(GraphError):
        parse_query(QueryDict(raw), fields=FIELDS, orderable={"displayName": "display_name"})


def test_next_link_is_absolute_and_advances_the_skip_token():
    request = RequestFactory().get(
        "/beta/deviceManagement/managedDevices", {"$top": "2", "$filter": "x eq 'y'"}
    )
    q = parse_query(QueryDict("$top=2"), fields=FIELDS, orderable={})
    link = next_link(request, q, returned=2)
    assert link.startswith("http://testserver/beta/deviceManagement/managedDevices?")
    assert "%24skiptoken=2" in link and "%24filter=x+eq+%27y%27" in link
    assert next_link(request, q, returned=1) is None
