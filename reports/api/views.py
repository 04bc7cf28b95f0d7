"""Graph beta `deviceManagement/reports/*`: the report actions of reports.graph_reports, answered in the
{TotalRowCount, Schema, Values} table format, and the cached reports of reports.cached
(`cachedReportConfigurations`, `getCachedReport`).
"""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from console.api.common import (
    INT,
    ODATA_ERROR,
    SAFE_TEXT_PATTERN,
    STRING,
    GraphAutoSchema,
    errors,
    json_request,
    obj,
    text_filter_pattern,
)
from console.api.views import GraphView
from devices.scope import scope_group_ids
from reports import cached
from reports.graph_reports import (
    EXTENSION_DESCRIPTION,
    EXTENSION_REPORTS,
    MAX_TOP,
    REPORTS,
    Report,
    run_report,
)

CACHED_NAMES = cached.NAMES

# ------------------------------------------------------------------------------------------------ views

REPORT_IN = obj(
    {
        "name": STRING,
        "select": {"type": "array", "items": STRING},
        "filter": STRING,
        "search": STRING,
        "groupBy": {"type": "array", "items": STRING, "maxItems": 0},
        "orderBy": {"type": "array", "items": STRING},
        "skip": {"type": "integer", "minimum": 0, "maximum": 10**9},
        "top": {"type": "integer", "minimum": 0, "maximum": MAX_TOP},
        "sessionId": STRING,
    }
)
REPORT_OUT = obj(
    {
        "TotalRowCount": INT,
        "Schema": {
            "type": "array",
            "items": obj({"Column": STRING, "PropertyType": STRING}, required=["Column", "PropertyType"]),
        },
        "Values": {"type": "array", "items": {"type": "array", "items": {}}},
        "SessionId": STRING,
    },
    required=["TotalRowCount", "Schema", "Values"],
)


BLANK = r"[^\S\x0b\x0c\x1c-\x1f]"  # whitespace (str.isspace) a JSON body may hold: not the C0 controls


def report_in(report: Report) -> dict[str, Any]:
    """The request body of one report action: its own columns for select and orderBy, and a filter pattern of
    its text columns (a subset of the filter grammar any value passes; the description gives the rest)."""
    columns = [c.name for c in report.columns]
    sortable = [c.name for c in report.columns if c.order]
    text = {c.name: "text" for c in report.columns if isinstance(c.filter, str) and c.type == "String"}
    schema = copy.deepcopy(REPORT_IN)
    properties = schema["properties"]
    properties["select"] = {
        "type": "array",
        "items": {"type": "string", "enum": columns},
    }  # a column named twice is shown once: accepted
    if sortable:
        alt = "(?:" + "|".join(sortable) + ")"
        properties["orderBy"] = {
            "type": "array",
            "items": {"type": "string", "pattern": rf"^{alt}(?: (?:asc|desc))?$"},
        }
    else:
        properties["orderBy"] = {"type": "array", "maxItems": 0}
    # An empty or blank filter is no filter (Graph's clients send "filter": ""), and blanks around it are
    # ignored: what the server takes (JSON control characters aside, which every body refuses).
    if text:
        clauses = text_filter_pattern(text).removeprefix("^").removesuffix("$")
        properties["filter"] = {"type": "string", "pattern": rf"^{BLANK}*(?:{clauses}{BLANK}*)?$"}
    else:
        properties["filter"] = {"type": "string", "pattern": rf"^{BLANK}*$"}
    properties["search"] = {"type": "string", "maxLength": 100, "pattern": SAFE_TEXT_PATTERN}
    properties["name"] = {"type": "string", "maxLength": 100, "pattern": SAFE_TEXT_PATTERN}
    properties["sessionId"] = {"type": "string", "maxLength": 100, "pattern": SAFE_TEXT_PATTERN}
    for key in ("select", "orderBy", "filter", "search", "name", "sessionId", "skip", "top", "groupBy"):
        properties[key] = {**properties[key], "nullable": True}  # null is the default, as Graph takes it
    schema["description"] = (
        "Filter: eq/ne/startswith/contains on the columns, and/or (GUID columns take quoted GUIDs, status columns "
        "numbers or labels); the pattern is the subset any value passes."
    )
    return schema


class JsonAlways(BaseContentNegotiation):
    """The SDK asks for `application/octet-stream, application/json` and reads the bytes as JSON: always JSON."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type and request.content_type.split(";")[0].strip() == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _view(report: Report) -> type[GraphView]:
    class ReportView(GraphView):
        required_perms = {"POST": "reports.view_devicepolicystatus"}
        content_negotiation_class = JsonAlways
        schema = GraphAutoSchema()

        @extend_schema(
            summary=report.summary,
            description=(EXTENSION_DESCRIPTION + " " if report.name in EXTENSION_REPORTS else "")
            + "Columns: "
            + ", ".join(f"{c.name} ({c.type})" for c in report.columns),
            request=json_request(report_in(report)),
            responses={200: OpenApiResponse(REPORT_OUT), **errors(413, 415)},
            tags=["reports"],
            extensions={"x-console-extension": True} if report.name in EXTENSION_REPORTS else None,
        )
        def post(self, request):
            return Response(run_report(report, self.json_body(request), scope_group_ids(request.user)))

    ReportView.__name__ = ReportView.__qualname__ = report.name[0].upper() + report.name[1:]
    return ReportView


VIEWS = {name: _view(report) for name, report in REPORTS.items()}


# ------------------------------------------------------------------------------------------------ cached reports

CACHED_CONFIGURATION = obj(
    {
        "id": STRING,
        "reportName": STRING,
        "filter": STRING,
        "select": {"type": "array", "items": STRING},
        "orderBy": {"type": "array", "items": STRING},
        "metadata": STRING,
        "status": {"type": "string", "enum": ["unknown", "notStarted", "inProgress", "completed", "failed"]},
        "lastRefreshDateTime": {"type": "string", "format": "date-time", "nullable": True},
        "expirationDateTime": {"type": "string", "format": "date-time"},
    },
    required=["id", "reportName", "status"],
    description="deviceManagementCachedReportConfiguration",
)


def _cached_in(report: Report) -> dict[str, Any]:
    properties = report_in(report)["properties"]
    name = report.name[3:]
    return obj(
        {
            "id": {"type": "string", "pattern": rf"^{name}_[0-9a-fA-F-]{{1,36}}$"},
            "reportName": {"type": "string", "enum": [name]},
            "filter": properties["filter"],
            "select": properties["select"],
            "orderBy": properties["orderBy"],
            "metadata": {"type": "string", "maxLength": 100, "pattern": SAFE_TEXT_PATTERN},
        },
        required=["id"],
        description=f"A cached {name}",
    )


CACHED_IN = {
    "oneOf": [_cached_in(report) for report in REPORTS.values()],
    "description": (
        "Graph's documentation names no report list: this console caches its own report actions, named as the "
        f"action without 'get' ({CACHED_NAMES}). reportName may be left out when the id starts with "
        "'<reportName>_'. The filter, select and orderBy are checked at once (400); the snapshot is computed in the "
        "background (status inProgress, then completed or failed) and kept an hour after it completes."
    ),
}
_ALL_COLUMNS = sorted({c.name for report in REPORTS.values() for c in report.columns})
_COLUMN = {"type": "string", "enum": _ALL_COLUMNS}
_ORDER = rf"^(?:{'|'.join(_ALL_COLUMNS)})(?: (?:asc|desc))?$"
CACHED_REPORT_IN = obj(
    {
        "id": {"type": "string", "pattern": r"^[A-Za-z]+_[0-9a-fA-F-]{1,36}$"},
        "select": {"type": "array", "items": _COLUMN, "nullable": True},
        "groupBy": {"type": "array", "items": _COLUMN, "nullable": True},
        "orderBy": {"type": "array", "items": {"type": "string", "pattern": _ORDER}, "nullable": True},
        "search": {"type": "string", "maxLength": 100, "pattern": SAFE_TEXT_PATTERN, "nullable": True},
        "skip": {"type": "integer", "minimum": 0, "maximum": 10**9, "nullable": True},
        "top": {"type": "integer", "minimum": 0, "maximum": MAX_TOP, "nullable": True},
    },
    required=["id"],
    description="Reads the snapshot, never the live rows. select, groupBy and orderBy name columns of the cached "
    "report (of its configuration's select when it has one; another column is a 400); search looks in the "
    "columns the report action searches (device, policy or setting names); groupBy gives one row per distinct "
    "combination of its columns, and select may then name only those (a choice of this console: Graph's "
    "documentation is silent).",
)


class CachedReportConfigurations(GraphView):
    required_perms = {"POST": "reports.view_devicepolicystatus"}
    schema = GraphAutoSchema()

    @extend_schema(
        summary="Cache a report (201, status inProgress); its snapshot is computed in the background",
        description="Read the configuration until its status is completed, then getCachedReport. Creating an "
        "existing id again computes a new snapshot.",
        request=json_request(CACHED_IN),
        responses={201: OpenApiResponse(CACHED_CONFIGURATION), **errors(413, 415)},
        tags=["reports"],
    )
    def post(self, request):
        row = cached.create_configuration(self.json_body(request), scope_group_ids(request.user))
        return Response(cached.configuration_json(row), status=201)


class CachedReportConfigurationDetail(GraphView):
    required_perms = {"GET": "reports.view_devicepolicystatus", "DELETE": "reports.view_devicepolicystatus"}
    schema = GraphAutoSchema()

    @extend_schema(
        summary="One cached report configuration (status inProgress, completed or failed); 404 once expired",
        responses={200: OpenApiResponse(CACHED_CONFIGURATION), **errors()},
        tags=["reports"],
    )
    def get(self, request, config_id: str):
        row = cached.get_configuration(config_id, scope_group_ids(request.user))
        return Response(cached.configuration_json(row))

    @extend_schema(
        summary="Delete a cached report configuration and its snapshot (204)",
        responses={204: OpenApiResponse(description="Deleted"), **errors()},
        tags=["reports"],
    )
    def delete(self, request, config_id: str):
        cached.delete_configuration(config_id, scope_group_ids(request.user))
        return Response(status=204)


class GetCachedReport(GraphView):
    required_perms = {"POST": "reports.view_devicepolicystatus"}
    content_negotiation_class = JsonAlways
    schema = GraphAutoSchema()

    @extend_schema(
        summary="Read a cached report's snapshot: select, search, groupBy, orderBy, skip and top",
        request=json_request(CACHED_REPORT_IN),
        responses={
            200: OpenApiResponse(REPORT_OUT),
            **errors(413, 415),
            409: OpenApiResponse(
                ODATA_ERROR, description="The snapshot isn't ready (status inProgress) or failed (the reason)"
            ),
        },
        tags=["reports"],
    )
    def post(self, request):
        return Response(cached.read(self.json_body(request), scope_group_ids(request.user)))
