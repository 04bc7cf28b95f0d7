"""The reports behind Graph beta `deviceManagement/reports/*`: Intune's report actions, answered in the
{TotalRowCount, Schema, Values} table format (graph-api-shapes.md §4) from the status rows and aggregates that
check-ins keep (reports.models). reports.api serves them; reports.cached snapshots them for getCachedReport.

Numeric status codes follow Graph's deviceComplianceStatus-style numbering, kept stable here: 2 Succeeded,
1 Not applicable, 5 Error, 6 Conflict, 0 Pending. The `_loc` column carries the readable label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldError, ValidationError
from django.db import DataError
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

from console.api.common import guid_field
from console.api.errors import GraphError
from console.api.odata import Field, parse_filter
from devices.models import Device
from devices.scope import ALL_DEVICES, device_filter
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
    device_path: str | None = (
        "device__"  # rows of one device: narrowed to a person's scope (None: aggregates)
    )
    by_name: dict[str, Column] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.columns})


def _device_policy_rows():
    return DevicePolicyStatus.objects.select_related("device", "policy")


def _setting_rows():
    return DeviceSettingStatus.objects.select_related("device", "policy", "message_ref")


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
    Column("DeviceName", "String", lambda r: r.device.display_name, "device_name", "device_name"),
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
            search=("device_name",),
            default_order=("device_name",),
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
            device_path=None,
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
            device_path=None,
        ),  # fmt: skip
        Report(
            "getConfigurationSettingsReport",
            "Per-setting status of a policy on a device (filter \"PolicyId eq '…' and IntuneDeviceId eq '…'\")",
            _setting_rows,
            (
                *DEVICE_COLUMNS[:8],
                Column(
                    "SettingId", "String", lambda r: r.setting_key, "setting_key", "setting_key_text__text"
                ),
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
            default_order=("setting_key_text__text",),  # the key's text: the column holds its hash
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
    search=("device_name",),
    default_order=("device_name",),
)  # fmt: skip
REPORTS["getSettingNonComplianceReport"] = Report(
    "getSettingNonComplianceReport",
    "Settings in error or conflict, per device and policy (filter \"PolicyId eq '…'\", \"SettingId eq '…'\")",
    _noncompliant_setting_rows,
    REPORTS["getConfigurationSettingsReport"].columns,
    ("DeviceName", "IntuneDeviceId", "PolicyId", "PolicyName", "SettingId", "SettingName", "SettingStatus",
     "SettingStatus_loc", "ErrorCode"),
    search=("device__display_name", "setting_key"),
    default_order=("device__display_name", "setting_key_text__text"),
)  # fmt: skip


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


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
    Column("SettingDefinitionId", "String", lambda r: r.setting_key, "setting_key", "setting_key_text__text"),
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
    default_order=("device__display_name", "setting_key_text__text", "entry", "pk"),
)  # fmt: skip


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


def rows_in_scope(report: Report, group_ids: tuple[int, ...] | None):
    """The report's rows, narrowed to the devices of a person's scope (devices.scope; None: all devices).
    The summary reports read tenant-wide aggregates, as the overview pages do (issue 13 keeps that open)."""
    queryset = report.queryset()
    if report.device_path is None or group_ids is ALL_DEVICES:
        return queryset
    return queryset.filter(**{f"{report.device_path}in": Device.objects.filter(device_filter(group_ids))})


def run_report(
    report: Report, body: Mapping[str, Any], group_ids: tuple[int, ...] | None = ALL_DEVICES
) -> dict[str, Any]:
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
        qs = rows_in_scope(report, group_ids).filter(q).order_by(*order, *report.default_order)
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


def _filtered(report: Report, text: str, group_ids: tuple[int, ...] | None):
    """The report's rows in scope that the filter text matches (400 for a filter that doesn't fit)."""
    fields = {c.name: c.filter for c in report.columns if c.filter is not None}
    text = text.strip()
    return rows_in_scope(report, group_ids).filter(parse_filter(text, fields) if text else Q())


def search_columns(report: Report) -> list[str]:
    """The columns `search` looks in (those the live report searches)."""
    return [c.name for c in report.columns if c.order is not None and c.order in report.search]


def snapshot(
    report: Report, filter_text: str, limit: int, group_ids: tuple[int, ...] | None = ALL_DEVICES
) -> list[list[Any]]:
    """Every column of every row the filter matches, in the report's default order: a cached report's rows.
    More than ``limit`` rows is a 400 (narrow the filter)."""
    try:
        qs = _filtered(report, filter_text, group_ids).order_by(*report.default_order)
        if list(qs[limit : limit + 1]):
            raise GraphError(
                400,
                f"The report has more than {limit} rows; narrow the filter to cache it (e.g. one PolicyId).",
            )
        return [[c.value(row) for c in report.columns] for row in qs.iterator(chunk_size=2000)]
    except (ValidationError, ValueError, TypeError, FieldError, OverflowError, DataError) as exc:
        raise GraphError(
            400, f"Invalid filter: a value does not fit its column ({str(exc)[:200]})."
        ) from None
