"""Effective settings, read side: a device's entries, its drift timeline, the fleet report and policy overrides.

Counts for the whole tenant come from ``EffectiveSettingCount`` (kept by reports.ingest in the same transaction
as the rows); a person scoped to device groups gets the same numbers counted from their devices' rows (indexed
by device). The number of Windows devices that report effective settings is the counter row
(:data:`REPORTING_KEY`), so "nothing configured" is that number minus the devices with an entry.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, Count, Exists, OuterRef, Q, Subquery, TextField, Value, When
from django.db.models.functions import Concat, Substr

from devices.models import ConfigSource, Device
from devices.scope import scope_group_ids, scoped
from policies.catalog import display_value, get_catalog

from .models import (
    REPORTING_COUNTER,
    DeviceEffectiveSetting,
    DeviceSettingStatus,
    DriftEvent,
    EffectiveSettingCount,
    Intent,
)

SOURCE_LABELS: dict[str, str] = dict(ConfigSource.choices)
OUR_SOURCE = ConfigSource.INTUNE
REPORTING_KEY = REPORTING_COUNTER  # the counter of Windows devices that report effective settings
EXCLUSION_KEYS = frozenset(
    "device_vendor_msft_policy_config_defender_" + name
    for name in ("excludedpaths", "excludedextensions", "excludedprocesses")
)
KIND_LABELS = {"asr": "ASR rule", "exclusion": "Exclusion", "av": "Antivirus setting"}


def source_label(code: str) -> str:
    return SOURCE_LABELS.get(code, code.replace("_", " ").capitalize() if code else "")


def overridden_label(code: str) -> str:
    return f"Overridden by {source_label(code)}"


def kind_of(setting_key: str) -> str:
    if setting_key in EXCLUSION_KEYS:
        return "exclusion"
    sdef = get_catalog().get(setting_key)
    return "asr" if sdef is not None and getattr(sdef, "asr_guid", None) else "av"


def setting_name(setting_key: str) -> str:
    sdef = get_catalog().get(setting_key)
    return (sdef.display_name if sdef else "") or setting_key


def value_text(setting_key: str, entry: str, value: Any) -> str:
    if entry:
        return "Excluded" if value is not None else "Not in effect"
    if value is None:
        return "Not configured"
    return display_value(setting_key, value)


@dataclass
class DeviceEntry:
    setting_key: str
    entry: str
    name: str
    kind: str
    value: str
    source: str
    source_label: str
    intended: str
    intent: str
    attempts: list[dict[str, str]]
    changed_at: Any

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]


def device_entries(
    device: Device,
    *,
    source: str = "",
    mismatches: bool = False,
    kind: str = "",
    defaults: Mapping[str, Any] | None = None,
    hide_defaults: bool = False,
) -> list[DeviceEntry]:
    """The device's effective entries as Defender shows them (sorted: ASR rules, AV settings, exclusions).

    ``defaults``: every setting / ASR rule the view lists with its Windows default (devices.agent
    ``effective_defaults``); the ones the device reports no entry for are listed as configured by *Default*
    (once the device has reported at all). They are computed here, not stored: a row per default per device
    would multiply the table by ~76 for nothing a device said. ``hide_defaults`` leaves out every entry
    configured by *Default* (stored ones included, e.g. exclusions blocked by DisableLocalAdminMerge)."""
    rows = DeviceEffectiveSetting.objects.filter(device=device)
    if source:
        rows = rows.filter(configured_by=source)
    if hide_defaults:
        rows = rows.exclude(configured_by=ConfigSource.DEFAULT)
    if mismatches:
        rows = rows.filter(intent=Intent.DIFFERS)
    out = []
    stored = list(rows.order_by("setting_key_text__text", "entry"))
    show_defaults = bool(defaults) and bool(device.effective_digest)
    if show_defaults and not hide_defaults and not mismatches and source in ("", ConfigSource.DEFAULT):
        configured = set(
            DeviceEffectiveSetting.objects.filter(device=device, entry="").values_list(
                "setting_key", flat=True
            )
        )
        for key, value in defaults.items():
            if key in configured:
                continue
            k = kind_of(key)
            if kind and k != kind:
                continue
            out.append(
                DeviceEntry(
                    key,
                    "",
                    setting_name(key),
                    k,
                    value_text(key, "", value),
                    ConfigSource.DEFAULT,
                    source_label(ConfigSource.DEFAULT),
                    "",
                    Intent.NONE,
                    [],
                    None,
                )
            )
    for row in stored:
        k = kind_of(row.setting_key)
        if kind and k != kind:
            continue
        attempts = [
            {
                "source": source_label(a.get("source", "")),
                "value": value_text(row.setting_key, row.entry, a.get("value")),
                "name": a.get("name") or "",
            }
            for a in row.other_attempts or []
        ]
        out.append(
            DeviceEntry(
                row.setting_key,
                row.entry,
                setting_name(row.setting_key),
                k,
                value_text(row.setting_key, row.entry, row.value),
                row.configured_by,
                source_label(row.configured_by),
                ""
                if row.intent == Intent.NONE
                else value_text(row.setting_key, row.entry, row.intended_value),
                row.intent,
                attempts,
                row.changed_at,
            )
        )
    order = {"asr": 0, "av": 1, "exclusion": 2}
    out.sort(key=lambda e: (order[e.kind], e.name.lower(), e.entry.lower()))
    return out


@dataclass
class DriftItem:
    at: Any
    name: str
    entry: str
    old: str
    new: str
    old_source: str
    source: str
    device_pk: int = 0
    device_name: str = ""


def _drift_item(event: DriftEvent) -> DriftItem:
    return DriftItem(
        event.at,
        setting_name(event.setting_key),
        event.entry,
        value_text(event.setting_key, event.entry, event.old_value),
        value_text(event.setting_key, event.entry, event.new_value),
        source_label(event.old_source) if event.old_source else "—",
        source_label(event.source),
        event.device_id,
    )


def device_drift(device: Device, limit: int = 30) -> list[DriftItem]:
    """The device's newest drift events (index drift_device_at_idx)."""
    return [_drift_item(e) for e in DriftEvent.objects.filter(device=device).order_by("-at", "-id")[:limit]]


# ---------------------------------------------------------------------------------------------------------
# Fleet report
# ---------------------------------------------------------------------------------------------------------


@dataclass
class FleetRow:
    setting_key: str
    entry: str
    name: str
    kind: str
    intended_devices: int = 0  # devices whose policies intend a value
    matches: int = 0
    overridden: dict[str, int] = field(default_factory=dict)  # winning source -> devices (intent differs)
    unmanaged: dict[str, int] = field(default_factory=dict)  # source -> devices configured without our intent
    not_configured: int = 0

    @property
    def overridden_total(self) -> int:
        return sum(self.overridden.values())

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def overridden_list(self) -> list[tuple[str, str, int]]:
        return [(code, source_label(code), n) for code, n in sorted(self.overridden.items()) if n]

    @property
    def unmanaged_list(self) -> list[tuple[str, str, int]]:
        return [(code, source_label(code), n) for code, n in sorted(self.unmanaged.items()) if n]


def _count_rows(user) -> tuple[list[tuple[str, str, str, str, int]], int]:
    """(setting, entry, intent, source, n) and the number of reporting devices, for the person's scope."""
    if scope_group_ids(user) is None:
        rows = list(
            EffectiveSettingCount.objects.exclude(count=0).values_list(
                "setting_key", "entry", "intent", "configured_by", "count"
            )
        )
        reporting = next((r[4] for r in rows if tuple(r[:4]) == REPORTING_KEY), 0)
        return [r for r in rows if tuple(r[:4]) != REPORTING_KEY], reporting
    devices = scoped(Device.objects.all(), user)
    rows = list(
        DeviceEffectiveSetting.objects.filter(device__in=devices)
        .values_list("setting_key", "entry", "intent", "configured_by")
        .annotate(n=Count("*"))
        .order_by()
    )
    reporting = devices.exclude(effective_digest="").count()
    return rows, reporting


def fleet_rows(
    user, *, kind: str = "", only_overridden: bool = False, q: str = "", universe: Iterable[str] = ()
) -> tuple[list[FleetRow], int]:
    """One row per setting / ASR rule / exclusion entry any device reports, plus one per setting of ``universe``
    (every AV setting and ASR rule, devices.agent ``effective_defaults``) that no device reports, and the number
    of reporting devices. "Nothing configured" is the reporting devices minus those where a source configures
    it, from the aggregate counts: defaults are never stored per device."""
    counts, reporting = _count_rows(user)
    by_key: dict[tuple[str, str], FleetRow] = {}
    for key in universe if reporting else ():
        by_key[(key, "")] = FleetRow(key, "", setting_name(key), kind_of(key))
    for key, entry, intent, source, n in counts:
        row = by_key.get((key, entry))
        if row is None:
            row = by_key[(key, entry)] = FleetRow(key, entry, setting_name(key), kind_of(key))
        if intent == Intent.MATCHES:
            row.matches += n
            row.intended_devices += n
        elif intent == Intent.DIFFERS:
            row.intended_devices += n
            row.overridden[source] = row.overridden.get(source, 0) + n
        else:
            row.unmanaged[source] = row.unmanaged.get(source, 0) + n
    out = []
    needle = q.strip().lower()
    for row in by_key.values():
        in_effect = row.intended_devices + sum(
            n for s, n in row.unmanaged.items() if s != ConfigSource.DEFAULT
        )
        row.not_configured = max(0, reporting - in_effect)
        if kind and row.kind != kind:
            continue
        if only_overridden and not row.overridden_total:
            continue
        if needle and needle not in row.name.lower() and needle not in row.entry.lower():
            continue
        out.append(row)
    order = {"asr": 0, "av": 1, "exclusion": 2}
    out.sort(key=lambda r: (order[r.kind], r.name.lower(), r.entry.lower()))
    return out, reporting


def fleet_version(user) -> str:
    """The live version of the fleet report: its counts (the aggregate rows, or the scoped recount)."""
    counts, reporting = _count_rows(user)
    blob = json.dumps([sorted(map(list, counts)), reporting], separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


FLEET_CSV_HEADER = [
    "Setting",
    "Type",
    "Exclusion entry",
    "Devices matching intent",
    "Overridden (all sources)",
    *[f"Overridden by {label}" for code, label in ConfigSource.choices if code != OUR_SOURCE],
    "Configured without intent",
    "Nothing configured",
]


def fleet_csv(rows: list[FleetRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(FLEET_CSV_HEADER)
    for r in rows:
        writer.writerow(
            [
                r.name,
                r.kind_label,
                r.entry,
                r.matches,
                r.overridden_total,
                *[r.overridden.get(code, 0) for code, _ in ConfigSource.choices if code != OUR_SOURCE],
                sum(r.unmanaged.values()),
                r.not_configured,
            ]
        )
    return buffer.getvalue()


FLEET_BUCKETS = ("matches", "overridden", "unmanaged", "not_configured")


def fleet_devices(user, setting_key: str, entry: str, bucket: str, source: str = ""):
    """The devices behind one count of the fleet report (a queryset of devices, scoped)."""
    base = DeviceEffectiveSetting.objects.filter(setting_key=setting_key, entry=entry)
    if bucket == "matches":
        rows = base.filter(intent=Intent.MATCHES)
    elif bucket == "overridden":
        rows = base.filter(intent=Intent.DIFFERS)
        if source:
            rows = rows.filter(configured_by=source)
    elif bucket == "unmanaged":
        rows = base.filter(intent=Intent.NONE)
        if source:
            rows = rows.filter(configured_by=source)
    else:
        in_effect = base.filter(device_id=OuterRef("pk")).filter(
            ~Q(intent=Intent.NONE, configured_by=ConfigSource.DEFAULT)
        )
        windows = Device.objects.exclude(effective_digest="").filter(~Exists(in_effect))
        return scoped(windows, user).order_by("display_name", "pk")
    return scoped(Device.objects.filter(pk__in=rows.values("device_id")), user).order_by("display_name", "pk")


# ---------------------------------------------------------------------------------------------------------
# Honest policy reports: Succeeded, but another source wins on the device
# ---------------------------------------------------------------------------------------------------------


def _delivered(rows, policy_id: int):
    """The effective ``rows`` whose setting this policy delivered: its status row for the same device and setting
    Succeeded.

    A scalar subquery (``(SELECT … LIMIT 1) IS NOT NULL``), not EXISTS. PostgreSQL turns an EXISTS into a
    semi-join, and at a million devices, with statistics that expected a few thousand effective rows, it chose to
    hash every succeeded row of the policy (7 million rows, 3 s) for a page whose effective rows were none. A
    scalar subquery is never pulled up into a join: it stays one probe per effective row, driven from the small
    side, through the status row's primary key (device, policy, setting key). (When that key was a hash index
    beside a device b-tree, the planner combined the device b-tree with the (policy, setting, status) index and
    read all 46,568 entries of the policy's setting for each of 16,542 effective rows: 80 s, "ASR rules -
    Servers" at 1M.)"""
    succeeded = DeviceSettingStatus.objects.filter(
        device_id=OuterRef("device_id"),
        policy_id=policy_id,
        setting_key=OuterRef("setting_key"),
        status="succeeded",
    )
    return rows.alias(delivered=Subquery(succeeded.values("policy_id")[:1])).filter(delivered__isnull=False)


def policy_overrides(policy_id: int, setting_keys=None) -> dict[str, dict[str, int]]:
    """{setting key: {winning source: devices}} where the policy's setting Succeeded but another source wins.

    Driven from the small side: the effective rows whose intent differs (index des_setting_intent_idx), each
    checked against the policy's status row (`_delivered`)."""
    rows = DeviceEffectiveSetting.objects.filter(intent=Intent.DIFFERS).exclude(configured_by=OUR_SOURCE)
    if setting_keys is not None:
        rows = rows.filter(setting_key__in=list(setting_keys))
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for key, source, n in (
        _delivered(rows, policy_id)
        .values_list("setting_key", "configured_by")
        .annotate(n=Count("*"))
        .order_by()
    ):
        out[key][source] = n
    return dict(out)


def device_overrides(device_id: int) -> dict[str, str]:
    """{setting key: winning source} of one device where another source wins over what its policies intend."""
    return dict(
        DeviceEffectiveSetting.objects.filter(device_id=device_id, intent=Intent.DIFFERS)
        .exclude(configured_by=OUR_SOURCE)
        .values_list("setting_key", "configured_by")
    )


def overridden_devices(policy_id: int, setting_key: str) -> dict[int, str]:
    """{device id: winning source} for one policy setting (the View report column)."""
    rows = DeviceEffectiveSetting.objects.filter(setting_key=setting_key, intent=Intent.DIFFERS).exclude(
        configured_by=OUR_SOURCE
    )
    return dict(_delivered(rows, policy_id).values_list("device_id", "configured_by"))


def policy_device_overrides(policy_id: int, device_ids=None) -> dict[int, list[str]]:
    """{device id: [source labels]} of the devices (of ``device_ids``, e.g. one page) where a setting this policy
    delivered is overridden."""
    out: dict[int, set[str]] = defaultdict(set)
    rows = DeviceEffectiveSetting.objects.filter(intent=Intent.DIFFERS).exclude(configured_by=OUR_SOURCE)
    if device_ids is not None:
        rows = rows.filter(device_id__in=list(device_ids))
    for device_id, source in _delivered(rows, policy_id).values_list("device_id", "configured_by"):
        out[device_id].add(source)
    return {d: sorted(source_label(s) for s in sources) for d, sources in out.items()}


def overridden_by_expression(policy_id: int):
    """For the View report CSV (rows of DevicePolicyStatus): "Group Policy; Local admin" - the sources that win
    over a setting this policy delivered (Succeeded) on the row's device, "" where none. One SQL expression so the
    CSV stays a COPY export: each ``device_id IN (...)`` is uncorrelated (driven from the small side, the
    effective rows whose intent differs), so PostgreSQL runs it once as a hashed subplan instead of once per row
    (a correlated EXISTS per row cut the export from ~250,000 to ~27,000 rows/s). Labels sort as the page shows
    them."""
    succeeded = DeviceSettingStatus.objects.filter(
        policy_id=policy_id,
        device_id=OuterRef("device_id"),
        setting_key=OuterRef("setting_key"),
        status="succeeded",
    )
    overridden = (
        DeviceEffectiveSetting.objects.filter(intent=Intent.DIFFERS)
        .exclude(configured_by=OUR_SOURCE)
        .filter(Exists(succeeded))
    )
    parts = []
    for code, label in sorted(
        ((c, lbl) for c, lbl in SOURCE_LABELS.items() if c != OUR_SOURCE), key=lambda item: item[1]
    ):
        ids = overridden.filter(configured_by=code).values("device_id")
        parts.append(Case(When(device_id__in=ids, then=Value("; " + str(label))), default=Value("")))
    return Case(
        When(
            device_id__in=overridden.values("device_id"),
            then=Substr(Concat(*parts, output_field=TextField()), 3),
        ),
        default=Value(""),
        output_field=TextField(),
    )
