"""The report queries behind the status pages and the Graph reports: one function per question, each a fixed
number of indexed queries whatever the size of the fleet.

Counts come from the aggregates that check-in ingest keeps (PolicyStatusCount, PolicySettingStatusCount) or from
indexed queries; row lists are querysets with ``select_related`` so a page of rows is one query. Views and the
API both call these functions, so the console and Graph always agree.

Index map (what serves what):

- counts per policy / per setting: the aggregate tables (a few rows per policy);
- devices of a policy (View report): reports_devicepolicystatus (policy, device_name, id), or (policy, status,
  device_name, id) with a status, read in page order; the page's 25 devices joined by primary key;
- devices of a policy with a setting in a status: reports_devicesettingstatus (policy, setting_key, status);
- a device's per-setting rows and "other policies that manage this setting": the (device, policy, setting_key)
  unique index of reports_devicesettingstatus;
- MDE-managed devices per platform: devices_device (managed_by, os); enrollment breakdown: the enrollment_status
  index; late check-ins: the partial index on next_checkin_at.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings as conf
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from devices import tally
from devices.models import Device, ManagedBy, OSType
from devices.onboarding import ENROLLMENT_STATUSES, LEFT_SCOPE, SUCCESS
from policies.catalog import device_value, display_value, get_catalog
from policies.models import Policy, PolicyType

from .ingest import POLICY_COLUMNS
from .models import (
    DevicePolicyStatus,
    DeviceSettingStatus,
    PolicySettingStatusCount,
    PolicyStatusCount,
    Status,
)

# Display order of the status pages (Intune's): Succeeded, Error, Conflict, Not applicable, Pending.
STATUS_ORDER: tuple[str, ...] = (
    Status.SUCCEEDED,
    Status.ERROR,
    Status.CONFLICT,
    Status.NOT_APPLICABLE,
    Status.PENDING,
)
STATUS_LABEL: dict[str, str] = dict(Status.choices)
STATUS_ICON: dict[str, str] = {
    Status.SUCCEEDED: "check",
    Status.ERROR: "error",
    Status.CONFLICT: "warning",
    Status.NOT_APPLICABLE: "na",
    Status.PENDING: "pending",
}
PROBLEM_STATUSES: tuple[str, ...] = (Status.ERROR, Status.CONFLICT)

# A device is late when its expected check-in is this share of an interval overdue: with next = last + interval
# (±10% jitter), "next < now - 0.5 × interval" is "last check-in more than ~1.5 intervals (135 min) ago".
LATE_FACTOR = 1.5


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(STATUS_ORDER, 0)


# ---------------------------------------------------------------------------------------------------------
# Per policy: device status counts (the Monitor donut)
# ---------------------------------------------------------------------------------------------------------


def policy_status_counts(policy: Policy | int) -> dict[str, int]:
    """Devices of the policy per status, from the aggregate (one query over at most five rows)."""
    counts = empty_counts()
    pid = getattr(policy, "pk", policy)
    for status, n in PolicyStatusCount.objects.filter(policy_id=pid).values_list("status", "count"):
        if status in counts:
            counts[status] += max(n, 0)
    return counts


def largest_policy() -> Policy | None:
    """The policy that reaches the most devices (from the aggregates; the first policy when none has status)."""
    top = (
        PolicyStatusCount.objects.values("policy_id")
        .annotate(n=Sum("count"))
        .order_by("-n", "policy_id")
        .first()
    )
    if top:
        return Policy.objects.filter(pk=top["policy_id"]).first()
    return Policy.objects.order_by("pk").first()


def all_policy_status_counts(policy_ids: Iterable[int] | None = None) -> dict[int, dict[str, int]]:
    """``{policy pk: counts}`` for many policies at once (one query)."""
    qs = PolicyStatusCount.objects.all()
    if policy_ids is not None:
        qs = qs.filter(policy_id__in=list(policy_ids))
    out: dict[int, dict[str, int]] = defaultdict(empty_counts)
    for pid, status, n in qs.values_list("policy_id", "status", "count"):
        if status in STATUS_LABEL:
            out[pid][status] += max(n, 0)
    return dict(out)


# ---------------------------------------------------------------------------------------------------------
# Per policy: settings (Per setting status)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SettingSummary:
    key: str
    name: str
    category: str
    configured: str  # the policy's value, as the admin center shows it ("" when the policy no longer sets it)
    counts: dict[str, int]
    in_policy: bool = True

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def problems(self) -> int:
        return self.counts[Status.ERROR] + self.counts[Status.CONFLICT]


def setting_name(key: str) -> str:
    sdef = get_catalog().get(key)
    return (sdef.display_name if sdef else "") or key


def setting_status_counts(policy: Policy, devices: int | None = None) -> list[SettingSummary]:
    """Every setting the policy configures, with its device counts per status (one query over the aggregate).

    Settings in the policy's catalog order; a key that still has counts but is no longer in the policy (the
    devices haven't checked in since the edit) is listed after them.

    Every setting the policy configures adds up to the policy's device count: a targeted device that has no row
    for the setting yet (it hasn't reported since it was targeted or the setting was added) is Pending for it.
    ``devices``: the policy's device count when the caller has it (saves the query).
    """
    catalog = get_catalog()
    counts: dict[str, dict[str, int]] = defaultdict(empty_counts)
    for key, status, n in PolicySettingStatusCount.objects.filter(policy_id=policy.pk).values_list(
        "setting_key", "status", "count"
    ):
        if status in STATUS_LABEL and n:
            counts[key][status] += max(n, 0)
    values = policy.values or {}
    try:
        order = [s.id for s in catalog.profile(policy.profile).settings]
    except KeyError:
        order = []
    rank = {key: i for i, key in enumerate(order)}
    keys = sorted(values, key=lambda k: (rank.get(k, len(rank)), k))
    extra = sorted(k for k, c in counts.items() if k not in values and any(c.values()))
    if devices is None:
        devices = sum(policy_status_counts(policy).values())
    for key in keys:
        unreported = devices - sum(counts[key].values()) if key in counts else devices
        if unreported > 0:
            counts[key][Status.PENDING] += unreported
    out = []
    for key in [*keys, *extra]:
        sdef = catalog.get(key)
        out.append(
            SettingSummary(
                key=key,
                name=(sdef.display_name if sdef else "") or key,
                category=sdef.category if sdef else "",
                configured=display_value(key, values[key]) if key in values else "",
                counts=counts[key] if key in counts else empty_counts(),
                in_policy=key in values,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Per policy: devices (View report)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFilters:
    """What View report can be narrowed by (all optional)."""

    status: str = ""
    os: str = ""
    q: str = ""
    setting: str = ""  # a setting key: only devices that have a row for it ...
    setting_status: str = ""  # ... in this status

    @property
    def only_status(self) -> bool:
        """Nothing but (at most) a status: the total is known from the aggregate."""
        return not (self.os or self.q.strip() or self.setting or self.setting_status)


# What the status lists show of a device and a policy: never their JSON blobs (a device's agent_state, a
# policy's settings), which would be decoded for every row.
DEVICE_FIELDS = ("id", "device_id", "display_name", "os", "os_version", "managed_by")
POLICY_FIELDS = ("id", "policy_id", "name", "profile", "policy_type")
ROW_FIELDS = ("id", *POLICY_COLUMNS, *(f"device__{name}" for name in DEVICE_FIELDS))


def policy_devices_queryset(policy: Policy | int, filters: DeviceFilters | None = None) -> QuerySet:
    """The policy's device status rows with their device (one query per page, whatever the page size)."""
    f = filters or DeviceFilters()
    pid = getattr(policy, "pk", policy)
    qs = DevicePolicyStatus.objects.filter(policy_id=pid).select_related("device").only(*ROW_FIELDS)
    if f.status:
        qs = qs.filter(status=f.status)
    if f.os:
        qs = qs.filter(device__os=f.os)
    if f.q.strip():
        qs = qs.filter(device_name__icontains=f.q.strip())
    if f.setting or f.setting_status:
        rows = DeviceSettingStatus.objects.filter(policy_id=pid, device_id=OuterRef("device_id"))
        if f.setting:
            rows = rows.filter(setting_key=f.setting)
        if f.setting_status:
            rows = rows.filter(status=f.setting_status)
        match = Exists(rows)
        if f.setting and f.setting_status == Status.PENDING and _configures(policy, f.setting):
            # A device with no row for the setting hasn't reported it: Pending (as setting_status_counts).
            unreported = DeviceSettingStatus.objects.filter(
                policy_id=pid, device_id=OuterRef("device_id"), setting_key=f.setting
            )
            match = match | ~Exists(unreported)
        qs = qs.filter(match)
    return qs


def _configures(policy: Policy | int, key: str) -> bool:
    """Whether the policy (now) sets ``key``: only then is a device without a row for it Pending for it."""
    values = policy.values if isinstance(policy, Policy) else Policy.objects.get(pk=policy).values
    return key in (values or {})


def policy_device_total(policy: Policy | int, filters: DeviceFilters | None = None) -> int | None:
    """The number of rows of :func:`policy_devices_queryset` when the aggregates know it (else None)."""
    f = filters or DeviceFilters()
    if not f.only_status:
        return None
    counts = policy_status_counts(policy)
    return counts.get(f.status, 0) if f.status else sum(counts.values())


def policy_device_rows(
    policy: Policy | int,
    filters: DeviceFilters | None = None,
    order: Iterable[str] = ("device_name",),
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[DevicePolicyStatus], int]:
    """One page of :func:`policy_devices_queryset` and the total: at most two queries (the total is free when
    only a status is filtered)."""
    qs = policy_devices_queryset(policy, filters).order_by(*order, "device_id")
    total = policy_device_total(policy, filters)
    if total is None:
        total = qs.count()
    start = max(page - 1, 0) * per_page
    return list(qs[start : start + per_page]), total


# ---------------------------------------------------------------------------------------------------------
# One device, one policy: per-setting status and the other policies that manage the same setting
# ---------------------------------------------------------------------------------------------------------


@dataclass
class OtherPolicy:
    policy: Policy
    status: str
    value: str
    conflicting: bool  # named as a source of conflict on the row we came from

    @property
    def label(self) -> str:
        return STATUS_LABEL.get(self.status, self.status)

    @property
    def icon(self) -> str:
        return STATUS_ICON.get(self.status, "info")


@dataclass
class SettingRow:
    key: str
    name: str
    category: str
    value: str  # what is in effect on the device (policies.catalog.device_value), never the policy's value
    status: str
    error_code: str
    message: str
    others: list[OtherPolicy] = field(default_factory=list)
    configured: str = ""  # the policy's value ("" when the policy no longer configures the setting)
    raw: DeviceSettingStatus | None = None

    @property
    def label(self) -> str:
        return STATUS_LABEL.get(self.status, self.status)

    @property
    def icon(self) -> str:
        return STATUS_ICON.get(self.status, "info")

    @property
    def conflicting(self) -> list[OtherPolicy]:
        return [o for o in self.others if o.conflicting]


def _others(
    device_id: int, keys: Iterable[str], exclude_policy_id: int | None, conflict_ids: Mapping[str, set[int]]
) -> dict[str, list[OtherPolicy]]:
    """Other policies' rows for these settings on this device (one query), plus policies named in conflicts
    that have no row (their device hasn't reported them yet) (one more query only in that case)."""
    keys = list(keys)
    found: dict[str, list[OtherPolicy]] = defaultdict(list)
    if not keys:
        return found
    rows = (
        DeviceSettingStatus.objects.filter(device_id=device_id, setting_key__in=keys)
        .exclude(policy_id=exclude_policy_id)
        .select_related("policy")
        .only(
            "setting_key",
            "status",
            "value",
            "policy__id",
            "policy__policy_id",
            "policy__name",
            "policy__profile",
            "policy__policy_type",
        )
        .order_by("setting_key_text__text", "policy__name", "policy_id")
    )
    seen: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        found[row.setting_key].append(
            OtherPolicy(
                row.policy,
                row.status,
                display_value(row.setting_key, row.value),
                row.policy_id in conflict_ids.get(row.setting_key, set()),
            )
        )
        seen[row.setting_key].add(row.policy_id)
    missing = {pid for key, ids in conflict_ids.items() for pid in ids - seen[key]}
    if missing:
        policies = Policy.objects.in_bulk(missing)
        for key, ids in conflict_ids.items():
            for pid in sorted(ids - seen[key]):
                if pid in policies:
                    found[key].append(OtherPolicy(policies[pid], Status.PENDING, "", True))
    return found


def device_setting_rows(device, policy: Policy) -> list[SettingRow]:
    """The device's per-setting status for the policy, each with the other policies that manage the same
    setting on the device (two queries)."""
    catalog = get_catalog()
    device_id = getattr(device, "pk", device)
    rows = list(
        DeviceSettingStatus.objects.filter(device_id=device_id, policy_id=policy.pk).select_related(
            "message_ref"
        )
    )
    try:
        order = [s.id for s in catalog.profile(policy.profile).settings]
    except KeyError:
        order = []
    rank = {key: i for i, key in enumerate(order)}
    rows.sort(key=lambda r: (rank.get(r.setting_key, len(rank)), r.setting_key))
    conflicts = {r.setting_key: set(r.conflict_policy_ids or []) for r in rows}
    values = policy.values or {}
    others = _others(device_id, [r.setting_key for r in rows], policy.pk, conflicts)
    out = []
    for row in rows:
        sdef = catalog.get(row.setting_key)
        out.append(
            SettingRow(
                key=row.setting_key,
                name=(sdef.display_name if sdef else "") or row.setting_key,
                category=sdef.category if sdef else "",
                value=device_value(row.setting_key, row.status, row.value),
                status=row.status,
                error_code=row.error_code_hex,
                message=row.message,
                others=others.get(row.setting_key, []),
                raw=row,
                configured=display_value(row.setting_key, values[row.setting_key])
                if row.setting_key in values
                else "",
            )
        )
    return out


def other_policies_for_setting(
    device, setting_key: str, exclude_policy: Policy | int | None = None
) -> list[OtherPolicy]:
    """Every (other) policy that manages ``setting_key`` on the device: the seed's "source of conflict"."""
    device_id = getattr(device, "pk", device)
    exclude_id = getattr(exclude_policy, "pk", exclude_policy)
    conflict: set[int] = set()
    if exclude_id is not None:
        row = (
            DeviceSettingStatus.objects.filter(
                device_id=device_id, policy_id=exclude_id, setting_key=setting_key
            )
            .values_list("conflict_policy_ids", flat=True)
            .first()
        )
        conflict = set(row or [])
    return _others(device_id, [setting_key], exclude_id, {setting_key: conflict}).get(setting_key, [])


# ---------------------------------------------------------------------------------------------------------
# Tenant-wide (the Endpoint security overview)
# ---------------------------------------------------------------------------------------------------------


def mde_devices_by_os(devices: QuerySet | None = None) -> dict[str, int]:
    """Devices managed by MDE per OS; ``devices``: a viewer's scope. The whole fleet's come from the counts the
    database keeps (devices.tally), a scope's from an index-only scan of (managed_by, os)."""
    counts = dict.fromkeys(OSType.values, 0)
    if devices is None:
        for (managed_by, os_value, _), n in tally.fleet_counts().items():
            if managed_by == ManagedBy.MDE:
                counts[os_value] = counts.get(os_value, 0) + n
        return counts
    for os_value, n in (
        devices.filter(managed_by=ManagedBy.MDE).values_list("os").annotate(n=Count("*")).order_by()
    ):
        counts[os_value] = counts.get(os_value, 0) + n
    return counts


@dataclass
class EnrollmentGroup:
    status: str
    codes: str
    count: int
    success: bool
    linkable: bool = True  # "Other" (statuses the table doesn't know) has no filter of All devices
    error: bool = True  # a device that left the enforcement scope isn't in error


def enrollment_breakdown(devices: QuerySet | None = None) -> tuple[list[EnrollmentGroup], int]:
    """Devices per MDE enrollment status, in the reference's table order, and the devices without one (the
    device list's "Not applicable": enrolled in Intune, or not onboarded). ``devices``: a viewer's scope (one
    index-only query), or None for the whole fleet (the counts the database keeps, devices.tally)."""
    if devices is None:
        counts: dict[str, int] = Counter()
        for (_, _, status), n in tally.fleet_counts().items():
            counts[status] += n
    else:
        counts = dict(
            devices.values_list("enrollment_status")
            .annotate(n=Count("*"))
            .values_list("enrollment_status", "n")
            .order_by()
        )
    groups = [
        EnrollmentGroup(
            status, codes, counts.get(status, 0), status == SUCCESS, error=status not in (SUCCESS, LEFT_SCOPE)
        )
        for status, codes in ENROLLMENT_STATUSES
    ]
    known = {status for status, _ in ENROLLMENT_STATUSES}
    unknown = sum(n for status, n in counts.items() if status not in known and status)
    if unknown:  # a status the table doesn't know (older data): shown, never silently dropped
        groups.append(EnrollmentGroup("Other", "", unknown, False, linkable=False))
    return groups, counts.get("", 0)


@dataclass
class PolicySummary:
    policy: Policy
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def problems(self) -> int:
        return self.counts[Status.ERROR] + self.counts[Status.CONFLICT]


@dataclass
class TypeSummary:
    value: str
    label: str
    policies: list[PolicySummary]

    @property
    def counts(self) -> dict[str, int]:
        out = empty_counts()
        for item in self.policies:
            for status, n in item.counts.items():
                out[status] += n
        return out


def scoped_status_rows(policies: QuerySet, devices: QuerySet) -> list[tuple[int, str, int]]:
    """``(policy pk, status, count)`` like the aggregate rows, counted from the status rows of ``devices`` and
    ``policies`` only (a scoped viewer's overview: the aggregates are tenant-wide)."""
    return list(
        DevicePolicyStatus.objects.filter(device__in=devices, policy__in=policies)
        .values_list("policy_id", "status")
        .annotate(n=Count("*"))
        .order_by()
    )


def policies_by_type(
    count_rows: Iterable[tuple[int, str, int]] | None = None, *, policies: QuerySet | None = None
) -> list[TypeSummary]:
    """Every policy (or ``policies``), grouped by type, with its device status counts (two queries; one when the
    aggregate rows ``(policy pk, status, count)`` are given)."""
    policies = list(
        (Policy.objects.all() if policies is None else policies)
        .only("id", "policy_id", "name", "profile", "policy_type", "platform")
        .order_by("name")
    )
    if count_rows is None:
        counts = all_policy_status_counts()
    else:
        counts = defaultdict(empty_counts)
        for pid, status, n in count_rows:
            if status in STATUS_LABEL:
                counts[pid][status] += max(n, 0)
    by_type: dict[str, list[PolicySummary]] = defaultdict(list)
    for policy in policies:
        by_type[policy.policy_type].append(PolicySummary(policy, counts.get(policy.pk, empty_counts())))
    return [TypeSummary(value, label, by_type.get(value, [])) for value, label in PolicyType.choices]


def problem_rows_queryset(
    statuses: Iterable[str] = PROBLEM_STATUSES, *, scope: tuple | None = None
) -> QuerySet:
    """Device × policy rows in Error or Conflict, newest first (the rows are rewritten when they change, so a
    higher id is a more recent report): a backwards primary-key scan that stops after one page."""
    rows = DevicePolicyStatus.objects.filter(status__in=list(statuses))
    if scope is not None:  # (devices, policies) of a scoped viewer
        rows = rows.filter(device__in=scope[0], policy__in=scope[1])
    return (
        rows.select_related("device", "policy")
        .only(*ROW_FIELDS, *(f"policy__{name}" for name in POLICY_FIELDS))
        .order_by("-pk")
    )


def problem_pair_counts() -> dict[str, int]:
    """Device × policy pairs in Error and in Conflict, from the aggregate."""
    totals = dict.fromkeys(PROBLEM_STATUSES, 0)
    for status, n in (
        PolicyStatusCount.objects.filter(status__in=PROBLEM_STATUSES)
        .values_list("status")
        .annotate(n=Sum("count"))
    ):
        totals[status] = max(n or 0, 0)
    return totals


def problem_device_count(policy_ids: Iterable[int] | None = None, *, scope: tuple | None = None) -> int:
    """Distinct devices with at least one policy in Error or Conflict (one query).

    ``policy_ids``: the policies that have any (the aggregates say which); naming them lets PostgreSQL read just
    those ranges of the (policy, status) index instead of scanning the table. An empty list is no query at all.
    """
    qs = DevicePolicyStatus.objects.filter(status__in=PROBLEM_STATUSES)
    if policy_ids is not None:
        ids = sorted(set(policy_ids))
        if not ids:
            return 0
        qs = qs.filter(policy_id__in=ids)
    if scope is not None:  # (devices, policies) of a scoped viewer
        qs = qs.filter(device__in=scope[0], policy__in=scope[1])
    return qs.values("device_id").distinct().order_by().count()


def late_cutoff(now: datetime | None = None) -> datetime:
    """Expected check-ins scheduled before this are overdue (see LATE_FACTOR)."""
    now = now or timezone.now()
    interval: timedelta = conf.CHECKIN_INTERVAL
    return now - interval * (LATE_FACTOR - 1)


def late_devices_queryset(now: datetime | None = None, devices: QuerySet | None = None) -> QuerySet:
    """Managed devices whose last check-in is older than expected, most overdue first (partial index on
    next_checkin_at: only devices that check in have one). ``devices``: a viewer's scope."""
    return (
        (Device.objects.all() if devices is None else devices)
        .filter(next_checkin_at__lt=late_cutoff(now))
        .only(*DEVICE_FIELDS, "last_checkin_at", "next_checkin_at")
        .order_by("next_checkin_at", "pk")
    )


# The overview counts late devices up to here and shows "10,000+" beyond: when a whole fleet of a million stops
# checking in (an outage, exactly when the page is needed) an exact count reads a million index entries.
LATE_COUNT_CAP = 10_000


def late_device_count(
    now: datetime | None = None, devices: QuerySet | None = None, cap: int | None = None
) -> int:
    """Late devices; with ``cap``, counted no further than cap + 1 (a LIMIT under the COUNT)."""
    qs = late_devices_queryset(now, devices).order_by()
    if cap is not None:
        qs = qs.values("pk")[: cap + 1]
    return qs.count()


def late_filter(now: datetime | None = None) -> Q:
    return Q(next_checkin_at__lt=late_cutoff(now))
