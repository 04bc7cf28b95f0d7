"""Graph beta `deviceManagement/reports/*`: Intune's report actions, answered in the {TotalRowCount, Schema, Values}
table format (graph-api-shapes.md §4) from the status rows and aggregates that check-ins keep (reports.models).

Numeric status codes follow Graph's deviceComplianceStatus-style numbering, kept stable here: 2 Succeeded,
1 Not applicable, 5 Error, 6 Conflict, 0 Pending. The `_loc` column carries the readable label.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.core.exceptions import FieldError, ValidationError
from django.db import DataError
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from console.api.common import (
    INT,
    SAFE_TEXT_PATTERN,
    STRING,
    GraphAutoSchema,
    errors,
    guid_field,
    json_request,
    obj,
    text_filter_pattern,
)
from console.api.errors import GraphError
from console.api.odata import Field, parse_filter
from console.api.views import GraphView
from policies.catalog import get_catalog
from reports.models import (
    DeviceEffectiveSetting,
    DevicePolicyStatus,
    DeviceSettingStatus,
    Intent,
    PolicySettingStatusCount,
    PolicyStatusCount,
    Status,
)

STATUS_CODE = {
    Status.SUCCEEDED: 2,
    Status.NOT_APPLICABLE: 1,
    Status.ERROR: 5,
    Status.CONFLICT: 6,
    Status.PENDING: 0,
}
STATUS_OF_CODE = {code: status for status, code in STATUS_CODE.items()}
POLICY_BASE_TYPE = "DeviceManagementConfigurationPolicy"
MAX_TOP = 1000
DEFAULT_TOP = 50
REQUEST_KEYS = {"name", "select", "filter", "search", "groupBy", "orderBy", "skip", "top", "sessionId"}


def _status_filter(column: str, prop: str) -> Callable[[str, object], Q]:
    """PolicyStatus eq 2 / eq '2' / eq 'Succeeded' (scripts quote numbers)."""

    def build(lookup: str, value: object) -> Q:
        if lookup != "exact":
            raise GraphError(400, f"Invalid filter: {prop} is compared with eq or ne.")
        code: object = value
        if isinstance(value, str):
            text = value.strip()
            code = int(text) if text.lstrip("-").isdigit() else None
            if code is None:
                matches = [s for s in Status if s.label.lower() == text.lower() or s.value == text.lower()]
                return Q(**{column: matches[0].value}) if matches else Q(pk__in=[])
        if not isinstance(code, int) or isinstance(code, bool) or code not in STATUS_OF_CODE:
            return Q(pk__in=[])
        return Q(**{column: STATUS_OF_CODE[code].value})

    return build


def _dt(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _setting_name(key: str) -> str:
    setting = get_catalog().get(key)
    return setting.display_name if setting is not None else key


def _label(status: str) -> str:
    return Status(status).label if status in Status.values else status


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Graph's PropertyType: String, Int32, DateTime, Boolean
    value: Callable[[Any], Any]
    filter: Field | None = None
    order: str | None = None


@dataclass(frozen=True)
class Report:
    name: str
    summary: str
    queryset: Callable[[], Any]
    columns: tuple[Column, ...]
    default: tuple[str, ...]
    search: tuple[str, ...] = ()
    default_order: tuple[str, ...] = ("pk",)
    by_name: dict[str, Column] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.columns})


def _device_policy_rows():
    return DevicePolicyStatus.objects.select_related("device", "policy")


def _setting_rows():
    return DeviceSettingStatus.objects.select_related("device", "policy")


def _sum(status: str, prefix: str = ""):
    return Coalesce(Sum(f"{prefix}count", filter=Q(**{f"{prefix}status": status})), 0)


def _policy_summary_rows():
    return (
        PolicyStatusCount.objects.values("policy_id", "policy__policy_id", "policy__name")
        .annotate(**{s: _sum(s) for s in Status.values})
        .order_by()
    )


def _setting_summary_rows():
    return (
        PolicySettingStatusCount.objects.values(
            "policy_id", "policy__policy_id", "policy__name", "setting_key"
        )
        .annotate(**{s: _sum(s) for s in Status.values})
        .order_by()
    )


DEVICE_COLUMNS = (
    Column("IntuneDeviceId", "String", lambda r: str(r.device.managed_device_id), guid_field("device__managed_device_id", "IntuneDeviceId")),
    Column("DeviceId", "String", lambda r: str(r.device.device_id), guid_field("device__device_id", "DeviceId")),
    Column("DeviceName", "String", lambda r: r.device.display_name, "device__display_name", "device__display_name"),
    Column("UPN", "String", lambda r: ""),
    Column("UserId", "String", lambda r: ""),
    Column("PolicyId", "String", lambda r: str(r.policy.policy_id), guid_field("policy__policy_id", "PolicyId")),
    Column("PolicyName", "String", lambda r: r.policy.name, "policy__name", "policy__name"),
    Column("PolicyBaseTypeName", "String", lambda r: POLICY_BASE_TYPE),
    Column("UnifiedPolicyType", "String", lambda r: r.policy.get_policy_type_display()),
    Column("ProfileName", "String", lambda r: r.policy.profile, "policy__profile"),
    Column("PolicyStatus", "Int32", lambda r: STATUS_CODE.get(r.status, 0), _status_filter("status", "PolicyStatus"), "status"),
    Column("PolicyStatus_loc", "String", lambda r: _label(r.status)),
    Column("Channel", "String", lambda r: r.get_channel_display(), "channel"),
    Column("SucceededSettingCount", "Int32", lambda r: r.succeeded_count),
    Column("ErrorSettingCount", "Int32", lambda r: r.error_count),
    Column("ConflictSettingCount", "Int32", lambda r: r.conflict_count),
    Column("PspdpuLastModifiedTimeUtc", "DateTime", lambda r: _dt(r.last_reported_at), None, "last_reported_at"),
)  # fmt: skip
SUMMARY_COUNTS = (
    ("NumberOfSucceededDevices", Status.SUCCEEDED),
    ("NumberOfErrorDevices", Status.ERROR),
    ("NumberOfConflictDevices", Status.CONFLICT),
    ("NumberOfNotApplicableDevices", Status.NOT_APPLICABLE),
    ("NumberOfPendingDevices", Status.PENDING),
)


def _count_columns() -> tuple[Column, ...]:
    return tuple(
        Column(name, "Int32", lambda r, s=status.value: r[s], None, status.value)
        for name, status in SUMMARY_COUNTS
    )


REPORTS = {
    r.name: r
    for r in (
        Report(
            "getConfigurationPolicyDevicesReport",
            "The devices of a policy and their status (filter \"PolicyId eq '…'\")",
            _device_policy_rows,
            DEVICE_COLUMNS,
            (
                "DeviceName",
                "UPN",
                "PolicyStatus",
                "PolicyStatus_loc",
                "IntuneDeviceId",
                "PspdpuLastModifiedTimeUtc",
            ),
            search=("device__display_name",),
            default_order=("device__display_name",),
        ),
        Report(
            "getConfigurationPoliciesReportForDevice",
            "The policies of a device and their status (filter \"IntuneDeviceId eq '…'\")",
            _device_policy_rows,
            DEVICE_COLUMNS,
            (
                "PolicyId",
                "PolicyName",
                "PolicyBaseTypeName",
                "UnifiedPolicyType",
                "PolicyStatus",
                "PolicyStatus_loc",
                "PspdpuLastModifiedTimeUtc",
            ),
            search=("policy__name",),
            default_order=("policy__name",),
        ),  # fmt: skip
        Report(
            "getConfigurationPolicyDeviceSummaryReport",
            "Device counts per status of each policy (the overview donut)",
            _policy_summary_rows,
            (
                Column(
                    "PolicyId",
                    "String",
                    lambda r: str(r["policy__policy_id"]),
                    guid_field("policy__policy_id", "PolicyId"),
                ),
                Column("PolicyName", "String", lambda r: r["policy__name"], "policy__name", "policy__name"),
                *_count_columns(),
            ),
            ("PolicyId", *(name for name, _ in SUMMARY_COUNTS)),
            search=("policy__name",),
            default_order=("policy__name",),
        ),  # fmt: skip
        Report(
            "getConfigurationPolicySettingsDeviceSummaryReport",
            "Per-setting device counts per status of a policy (filter \"PolicyId eq '…'\")",
            _setting_summary_rows,
            (
                Column(
                    "PolicyId",
                    "String",
                    lambda r: str(r["policy__policy_id"]),
                    guid_field("policy__policy_id", "PolicyId"),
                ),
                Column("PolicyName", "String", lambda r: r["policy__name"], "policy__name", "policy__name"),
                Column("SettingId", "String", lambda r: r["setting_key"], "setting_key", "setting_key"),
                Column("SettingName", "String", lambda r: _setting_name(r["setting_key"])),
                *_count_columns(),
            ),
            ("SettingId", "SettingName", *(name for name, _ in SUMMARY_COUNTS)),
            search=("setting_key",),
            default_order=("setting_key",),
        ),  # fmt: skip
        Report(
            "getConfigurationSettingsReport",
            "Per-setting status of a policy on a device (filter \"PolicyId eq '…' and IntuneDeviceId eq '…'\")",
            _setting_rows,
            (
                *DEVICE_COLUMNS[:8],
                Column("SettingId", "String", lambda r: r.setting_key, "setting_key", "setting_key"),
                Column("SettingName", "String", lambda r: _setting_name(r.setting_key)),
                Column(
                    "SettingStatus",
                    "Int32",
                    lambda r: STATUS_CODE.get(r.status, 0),
                    _status_filter("status", "SettingStatus"),
                    "status",
                ),
                Column("SettingStatus_loc", "String", lambda r: _label(r.status)),
                Column("ErrorCode", "Int32", lambda r: r.error_code or 0, "error_code"),
                Column("ErrorCode_loc", "String", lambda r: r.error_code_hex),
                Column("CurrentValue", "String", lambda r: _value_text(r.value)),
                Column("Message", "String", lambda r: r.message),
            ),
            ("SettingId", "SettingName", "SettingStatus", "SettingStatus_loc", "ErrorCode", "CurrentValue"),
            search=("setting_key",),
            default_order=("setting_key",),
        ),  # fmt: skip
    )
}


NONCOMPLIANT = Q(status__in=[Status.ERROR, Status.CONFLICT])


def _noncompliant_device_rows():
    return _device_policy_rows().filter(NONCOMPLIANT)


def _noncompliant_setting_rows():
    return _setting_rows().filter(NONCOMPLIANT)


REPORTS["getConfigurationPolicyNonComplianceReport"] = Report(
    "getConfigurationPolicyNonComplianceReport",
    "Devices where a policy is in error or conflict (filter \"PolicyId eq '…'\"); Graph's columns, this "
    "console's statuses",
    _noncompliant_device_rows,
    DEVICE_COLUMNS,
    ("DeviceName", "UPN", "PolicyId", "PolicyName", "PolicyStatus", "PolicyStatus_loc", "IntuneDeviceId",
     "PspdpuLastModifiedTimeUtc"),
    search=("device__display_name",),
    default_order=("device__display_name",),
)  # fmt: skip
REPORTS["getSettingNonComplianceReport"] = Report(
    "getSettingNonComplianceReport",
    "Settings in error or conflict, per device and policy (filter \"PolicyId eq '…'\", \"SettingId eq '…'\")",
    _noncompliant_setting_rows,
    REPORTS["getConfigurationSettingsReport"].columns,
    ("DeviceName", "IntuneDeviceId", "PolicyId", "PolicyName", "SettingId", "SettingName", "SettingStatus",
     "SettingStatus_loc", "ErrorCode"),
    search=("device__display_name", "setting_key"),
    default_order=("device__display_name", "setting_key"),
)  # fmt: skip


# Effective settings (issue 15): a console extension, not a Graph report. One row per device and effective entry.
EXTENSION_REPORTS = {"getEffectiveSettingsReport"}
EXTENSION_DESCRIPTION = (
    "This console's extension (not in Microsoft Graph): the effective settings of Windows devices - per "
    "Defender Antivirus setting, ASR rule and exclusion entry, the value the device enforces, the source that "
    "configured it, this console's intended value and whether they match."
)


def _effective_rows():
    return DeviceEffectiveSetting.objects.select_related("device")


def _attempts_text(row) -> str:
    return "; ".join(
        f"{a.get('source', '')}{' (' + a['name'] + ')' if a.get('name') else ''}: {_value_text(a.get('value'))}"
        for a in row.other_attempts or []
    )


def _intent_filter(lookup: str, value: object) -> Q:
    if lookup != "exact" or not isinstance(value, (bool, str)):
        raise GraphError(400, "Invalid filter: MatchesIntent is compared with eq true or eq false.")
    wanted = value if isinstance(value, bool) else value.strip().lower() == "true"
    return Q(intent=Intent.MATCHES) if wanted else Q(intent=Intent.DIFFERS)


EFFECTIVE_COLUMNS = (
    Column("IntuneDeviceId", "String", lambda r: str(r.device.managed_device_id), guid_field("device__managed_device_id", "IntuneDeviceId")),
    Column("DeviceId", "String", lambda r: str(r.device.device_id), guid_field("device__device_id", "DeviceId")),
    Column("DeviceName", "String", lambda r: r.device.display_name, "device__display_name", "device__display_name"),
    Column("SettingDefinitionId", "String", lambda r: r.setting_key, "setting_key", "setting_key"),
    Column("SettingName", "String", lambda r: _setting_name(r.setting_key)),
    Column("Entry", "String", lambda r: r.entry, "entry", "entry"),
    Column("EffectiveValue", "String", lambda r: _value_text(r.value)),
    Column("ConfiguredBy", "String", lambda r: r.configured_by, "configured_by", "configured_by"),
    Column("IntendedValue", "String", lambda r: _value_text(r.intended_value)),
    Column("MatchesIntent", "Boolean", lambda r: None if r.intent == Intent.NONE else r.intent == Intent.MATCHES, _intent_filter),
    Column("OtherAttempts", "String", _attempts_text),
    Column("LastChangeDateTimeUtc", "DateTime", lambda r: _dt(r.changed_at), None, "changed_at"),
)  # fmt: skip
REPORTS["getEffectiveSettingsReport"] = Report(
    "getEffectiveSettingsReport",
    "Effective settings of Windows devices, entry by entry (console extension)",
    _effective_rows,
    EFFECTIVE_COLUMNS,
    ("DeviceName", "IntuneDeviceId", "SettingDefinitionId", "SettingName", "Entry", "EffectiveValue", "ConfiguredBy",
     "IntendedValue", "MatchesIntent", "OtherAttempts"),
    search=("device__display_name", "setting_key", "entry"),
    default_order=("device__display_name", "setting_key", "entry", "pk"),
)  # fmt: skip


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


# ------------------------------------------------------------------------------------------------ request


def _str_list(body: Mapping[str, Any], key: str) -> list[str]:
    raw = body.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw) or len(raw) > 100:
        raise GraphError(400, f"'{key}' must be a list of column names.")
    return raw


def _int(body: Mapping[str, Any], key: str, default: int, maximum: int) -> int:
    raw = body.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0 or raw > maximum:
        raise GraphError(400, f"'{key}' must be a whole number from 0 to {maximum}.")
    return raw


def _text(body: Mapping[str, Any], key: str) -> str:
    raw = body.get(key)
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > 4000:
        raise GraphError(400, f"'{key}' must be text.")
    return raw


def run_report(report: Report, body: Mapping[str, Any]) -> dict[str, Any]:
    for key in body:
        if key not in REQUEST_KEYS and not str(key).startswith("@"):
            raise GraphError(400, f"Property '{str(key)[:80]}' is not a parameter of {report.name}.")
    _text(body, "name")  # the report's name, when sent, is text
    if _str_list(body, "groupBy"):
        raise GraphError(400, "groupBy isn't supported by this console's reports; send [].")
    select = _str_list(body, "select") or list(report.default)
    unknown = [c for c in select if c not in report.by_name]
    if unknown:
        raise GraphError(
            400, f"Unknown column '{unknown[0][:80]}'. Columns of {report.name}: {', '.join(report.by_name)}."
        )
    columns = [report.by_name[c] for c in dict.fromkeys(select)]
    order: list[str] = []
    for clause in _str_list(body, "orderBy"):
        bits = clause.split()
        column = report.by_name.get(bits[0]) if bits else None
        if (
            column is None
            or column.order is None
            or len(bits) > 2
            or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc"))
        ):
            sortable = ", ".join(c.name for c in report.columns if c.order)
            raise GraphError(
                400, f"Invalid orderBy '{clause[:80]}': use 'Column [asc|desc]' with one of {sortable}."
            )
        order.append(("-" if len(bits) == 2 and bits[1].lower() == "desc" else "") + column.order)
    skip = _int(body, "skip", 0, 10**9)
    top = _int(body, "top", DEFAULT_TOP, MAX_TOP) or DEFAULT_TOP
    fields = {c.name: c.filter for c in report.columns if c.filter is not None}
    text = _text(body, "filter").strip()
    q = parse_filter(text, fields) if text else Q()
    search = _text(body, "search").strip()
    if search and report.search:
        sq = Q()
        for path in report.search:
            sq |= Q(**{f"{path}__icontains": search})
        q &= sq
    try:
        qs = report.queryset().filter(q).order_by(*order, *report.default_order)
        total = qs.count()
        rows = list(qs[skip : skip + top])
    except (ValidationError, ValueError, TypeError, FieldError, OverflowError, DataError) as exc:
        raise GraphError(
            400, f"Invalid filter: a value does not fit its column ({str(exc)[:200]})."
        ) from None
    return {
        "TotalRowCount": total,
        "Schema": [{"Column": c.name, "PropertyType": c.type} for c in columns],
        "Values": [[c.value(row) for c in columns] for row in rows],
        "SessionId": _text(body, "sessionId"),
    }


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
    if text:
        properties["filter"] = {"type": "string", "pattern": text_filter_pattern(text)}
    else:
        properties["filter"] = {"type": "string", "maxLength": 0}
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
            return Response(run_report(report, self.json_body(request)))

    ReportView.__name__ = ReportView.__qualname__ = report.name[0].upper() + report.name[1:]
    return ReportView


VIEWS = {name: _view(report) for name, report in REPORTS.items()}


# ------------------------------------------------------------------------------------------------ cached reports

CACHED_PREFIX = "graph:cachedReportConfiguration:"
CACHED_TTL = (
    3600  # seconds; Graph's documentation gives no lifetime, this console keeps a configuration an hour
)
CACHED_KEYS = {"id", "reportName", "filter", "select", "orderBy", "metadata"}
CACHED_NAMES = ", ".join(name[3:] for name in REPORTS)

CACHED_CONFIGURATION = obj(
    {
        "id": STRING,
        "reportName": STRING,
        "filter": STRING,
        "select": {"type": "array", "items": STRING},
        "orderBy": {"type": "array", "items": STRING},
        "metadata": STRING,
        "status": {"type": "string", "enum": ["unknown", "notStarted", "inProgress", "completed", "failed"]},
        "lastRefreshDateTime": {"type": "string", "format": "date-time"},
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
        "'<reportName>_'. The configuration lives an hour; the report is computed when read (always current)."
    ),
}
CACHED_REPORT_IN = obj(
    {
        "id": {"type": "string", "pattern": r"^[A-Za-z]+_[0-9a-fA-F-]{1,36}$"},
        "groupBy": {"type": "array", "maxItems": 0},
        "skip": {"type": "integer", "minimum": 0, "maximum": 10**9},
        "top": {"type": "integer", "minimum": 0, "maximum": MAX_TOP},
    },
    required=["id"],
    description="select, orderBy and search are accepted too and must fit the cached report's columns",
)


def _report_named(name: str) -> Report:
    for candidate in (name, f"get{name}", f"get{name[:1].upper()}{name[1:]}"):
        if candidate in REPORTS:
            return REPORTS[candidate]
    raise GraphError(400, f"Unknown reportName '{name[:80]}'. Reports this console caches: {CACHED_NAMES}.")


def _cache_key(config_id: str) -> str:
    return CACHED_PREFIX + config_id.strip().lower()


def _cached(config_id: object) -> dict[str, Any]:
    if not isinstance(config_id, str) or not config_id.strip():
        raise GraphError(400, "'id' must be the id of a cached report configuration.")
    found = cache.get(_cache_key(config_id))
    if found is None:
        raise GraphError(
            404,
            f"Cached report configuration '{config_id[:120]}' was not found (or expired).",
            "ResourceNotFound",
        )
    return found


def create_cached_configuration(body: Mapping[str, Any]) -> dict[str, Any]:
    for key in body:
        if key not in CACHED_KEYS and not str(key).startswith("@"):
            raise GraphError(
                400,
                f"Property '{str(key)[:80]}' does not exist on type 'deviceManagementCachedReportConfiguration'.",
            )
    config_id = _text(body, "id").strip()
    if not config_id or len(config_id) > 200:
        raise GraphError(400, "'id' is required: a name for the cached report, e.g. '<reportName>_<guid>'.")
    report = _report_named(_text(body, "reportName").strip() or config_id.split("_", 1)[0])
    select = _str_list(body, "select")
    order = _str_list(body, "orderBy")
    flt = _text(body, "filter")
    run_report(report, {"select": select, "orderBy": order, "filter": flt, "top": 1})  # refuses a bad one now
    now = timezone.now()
    config = {
        "id": config_id,
        "reportName": report.name[3:],
        "filter": flt,
        "select": select,
        "orderBy": order,
        "metadata": _text(body, "metadata"),
        "status": "completed",
        "lastRefreshDateTime": _dt(now),
        "expirationDateTime": _dt(now + timedelta(seconds=CACHED_TTL)),
    }
    cache.set(_cache_key(config_id), config, CACHED_TTL)
    return config


def run_cached_report(body: Mapping[str, Any]) -> dict[str, Any]:
    for key in body:
        if key not in {"id", "select", "search", "groupBy", "orderBy", "skip", "top"} and not str(
            key
        ).startswith("@"):
            raise GraphError(400, f"Property '{str(key)[:80]}' is not a parameter of getCachedReport.")
    config = _cached(body.get("id"))
    request = {k: v for k, v in body.items() if k != "id" and v is not None}
    request.setdefault("select", config["select"])
    request.setdefault("orderBy", config["orderBy"])
    if not request["select"]:
        request["select"] = config["select"]
    if not request["orderBy"]:
        request["orderBy"] = config["orderBy"]
    request["filter"] = config["filter"]
    return run_report(_report_named(config["reportName"]), request)


class CachedReportConfigurations(GraphView):
    required_perms = {"POST": "reports.view_devicepolicystatus"}
    schema = GraphAutoSchema()

    @extend_schema(
        summary="Cache a report's configuration (201); read it with getCachedReport",
        request=json_request(CACHED_IN),
        responses={201: OpenApiResponse(CACHED_CONFIGURATION), **errors(413, 415)},
        tags=["reports"],
    )
    def post(self, request):
        return Response(create_cached_configuration(self.json_body(request)), status=201)


class CachedReportConfigurationDetail(GraphView):
    required_perms = {"GET": "reports.view_devicepolicystatus", "DELETE": "reports.view_devicepolicystatus"}
    schema = GraphAutoSchema()

    @extend_schema(
        summary="One cached report configuration",
        responses={200: OpenApiResponse(CACHED_CONFIGURATION), **errors()},
        tags=["reports"],
    )
    def get(self, request, config_id: str):
        return Response(_cached(config_id))

    @extend_schema(
        summary="Delete a cached report configuration (204)",
        responses={204: OpenApiResponse(description="Deleted"), **errors()},
        tags=["reports"],
    )
    def delete(self, request, config_id: str):
        _cached(config_id)
        cache.delete(_cache_key(config_id))
        return Response(status=204)


class GetCachedReport(GraphView):
    required_perms = {"POST": "reports.view_devicepolicystatus"}
    content_negotiation_class = JsonAlways
    schema = GraphAutoSchema()

    @extend_schema(
        summary="Read a cached report (the configuration's filter; select and orderBy may be overridden)",
        request=json_request(CACHED_REPORT_IN),
        responses={200: OpenApiResponse(REPORT_OUT), **errors(413, 415)},
        tags=["reports"],
    )
    def post(self, request):
        return Response(run_cached_report(self.json_body(request)))
