"""Graph beta `deviceManagement/assignmentFilters` (deviceAndAppManagementAssignmentFilter): list, get, create,
PATCH and delete Intune assignment filters. Every write goes through policies.assignment_filters (the same checks,
audit and refusal to delete a filter in use as Tenant administration › Filters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from console.api.common import (
    DATETIME,
    FREE_TEXT_PATTERN,
    NAME_PATTERN,
    SELECT,
    STRING,
    GraphAutoSchema,
    collection_of,
    errors,
    get_by_guid,
    guid_field,
    iso,
    json_request,
    label_field,
    list_params,
    obj,
    write_errors,
)
from console.api.errors import GraphError
from console.api.odata import apply_select, parse_query
from console.api.views import GraphView
from devices.rules import MAX_FILTER_RULE_LENGTH
from policies import assignment_filters, services
from policies.models import AssignmentFilter

PERMS = {
    "GET": "policies.view_assignmentfilter",
    "POST": "policies.add_assignmentfilter",
    "PATCH": "policies.change_assignmentfilter",
    "DELETE": "policies.delete_assignmentfilter",
}
# Graph's devicePlatformType for each platform of the console (Intune filters exist for Windows and macOS only).
GRAPH_FILTER_PLATFORM = {"windows": "windows10AndLater", "macos": "macOS"}
PLATFORM_OF_GRAPH = {v.lower(): k for k, v in GRAPH_FILTER_PLATFORM.items()}
DEFAULT_SCOPE_TAG = "0"  # the built-in Default scope tag (console.api.people)

FILTER = obj(
    {
        "@odata.type": STRING,
        "id": {"type": "string", "format": "uuid"},
        "displayName": STRING,
        "description": STRING,
        "platform": {"type": "string", "enum": [*GRAPH_FILTER_PLATFORM.values(), "unknown"]},
        "rule": STRING,
        "roleScopeTags": {"type": "array", "items": STRING},
        "assignmentFilterManagementType": {"type": "string", "enum": ["devices"]},
        "createdDateTime": DATETIME,
        "lastModifiedDateTime": DATETIME,
    },
    description="deviceAndAppManagementAssignmentFilter ($select returns only the properties named)",
)
_WRITABLE = {
    "@odata.type": {"type": "string", "enum": ["#microsoft.graph.deviceAndAppManagementAssignmentFilter"]},
    "displayName": {
        "type": "string",
        "pattern": NAME_PATTERN,
        "minLength": 1,
        "maxLength": services.NAME_MAX,
    },
    "description": {"type": "string", "pattern": FREE_TEXT_PATTERN, "maxLength": services.DESCRIPTION_MAX},
    "platform": {"type": "string", "enum": list(GRAPH_FILTER_PLATFORM.values())},
    "rule": {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_RULE_LENGTH},
    "roleScopeTags": {"type": "array", "items": {"type": "string", "enum": [DEFAULT_SCOPE_TAG]}},
    "assignmentFilterManagementType": {"type": "string", "enum": ["devices"]},
}
FILTER_IN = obj(
    _WRITABLE,
    required=["displayName", "platform", "rule"],
    description="rule: Intune's filter syntax over device.deviceName, device.osVersion, device.deviceTrustType "
    "and device.operatingSystemSKU",
)
FILTER_PATCH = obj(_WRITABLE, description="Only the properties sent change")
FIELDS = {
    "id": guid_field("filter_id", "id"),
    "displayName": "name",
    "platform": label_field(
        "platform", GRAPH_FILTER_PLATFORM, "platform", enum=GRAPH_FILTER_PLATFORM.values()
    ),
}
ORDERABLE = {"displayName": "name", "createdDateTime": "created_at", "lastModifiedDateTime": "updated_at"}
SELECTABLE = set(FILTER["properties"])


def filter_json(f: AssignmentFilter, expand=frozenset()) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter",
        "id": str(f.filter_id),
        "displayName": f.name,
        "description": f.description,
        "platform": GRAPH_FILTER_PLATFORM.get(f.platform, "unknown"),
        "rule": f.rule,
        "roleScopeTags": [DEFAULT_SCOPE_TAG],
        "assignmentFilterManagementType": "devices",
        "createdDateTime": iso(f.created_at),
        "lastModifiedDateTime": iso(f.updated_at),
    }


def _values(body: Mapping[str, Any], current: AssignmentFilter | None) -> dict[str, Any]:
    """The service's arguments from a Graph body (PATCH: what isn't sent stays)."""
    unknown = sorted(set(body) - set(_WRITABLE) - {"id", "createdDateTime", "lastModifiedDateTime"})
    if unknown:
        raise GraphError(
            400, f"Property '{unknown[0]}' doesn't exist on deviceAndAppManagementAssignmentFilter."
        )
    values = {
        "name": current.name if current else None,
        "description": current.description if current else "",
        "platform": current.platform if current else None,
        "rule": current.rule if current else None,
    }
    for prop, key in (("displayName", "name"), ("description", "description"), ("rule", "rule")):
        if prop in body:
            if not isinstance(body[prop], str):
                raise GraphError(400, f"{prop} must be a string.")
            values[key] = body[prop]
    if "platform" in body:
        platform = PLATFORM_OF_GRAPH.get(str(body["platform"]).lower())
        if platform is None:
            raise GraphError(
                400, f"platform must be one of {', '.join(GRAPH_FILTER_PLATFORM.values())} in this console."
            )
        values["platform"] = platform
    tags = body.get("roleScopeTags", [DEFAULT_SCOPE_TAG])
    if not isinstance(tags, list) or any(t != DEFAULT_SCOPE_TAG for t in tags):
        raise GraphError(400, "roleScopeTags: only the Default scope tag ('0') exists in this tenant.")
    return values


def _save(instance: AssignmentFilter | None, values: dict[str, Any]) -> AssignmentFilter:
    try:
        return assignment_filters.save(instance, **values)
    except services.PolicyError as exc:
        taken = any(p.field == "name" and "already exists" in p.message for p in exc.problems)
        raise GraphError(409 if taken else 400, str(exc), "Conflict" if taken else None) from None


class FilterView(GraphView):
    api_version = "beta"
    schema = GraphAutoSchema()


class FilterList(FilterView):
    required_perms = PERMS

    @extend_schema(
        summary="Assignment filters (Tenant administration › Filters)",
        parameters=list_params(FIELDS, ORDERABLE, selectable=SELECTABLE),
        responses={200: OpenApiResponse(collection_of(FILTER)), **errors()},
        tags=["assignmentFilters"],
    )
    def get(self, request):
        return self.collection(
            request,
            AssignmentFilter.objects.all(),
            filter_json,
            fields=FIELDS,
            orderable=ORDERABLE,
            default_order=("name",),
            selectable=SELECTABLE,
            context="/beta/$metadata#deviceManagement/assignmentFilters",
        )

    @extend_schema(
        summary="Create an assignment filter (201); a rule that doesn't parse is 400 with the column",
        request=json_request(FILTER_IN),
        responses={201: OpenApiResponse(FILTER), **write_errors(409)},
        tags=["assignmentFilters"],
    )
    def post(self, request):
        body = self.json_body(request)
        missing = [p for p in ("displayName", "platform", "rule") if p not in body]
        if missing:
            raise GraphError(400, f"{missing[0]} is required.")
        created = _save(None, _values(body, None))
        data = filter_json(created)
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{data['id']}")
        return Response(data, status=201, headers={"Location": location})


class FilterDetail(FilterView):
    required_perms = PERMS

    def _get(self, filter_id: str) -> AssignmentFilter:
        return get_by_guid(AssignmentFilter.objects.all(), "filter_id", filter_id, "assignmentFilter")

    @extend_schema(
        summary="One assignment filter",
        parameters=[SELECT],
        responses={200: OpenApiResponse(FILTER), **errors()},
        tags=["assignmentFilters"],
    )
    def get(self, request, filter_id: str):
        query = parse_query(request.GET, fields={}, orderable={}, selectable=SELECTABLE)
        return Response(apply_select(filter_json(self._get(filter_id)), query.select))

    @extend_schema(
        summary="Update an assignment filter: the devices of the policies using it are re-evaluated",
        request=json_request(FILTER_PATCH),
        responses={200: OpenApiResponse(FILTER), **write_errors(409)},
        tags=["assignmentFilters"],
    )
    def patch(self, request, filter_id: str):
        current = self._get(filter_id)
        return Response(filter_json(_save(current, _values(self.json_body(request), current))))

    @extend_schema(
        summary="Delete an assignment filter no policy uses (a filter in use is 409, naming the policies)",
        responses={204: OpenApiResponse(description="Deleted"), **errors(409)},
        tags=["assignmentFilters"],
    )
    def delete(self, request, filter_id: str):
        try:
            assignment_filters.delete(self._get(filter_id))
        except services.PolicyError as exc:
            raise GraphError(409, str(exc), "Conflict") from None
        return Response(status=204)
