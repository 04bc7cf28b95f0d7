"""Pieces the Graph endpoints of every app share: $filter property builders for computed properties, object
lookups by GUID, collections served from a list, and the OpenAPI fragments that describe all of them."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db.models import Q
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.response import Response

from .errors import GraphError
from .odata import apply_select, next_link, parse_query

NOTHING = Q(pk__in=[])
NEVER = "0001-01-01T00:00:00Z"  # what Graph returns for "never" (e.g. a device that has not synced yet)


# ------------------------------------------------------------------------------------------------ $filter


def _text_test(lookup: str, value: str) -> Callable[[str], bool] | None:
    v = value.lower()
    return {
        "exact": lambda label: label.lower() == v,
        "has": lambda label: label.lower() == v,
        "any": lambda label: label.lower() == v,
        "icontains": lambda label: v in label.lower(),
        "istartswith": lambda label: label.lower().startswith(v),
        "iendswith": lambda label: label.lower().endswith(v),
    }.get(lookup)


def label_field(
    column: str, labels: Mapping[str, str], prop: str, *, enum: Iterable[str] = ()
) -> Callable[[str, object], Q]:
    """A property whose Graph value is a label of a stored code (managementAgent 'msSense' for managed_by 'mde').

    eq/ne/startswith/endswith/contains compare the labels (case-insensitively); the matching codes become an
    indexed `column IN (...)`. For a Graph enum property give its members as `enum`: eq/ne with a value that is
    no member is a 400, as in Graph (a member no object here has, such as 'iOS', just matches nothing).
    """
    members = {m.lower(): m for m in enum}

    def build(lookup: str, value: object) -> Q:
        if value is None:
            return NOTHING
        if not isinstance(value, str):
            raise GraphError(400, f"Invalid $filter: {prop} is compared with a quoted text value.")
        if members and lookup == "exact" and value.lower() not in members:
            raise GraphError(
                400,
                f"Invalid $filter: '{value[:60]}' is not a member of the {prop} enum "
                f"({', '.join(sorted(members.values()))}).",
            )
        test = _text_test(lookup, value)
        if test is None:
            raise GraphError(
                400, f"Invalid $filter: {prop} supports eq, ne, startswith, endswith and contains."
            )
        return Q(**{f"{column}__in": [code for code, label in labels.items() if label and test(label)]})

    return build


def bool_field(when_true: Q, prop: str) -> Callable[[str, object], Q]:
    def build(lookup: str, value: object) -> Q:
        if lookup != "exact" or not isinstance(value, bool):
            raise GraphError(400, f"Invalid $filter: {prop} is compared with eq true or eq false.")
        return when_true if value else ~when_true

    return build


def constant_field(constant: object, prop: str) -> Callable[[str, object], Q]:
    """A property that has the same value on every object here (securityEnabled is always true)."""

    def build(lookup: str, value: object) -> Q:
        if lookup != "exact":
            raise GraphError(400, f"Invalid $filter: {prop} is compared with eq or ne.")
        return Q() if value == constant else NOTHING

    return build


def guid_field(column: str, prop: str) -> Callable[[str, object], Q]:
    def build(lookup: str, value: object) -> Q:
        if lookup not in ("exact", "any"):
            raise GraphError(400, f"Invalid $filter: {prop} is compared with eq or ne.")
        parsed = parse_guid(value)
        if parsed is None:
            raise GraphError(
                400, f"Invalid $filter: {prop} is compared with a GUID, e.g. '{uuid.UUID(int=0)}'."
            )
        return Q(**{column: parsed})

    return build


def parse_guid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) > 60:
        return None
    try:
        return uuid.UUID(value.strip().strip("{}"))
    except ValueError:
        return None


def get_by_guid(queryset, column: str, raw: str, what: str):
    """The object whose GUID column is `raw`, or Graph's 404 envelope."""
    parsed = parse_guid(raw)
    found = queryset.filter(**{column: parsed}).first() if parsed else None
    if found is None:
        raise GraphError(404, f"{what} with id '{str(raw)[:80]}' was not found.", "ResourceNotFound")
    return found


# ------------------------------------------------------------------------------------------------ lists


_LIST_LOOKUPS: dict[str, Callable[[Any, Any], bool]] = {
    "exact": lambda have, want: _fold(have) == _fold(want),
    "isnull": lambda have, want: (have is None) == bool(want),
    "icontains": lambda have, want: isinstance(have, str) and str(want).lower() in have.lower(),
    "istartswith": lambda have, want: isinstance(have, str) and have.lower().startswith(str(want).lower()),
    "iendswith": lambda have, want: isinstance(have, str) and have.lower().endswith(str(want).lower()),
}


def _fold(value: object) -> object:
    """Graph compares enum and id strings case-insensitively."""
    return value.lower() if isinstance(value, str) else value


def q_matches(q: Q, row: Mapping[str, Any]) -> bool:
    """Whether a row (a dict of the filter's columns) matches a Q that console.api.odata built: $filter on a
    collection served from a list (templates and setting definitions are generated, not stored)."""
    results = []
    for child in q.children:
        if isinstance(child, Q):
            results.append(q_matches(child, row))
            continue
        key, want = child
        column, _, lookup = key.partition("__")
        test = _LIST_LOOKUPS.get(lookup or "exact")
        if test is None:
            raise GraphError(
                400, "Invalid $filter: this collection supports eq, ne, startswith, endswith, contains."
            )
        results.append(test(row.get(column), want))
    matched = all(results) if q.connector == Q.AND else any(results)
    return not matched if q.negated else matched


def list_collection(
    request,
    items: Iterable[dict],
    *,
    selectable: set[str] | None = None,
    fields: Mapping[str, str] | None = None,
    row: Callable[[dict], Mapping[str, Any]] | None = None,
    expandable: set[str] = frozenset(),
    expand: Callable[[dict, set[str]], dict] | None = None,
) -> Response:
    """A collection served from a list: $top, $skip, $select, $count, and with `fields` (Graph property -> a
    column of `row(item)`) $filter; with `expand`, $expand of the `expandable` navigation properties."""
    query = parse_query(
        request.GET, fields=fields or {}, orderable={}, selectable=selectable, expandable=expandable
    )
    items = list(items)
    if fields and query.filter:
        items = [item for item in items if q_matches(query.filter, row(item) if row else item)]
    page = items[query.skip : query.skip + query.top]
    if expand is not None and query.expand:
        page = [expand(item, query.expand) for item in page]
    body: dict[str, Any] = {}
    if query.count:
        body["@odata.count"] = len(items)
    body["value"] = [apply_select(item, query.select) for item in page]
    link = next_link(request, query, len(page), len(items))
    if link:
        body["@odata.nextLink"] = link
    return Response(body)


def iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def require_eventual_consistency(request, what: str) -> None:
    """Entra's advanced queries ($count, $search) need `ConsistencyLevel: eventual`, as in Microsoft Graph."""
    if request.headers.get("ConsistencyLevel", "").lower() != "eventual":
        raise GraphError(
            400,
            f"{what} on directory objects needs the request header 'ConsistencyLevel: eventual' "
            "(an advanced query, as in Microsoft Graph).",
            "Request_UnsupportedQuery",
        )


# ------------------------------------------------------------------------------------------------ OpenAPI


class GraphAutoSchema(AutoSchema):
    """operationIds from the Graph path: get_beta_groups_item_members, post_v1_0_groups, …"""

    def get_operation_id(self) -> str:
        path = re.sub(r"\{[^}]+\}", "item", self.path).strip("/")
        words = [w for w in re.split(r"[/.$]+", path) if w]
        return "_".join([self.method.lower(), *words])


class GraphSchemaGenerator(SchemaGenerator):
    """DRF's path simplification drops a '$' (a regex anchor to it): put Graph's `$ref` and `$count` back. And
    say what the server enforces everywhere (issue 14 item 10): request text carries the characters the body
    parser refuses as a pattern, and request objects list every property they take (no additional ones)."""

    def get_schema(self, request=None, public=False):
        schema = super().get_schema(request, public)
        fixed = {}
        for path, item in schema["paths"].items():
            path = re.sub(
                r"/(groups|settingTemplates)/count$", r"/\1/$count", re.sub(r"/ref$", "/$ref", path)
            )
            fixed[path] = item
            for operation in item.values():
                if isinstance(operation, dict):
                    _tighten_operation(operation)
        schema["paths"] = fixed
        return schema


def _tighten_operation(operation: dict) -> None:
    for parameter in operation.get("parameters", []):
        parameter["schema"] = param_schema = copy.deepcopy(parameter.get("schema", {}))
        if param_schema.get("type") == "string" and not ({"enum", "pattern", "format"} & set(param_schema)):
            param_schema["pattern"] = QUERY_TEXT_PATTERN
    if operation.get("requestBody"):
        operation["requestBody"]["required"] = (
            True  # every body this API reads is required (a missing one is 400)
        )
    for media in (operation.get("requestBody") or {}).get("content", {}).values():
        if "schema" in media:
            media["schema"] = copy.deepcopy(media["schema"])  # its parts may be shared with response schemas
            _tighten_body(media["schema"])


def _tighten_body(schema: object) -> None:
    """Walk a request schema: text gets the storable-text pattern, objects with properties refuse others."""
    if isinstance(schema, list):
        for item in schema:
            _tighten_body(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not ({"enum", "pattern", "format"} & set(schema)):
        schema["pattern"] = SAFE_TEXT_PATTERN
    if schema.get("type") == "object" and schema.get("properties") and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for key in ("properties", "patternProperties"):
        for sub in (schema.get(key) or {}).values():
            _tighten_body(sub)
    for key in ("items", "additionalProperties", "oneOf", "anyOf", "allOf"):
        if key in schema:
            _tighten_body(schema[key])


def json_request(schema: dict) -> dict:
    """extend_schema(request=...) reads a bare dict as {media type: schema}: name the media type."""
    return {"application/json": schema}


class GraphTokenScheme(OpenApiAuthenticationExtension):
    target_class = "console.api.auth.GraphTokenAuthentication"
    name = "graphToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mdec_<prefix>_<secret> (Tenant administration › API tokens)",
        }


ODATA_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "innerError": {"type": "object"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}

_ERROR_TEXT = {
    400: "Bad request (the Graph error envelope says what is wrong)",
    401: "No, an invalid, revoked or expired token",
    403: "The token's role lacks the permission",
    404: "No such object",
    405: "Method not allowed",
    409: "Conflict",
    413: "Body larger than 1 MB",
    415: "Body is not JSON",
    429: "Throttled (tenant limits: 200 reads/s, 20 writes/s); see Retry-After",
}


def errors(*extra: int) -> dict[int, OpenApiResponse]:
    codes = sorted({400, 401, 403, 404, 405, 429, *extra})
    return {code: OpenApiResponse(ODATA_ERROR, description=_ERROR_TEXT.get(code, "Error")) for code in codes}


def write_errors(*extra: int) -> dict[int, OpenApiResponse]:
    return errors(413, 415, *extra)


def nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


STRING = {"type": "string"}
NSTRING = nullable(STRING)
BOOL = {"type": "boolean"}
INT = {"type": "integer"}
DATETIME = {"type": "string", "format": "date-time"}
NDATETIME = nullable(DATETIME)
STRINGS = {"type": "array", "items": STRING}
ODATA_TYPE = {"type": "string", "description": "#microsoft.graph.<type> of a polymorphic object"}


def obj(properties: dict, *, required: Iterable[str] = (), description: str = "") -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def collection_of(item: dict) -> dict:
    return obj(
        {
            "@odata.context": STRING,
            "@odata.count": INT,
            "@odata.nextLink": {"type": "string", "description": "Absolute URL of the next page"},
            "value": {"type": "array", "items": item},
        },
        required=["value"],
    )


def _query(name: str, schema: dict | type, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=description)


# Text the server stores (console.untrusted_json refuses NUL, C0/DEL controls but tab and line breaks, and lone
# surrogates in any body); names (console.text) also refuse C1 controls, line breaks and bidi overrides, and blanks.
_BODY_BAD = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_NAME_BAD = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
SAFE_TEXT_PATTERN = rf"^[^{_BODY_BAD}]*$"
NAME_PATTERN = rf"^[^{_NAME_BAD}]*[^\s{_NAME_BAD}][^{_NAME_BAD}]*$"
_TEXT_BAD = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\r\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
FREE_TEXT_PATTERN = rf"^(?:[^{_TEXT_BAD}]|\r\n)*$"
QUERY_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def name_text(max_length: int, description: str = "") -> dict:
    """A name: 1 to max_length characters, not blank, no control or bidi-override characters (console.text)."""
    schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NAME_PATTERN}
    return {**schema, "description": description} if description else schema


def free_text(max_length: int) -> dict:
    """A description: line breaks and tabs allowed, no other control or bidi-override characters."""
    return {"type": "string", "maxLength": max_length, "pattern": FREE_TEXT_PATTERN}


def _one_of(names: Iterable[str]) -> str:
    return "(?:" + "|".join(re.escape(n) for n in sorted(set(names), key=lambda n: (-len(n), n))) + ")"


def select_param(props: Iterable[str]) -> OpenApiParameter:
    alt = _one_of(props)
    return _query(
        "$select",
        {"type": "string", "pattern": rf"^{alt}(?:,{alt})*$"},
        "Comma-separated properties to return: " + ", ".join(sorted(props)),
    )


TOP = _query(
    "$top", {"type": "integer", "minimum": 0, "maximum": 999}, "Page size (default 100, at most 999)"
)
SKIP = _query("$skip", {"type": "integer", "minimum": 0, "maximum": 10**9}, "Objects to skip")
SKIPTOKEN = _query(
    "$skiptoken", {"type": "integer", "minimum": 0, "maximum": 10**9}, "Paging token of @odata.nextLink"
)
COUNT = _query("$count", {"type": "string", "enum": ["true", "false"]}, "Add @odata.count")
SELECT = _query(
    "$select",
    {"type": "string", "pattern": r"^[A-Za-z]+(?:,[A-Za-z]+)*$"},
    "Comma-separated properties to return",
)


def text_filter_pattern(text_props: Iterable[str]) -> str:
    """A regular subset of the $filter grammar that is valid for every value: comparisons of text properties
    with quoted text, joined by and/or. OpenAPI can't express the whole grammar; the description gives it."""
    clause = (
        rf"(?:{_one_of(text_props)} (?:eq|ne) '[^'\x00-\x1f\x7f]*'|"
        rf"(?:startswith|endswith|contains)\({_one_of(text_props)},'[^'\x00-\x1f\x7f]*'\))"
    )
    return rf"^{clause}(?: (?:and|or) {clause})*$"


def _text_props(fields: Mapping[str, object] | Iterable[str]) -> list[str]:
    """Properties stored as plain text columns (not dates, ids or computed ones): safe for the filter pattern."""
    if not isinstance(fields, Mapping):
        return []
    return [
        p for p, spec in fields.items() if isinstance(spec, str) and p != "id" and not p.endswith("DateTime")
    ]


def filter_param(props: Mapping[str, object] | Iterable[str]) -> OpenApiParameter:
    schema: dict[str, Any] = {"type": "string", "pattern": QUERY_TEXT_PATTERN}
    text = _text_props(props)
    if text:
        schema["pattern"] = text_filter_pattern(text)
    return _query(
        "$filter",
        schema,
        "OData filter: eq, ne, gt, ge, lt, le, has, and, or, not, startswith(), endswith(), contains(), "
        "any(); properties: " + ", ".join(props) + ". The pattern describes the subset any value passes "
        "(text properties compared with quoted text); the rest of the grammar works too, and an enum value that "
        "is no member of its enum is a 400, as in Graph.",
    )


def orderby_param(props: Iterable[str]) -> OpenApiParameter:
    alt = _one_of(props)
    clause = rf"{alt}(?: (?:asc|desc))?"
    return _query(
        "$orderby",
        {"type": "string", "pattern": rf"^{clause}(?:,{clause})*$"},
        "Comma-separated `property [asc|desc]`; properties: " + ", ".join(props),
    )


def expand_param(props: Iterable[str]) -> OpenApiParameter:
    alt = _one_of(props)
    return _query(
        "$expand",
        {"type": "string", "pattern": rf"^{alt}(?:,{alt})*$"},
        "Navigation properties to include: " + ", ".join(props),
    )


def search_param(props: Iterable[str]) -> OpenApiParameter:
    clause = rf'"{_one_of(props)}:[^"\x00-\x1f\x7f]*"'
    return _query(
        "$search",
        {"type": "string", "pattern": rf"^{clause}(?: (?:AND|OR) {clause})*$"},
        'Entra search, e.g. "displayName:web" (needs ConsistencyLevel: eventual)',
    )


SEARCH = search_param(["displayName"])
CONSISTENCY = OpenApiParameter(
    "ConsistencyLevel",
    {"type": "string", "enum": ["eventual"]},
    OpenApiParameter.HEADER,
    required=True,
    description="Entra's advanced queries ($count) need it, as in Microsoft Graph",
)
ADVANCED_QUERIES = (
    " Entra advanced queries work as in Graph with the header `ConsistencyLevel: eventual`: `$count=true` and "
    '`$search="displayName:text"` (clauses joined by AND or OR); without the header they are 400.'
)


def list_params(
    fields: Mapping[str, object],
    orderable: Iterable[str],
    expandable: Iterable[str] = (),
    selectable: Iterable[str] | None = None,
    *,
    directory: bool = False,
) -> list:
    """The OData query parameters of a list. On directory objects (`directory`) $count and $search are Entra
    advanced queries that need the ConsistencyLevel header: they work, and are described in the operation's text
    rather than declared, because OpenAPI can't make a header depend on a query option."""
    select = select_param(selectable) if selectable is not None else SELECT
    params = [filter_param(fields), select, TOP, SKIP, SKIPTOKEN, orderby_param(orderable)]
    if not directory:
        params.append(COUNT)
    if expandable:
        params.append(expand_param(expandable))
    return params
