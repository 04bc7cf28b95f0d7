"""Status ingest: turn one device's resolution and agent report into status rows, and write only what changed.

Two steps, so the device channel can decide "nothing changed" without touching the database:

1. :func:`plan_device` (pure, no database): from the engine's :class:`~policies.engine.Resolution` and the
   per-setting reports of the device, the rows the device *should* have: one :class:`SettingRow` per
   (policy, setting key) - a setting configured by several policies (merged or conflicting) maps back to every
   one of them - and one :class:`PolicyRow` per targeted policy, rolled up worst-status-wins. Its ``digest``
   identifies the whole result; the device keeps the digest of what was last written.
2. :func:`ingest` (inside the caller's transaction): compares the plans of many devices with their existing rows
   and deletes / inserts only the rows that differ, then moves the aggregates by the same deltas. Replaying a
   report therefore changes nothing, and the aggregates always equal a recount of the rows.

Aggregates are moved with one ``INSERT … ON CONFLICT … DO UPDATE SET count = count + excluded.count`` per table
(the set-based form of an ``F("count") + delta`` update), sorted by key so that concurrent writers lock the
counter rows in the same order and never deadlock; it is the last statement before commit, so the hot counter
rows are locked for the shortest time.

Who writes status rows: only this module inserts setting status and effective setting rows, and only for devices
whose row lock its caller holds (a check-in: ``SELECT … FOR UPDATE`` of its leased devices, or the device
channel's compare-and-set UPDATE; a newly managed device: ``reports.pending.initialise_device``). It reads the
rows a device has after taking the lock, so two writers of one device run one after the other and the second
sees the first's rows. That is what keeps a device's rows one per key on PostgreSQL, where no b-tree of the
whole key is kept (migration reports 0015); :func:`duplicate_keys` finds any that a bug would let through.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from django.db import OperationalError, connection, transaction
from django.db.models import BooleanField, Count
from django.db.models.expressions import RawSQL

from console.interned import canonical_json, store_texts, text_key
from devices.models import Device
from policies.engine import STATUS_CONFLICT, STATUS_NOT_APPLICABLE, Resolution, worst_status
from policies.models import Policy

from . import drift as drift_alerts
from .models import (
    CHANNEL_CODES,
    INTENT_CODES,
    REPORTING_COUNTER,
    STATUS_CODES,
    STATUSES,
    DeviceEffectiveSetting,
    DevicePolicyStatus,
    DeviceSettingStatus,
    DriftEvent,
    EffectiveSettingCount,
    Intent,
    PolicySettingStatusCount,
    PolicyStatusCount,
    Status,
    message_key,
)

PENDING_MESSAGE = "Waiting for the device to check in and report."
MAX_MESSAGE = 1000
_CHUNK = 2000


class ReportedSetting(NamedTuple):
    """What the device says about one setting it was asked to apply."""

    status: str  # succeeded | error | pending
    value: Any
    error_code: int | None
    message: str


def short_digest(blob: str) -> str:
    """The first 128 bits of the blob's SHA-256, as 32 hex digits: what a device row keeps to tell "nothing
    changed" (its status plan's and its effective report's). A collision needs 2**64 plans of one device; the
    other 32 digits cost the devices table 91 bytes a device at 100,000 devices (`bench_checkins`: its rows are
    kept half-full, fillfactor 50, and a check-in writes a new version of the row)."""
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SettingRow:
    status: str
    value: Any
    error_code: int | None
    message: str
    conflict_policy_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyRow:
    status: str
    counts: tuple[int, int, int, int, int]  # in STATUSES order: succeeded, error, conflict, n/a, pending
    message: str


@dataclass
class DevicePlan:
    """The rows one device should have. ``scope``: only these policies' rows are compared (None = all)."""

    device_id: int
    channel: str
    policies: dict[int, PolicyRow]
    settings: dict[tuple[int, str], SettingRow]
    scope: frozenset[int] | None = None

    @cached_property
    def digest(self) -> str:
        blob = _DIGEST_ENCODER.encode(
            [
                self.channel,
                [[pid, *row_key(row)] for pid, row in sorted(self.policies.items())],
                [[pid, key, *setting_key(row)] for (pid, key), row in sorted(self.settings.items())],
            ]
        )
        return short_digest(blob)

    def for_device(self, device_id: int) -> DevicePlan:
        """The same rows for another device (rows are immutable and shared; the digest is carried over)."""
        plan = DevicePlan(device_id, self.channel, self.policies, self.settings, self.scope)
        plan.__dict__["digest"] = self.digest
        return plan

    @property
    def result(self) -> str:
        """Worst status over the device's policies ("" when no policy targets it)."""
        return worst_status((row.status for row in self.policies.values()), default="")


def row_key(row: PolicyRow) -> tuple:
    return (row.status, list(row.counts), row.message)


def setting_key(row: SettingRow) -> tuple:
    """What a stored setting row is compared by; the message by its key (reports.models.message_key)."""
    return (row.status, row.value, row.error_code, message_key(row.message), list(row.conflict_policy_ids))


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def plan_device(
    device_id: int,
    channel: str,
    resolution: Resolution,
    reports: Mapping[str, ReportedSetting] | None,
    values_by_policy: Mapping[int, Mapping[str, Any]],
    *,
    scope: Iterable[int] | None = None,
) -> DevicePlan:
    """The status rows of one device. ``reports=None``: nothing reported yet, applied settings are Pending."""
    scope_set = frozenset(scope) if scope is not None else None
    policies: dict[int, PolicyRow] = {}
    settings: dict[tuple[int, str], SettingRow] = {}
    for pid, statuses in resolution.per_policy_settings.items():
        if scope_set is not None and pid not in scope_set:
            continue
        outcome = resolution.policies[pid]
        values = values_by_policy.get(pid, {})
        counts = dict.fromkeys(STATUSES, 0)
        for key, decided in statuses.items():
            outcome_setting = resolution.settings[key]
            if decided == STATUS_CONFLICT:
                involved = set(outcome_setting.conflicting_values) or set(outcome_setting.sources)
                row = SettingRow(
                    Status.CONFLICT,
                    outcome_setting.conflicting_values.get(pid, values.get(key)),
                    None,
                    _clip(outcome_setting.reason),
                    tuple(sorted(involved - {pid})),
                )
            elif decided == STATUS_NOT_APPLICABLE:
                reason = outcome.reason if not outcome.applicable else outcome_setting.reason
                row = SettingRow(Status.NOT_APPLICABLE, values.get(key), None, _clip(reason))
            else:
                report = reports.get(key) if reports is not None else None
                if report is None:
                    row = SettingRow(Status.PENDING, outcome_setting.value, None, PENDING_MESSAGE)
                else:
                    row = SettingRow(report.status, report.value, report.error_code, _clip(report.message))
            settings[(pid, key)] = row
            counts[row.status] += 1
        default = Status.SUCCEEDED if outcome.applicable else Status.NOT_APPLICABLE
        status = worst_status((s for s, n in counts.items() if n), default=default)
        policies[pid] = PolicyRow(status, tuple(counts[s] for s in STATUSES), _clip(outcome.reason))
    return DevicePlan(device_id, channel, policies, settings, scope_set)


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    policies_changed: Counter = field(default_factory=Counter)  # device id -> policy rows written/deleted
    settings_changed: Counter = field(default_factory=Counter)  # device id -> setting rows written/deleted
    rows_written: int = 0


def _existing_policy_rows(device_ids: Sequence[int]) -> dict[int, dict[int, tuple[int, tuple]]]:
    found: dict[int, dict[int, tuple[int, tuple]]] = defaultdict(dict)
    for chunk in _chunks(device_ids, 500):
        rows = DevicePolicyStatus.objects.filter(device_id__any=chunk).values_list(
            "id",
            "device_id",
            "policy_id",
            "status",
            "succeeded_count",
            "error_count",
            "conflict_count",
            "not_applicable_count",
            "pending_count",
            "message",
            "channel",
        )
        for rid, did, pid, status, s, e, c, na, p, message, channel in rows:
            found[did][pid] = (rid, (status, [s, e, c, na, p], message), channel)
    return found


def _existing_setting_rows(device_ids: Sequence[int]) -> dict[int, dict[tuple[int, str], tuple]]:
    found: dict[int, dict[tuple[int, str], tuple]] = defaultdict(dict)
    for chunk in _chunks(device_ids, 500):
        rows = DeviceSettingStatus.objects.filter(device_id__any=chunk).values_list(
            "device_id",
            "policy_id",
            "setting_key",
            "status",
            "value",
            "error_code",
            "message_ref_id",
            "conflict_policy_ids",
        )
        for did, pid, key, status, value, code, message, conflicts in rows:
            found[did][(pid, key)] = (status, value, code, message, list(conflicts or []))
    return found


def live_policy_ids(policy_ids: Iterable[int]) -> set[int]:
    """The ids that still exist, locked against deletion until commit (PostgreSQL FOR KEY SHARE).

    Without this a policy deleted while a check-in is being written would fail the whole batch at commit.
    """
    ids = sorted(set(policy_ids))
    if not ids:
        return set()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {Policy._meta.db_table} WHERE id = ANY(%s) FOR KEY SHARE",
                [ids],
            )
            return {row[0] for row in cursor.fetchall()}
    return set(Policy.objects.filter(pk__in=ids).values_list("pk", flat=True))


def ingest(plans: Sequence[DevicePlan], now) -> IngestResult:
    """Write the difference between ``plans`` and the existing rows. Call inside ``transaction.atomic``.

    Devices must be locked by the caller (their check-in lease / row lock) so no one else writes their rows.
    """
    result = IngestResult()
    if not plans:
        return result
    device_ids = [plan.device_id for plan in plans]
    old_policies = _existing_policy_rows(device_ids)
    old_settings = _existing_setting_rows(device_ids)
    alive = live_policy_ids(
        {pid for plan in plans for pid in plan.policies}
        | {pid for rows in old_policies.values() for pid in rows}
        | {pid for rows in old_settings.values() for pid, _ in rows}
    )

    policy_deltas: Counter = Counter()
    setting_deltas: Counter = Counter()
    delete_policy_ids: list[int] = []
    delete_setting_keys: list[tuple[int, int, str]] = []  # primary keys: (device, policy, setting key)
    new_policy_rows: list[tuple] = []
    new_setting_rows: list[tuple] = []
    new_texts: set[str | None] = set()

    for plan in plans:
        did = plan.device_id
        scope = plan.scope
        existing_p = old_policies.get(did, {})
        existing_s = old_settings.get(did, {})
        for pid, (rid, old, channel) in existing_p.items():
            if (scope is not None and pid not in scope) or pid not in alive:
                continue  # out of scope, or its policy is being deleted (the rows go with it)
            row = plan.policies.get(pid)
            if row is None or list(row_key(row)) != list(old) or channel != plan.channel:
                delete_policy_ids.append(rid)
                policy_deltas[(pid, old[0])] -= 1
                result.policies_changed[did] += 1
        for (pid, key), old in existing_s.items():
            if (scope is not None and pid not in scope) or pid not in alive:
                continue
            row = plan.settings.get((pid, key))
            if row is None or list(setting_key(row)) != list(old):
                delete_setting_keys.append((did, pid, key))
                setting_deltas[(pid, key, old[0])] -= 1
                result.settings_changed[did] += 1
        for pid, row in plan.policies.items():
            if (scope is not None and pid not in scope) or pid not in alive:
                continue  # a row out of scope is neither compared nor deleted above: never insert it either
            old_entry = existing_p.get(pid)
            if (
                old_entry is not None
                and list(row_key(row)) == list(old_entry[1])
                and old_entry[2] == plan.channel
            ):
                continue
            new_policy_rows.append((did, pid, row.status, plan.channel, *row.counts, row.message, now))
            new_texts.add(row.message)
            policy_deltas[(pid, row.status)] += 1
            if old_entry is None:
                result.policies_changed[did] += 1
        for (pid, key), row in plan.settings.items():
            if (scope is not None and pid not in scope) or pid not in alive:
                continue
            old_entry = existing_s.get((pid, key))
            if old_entry is not None and list(setting_key(row)) == list(old_entry):
                continue
            value_text = canonical_json(row.value) if row.value is not None else None
            new_texts.update((row.message, key, value_text))
            new_setting_rows.append(
                (
                    did,
                    pid,
                    text_key(key),
                    text_key(value_text) if value_text is not None else None,
                    STATUS_CODES[row.status],  # the column holds the status's code (console.compact)
                    row.error_code,
                    message_key(row.message),
                    canonical_json(list(row.conflict_policy_ids)) if row.conflict_policy_ids else "[]",
                )
            )
            setting_deltas[(pid, key, row.status)] += 1
            if old_entry is None:
                result.settings_changed[did] += 1

    # A changed row is rewritten (delete + insert): one set-based statement each instead of a CASE per column.
    for chunk in _chunks(delete_setting_keys, _CHUNK):
        result.rows_written += with_keys(DeviceSettingStatus.objects.all(), chunk).delete()[0]
    for chunk in _chunks(delete_policy_ids, _CHUNK):
        result.rows_written += DevicePolicyStatus.objects.filter(pk__in=chunk).delete()[0]
    if new_texts - {None, ""}:  # the texts first: a row holds the keys of its messages, setting key and value
        store_texts(text for text in new_texts if text)
    if new_policy_rows:  # the device's name goes with its row (View report reads pages in name order)
        names = device_names({row[0] for row in new_policy_rows})
        new_policy_rows = [(*row, names.get(row[0], "")) for row in new_policy_rows]
    result.rows_written += insert_rows(
        DevicePolicyStatus, POLICY_COLUMNS, keyed_policy_rows(new_policy_rows, stored=True)
    )
    result.rows_written += insert_rows(DeviceSettingStatus, SETTING_COLUMNS, new_setting_rows)
    result.rows_written += apply_deltas(policy_deltas, setting_deltas)
    return result


POLICY_COLUMNS = (
    "device_id",
    "policy_id",
    "status",
    "channel",
    "succeeded_count",
    "error_count",
    "conflict_count",
    "not_applicable_count",
    "pending_count",
    "message",
    "last_reported_at",
    "device_name",
)
SETTING_COLUMNS = (
    "device_id",
    "policy_id",
    "setting_key",
    "value",
    "status",
    "error_code",
    "message_key",
    "conflict_policy_ids",
)


_DIGEST_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)
_ENCODER = json.JSONEncoder(separators=(",", ":"))
# Callables told about every COPY (statements the connection's execute wrappers don't see): f(rows).
COPY_OBSERVERS: list = []


def device_names(device_ids: Iterable[int]) -> dict[int, str]:
    """Device id -> name, for the policy status rows about to be written."""
    names: dict[int, str] = {}
    for chunk in _chunks(sorted(device_ids), 500):
        names.update(Device.objects.filter(pk__any=chunk).values_list("pk", "display_name"))
    return names


def on_device_saved(sender, instance, created: bool = False, update_fields=None, **kwargs) -> None:
    """A device saved with a (possibly) new name: its policy status rows take the name (one indexed update,
    nothing written when the name is unchanged). Check-ins save named fields without the name: no query."""
    if created or (update_fields is not None and "display_name" not in update_fields):
        return
    DevicePolicyStatus.objects.filter(device_id=instance.pk).exclude(
        device_name=instance.display_name
    ).update(device_name=instance.display_name)


def with_keys(queryset, keys: Sequence[tuple]):
    """The rows of ``queryset`` whose (composite) primary key is one of ``keys`` (tuples of Python values).

    On PostgreSQL the keys go as one array a column, joined with the primary key through ``unnest``: written as
    ``(device_id, policy_id, setting_key) IN ((…), …)`` (``pk__in``), 2,000 keys took 351 ms to plan (an OR of
    2,000 ANDs) and 75 ms to run."""
    if connection.vendor != "postgresql":
        return queryset.filter(pk__in=keys)
    fields = queryset.model._meta.pk.fields
    qn = connection.ops.quote_name
    arrays = [
        [f.get_db_prep_value(value, connection) for value in values]
        for f, values in zip(fields, zip(*keys, strict=True), strict=True)
    ]
    sql = "({}) IN (SELECT * FROM unnest({}))".format(
        ", ".join(qn(f.column) for f in fields),
        ", ".join(f"%s::{f.db_parameters(connection)['type']}[]" for f in fields),  # the columns' types
    )
    return queryset.filter(RawSQL(sql, arrays, output_field=BooleanField()))


def insert_rows(model, columns: Sequence[str], rows: Sequence[tuple]) -> int:
    """Insert plain tuples as the table stores them (JSON columns encoded, interned texts as their keys, coded
    choices as their codes): COPY on PostgreSQL, executemany elsewhere.

    Django's bulk_create prepares every value through its field (and builds a model per row); at millions of
    status rows that, not the database, was the cost of a check-in.
    """
    if not rows:
        return 0
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    names = ", ".join(qn(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The raw cursor's COPY is not wrapped by Django: a duplicate must still be django.db's IntegrityError.
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            for observer in COPY_OBSERVERS:
                observer(len(rows))
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            for chunk in _chunks(rows, _CHUNK):
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", chunk)
    return len(rows)


_POLICY_STATUS = POLICY_COLUMNS.index("status")
_POLICY_CHANNEL = POLICY_COLUMNS.index("channel")
_POLICY_MESSAGE = POLICY_COLUMNS.index("message")
assert _POLICY_CHANNEL == _POLICY_STATUS + 1  # keyed_policy_rows replaces the two together
_STATUS_OF_CODE = DevicePolicyStatus._meta.get_field("status").texts  # the field's own code -> text


def keyed_policy_rows(rows: Sequence[tuple], stored: bool = False) -> list[tuple]:
    """``POLICY_COLUMNS`` tuples as the table stores them: the status and the channel as their codes
    (console.compact), the message's key in the row, its text stored first (console.interned; one INSERT and one
    SELECT, in the caller's transaction) unless the caller did (``stored``)."""
    if not stored:
        store_texts({row[_POLICY_MESSAGE] for row in rows if row[_POLICY_MESSAGE]})
    return [
        (
            *row[:_POLICY_STATUS],
            STATUS_CODES[row[_POLICY_STATUS]],
            CHANNEL_CODES[row[_POLICY_CHANNEL]],
            *row[_POLICY_CHANNEL + 1 : _POLICY_MESSAGE],
            text_key(row[_POLICY_MESSAGE]),
            *row[_POLICY_MESSAGE + 1 :],
        )
        for row in rows
    ]


def insert_missing_policy_rows(rows: Sequence[tuple]) -> list[tuple[int, int, str]]:
    """Insert policy rows (``POLICY_COLUMNS`` tuples) that don't exist yet; (device, policy, status) of those
    actually inserted.

    ``INSERT … ON CONFLICT (device_id, policy_id) DO NOTHING RETURNING``: a row some other writer added first
    is skipped, not an error, and the caller moves the aggregates by what the database says it inserted, so
    marking the same devices twice (a task redelivered, two re-evaluations at once) counts each row once.
    """
    if not rows:
        return []
    rows = keyed_policy_rows(rows)
    qn = connection.ops.quote_name
    table = qn(DevicePolicyStatus._meta.db_table)
    names = ", ".join(qn(c) for c in POLICY_COLUMNS)
    placeholder = "(" + ", ".join(["%s"] * len(POLICY_COLUMNS)) + ")"
    moment = POLICY_COLUMNS.index("last_reported_at")
    inserted: list[tuple[int, int, str]] = []
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, 500):
            params: list[Any] = []
            for row in chunk:
                values = list(row)
                values[moment] = connection.ops.adapt_datetimefield_value(values[moment])
                params.extend(values)
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([placeholder] * len(chunk))} "
                f"ON CONFLICT ({qn('device_id')}, {qn('policy_id')}) DO NOTHING "
                f"RETURNING {qn('device_id')}, {qn('policy_id')}, {qn('status')}",
                params,
            )
            inserted.extend((did, pid, _STATUS_OF_CODE[code]) for did, pid, code in cursor.fetchall())
    return inserted


def remove_devices(device_ids: Iterable[int]) -> int:
    """Delete every status row of these devices (management lost) and take them out of the aggregates."""
    removed = 0
    for chunk in _chunks(sorted(set(device_ids)), 500):
        with transaction.atomic():
            list(Device.objects.select_for_update().filter(pk__in=chunk).order_by("pk").values_list("pk"))
            policy_deltas: Counter = Counter()
            setting_deltas: Counter = Counter()
            for pid, status in DevicePolicyStatus.objects.filter(device_id__in=chunk).values_list(
                "policy_id", "status"
            ):
                policy_deltas[(pid, status)] -= 1
            for pid, key, status in DeviceSettingStatus.objects.filter(device_id__in=chunk).values_list(
                "policy_id", "setting_key", "status"
            ):
                setting_deltas[(pid, key, status)] -= 1
            removed += DeviceSettingStatus.objects.filter(device_id__in=chunk).delete()[0]
            removed += DevicePolicyStatus.objects.filter(device_id__in=chunk).delete()[0]
            apply_deltas(policy_deltas, setting_deltas)
            removed += remove_effective(chunk)
    return removed


def mark_pending(
    device_ids: Iterable[int],
    policy_ids: Iterable[int],
    shared_keys: Iterable[str] = (),
    *,
    changed_at=None,
) -> int:
    """Mark these devices Pending for these policies until they check in again (fast, set-based).

    Every setting row of the given policies on the devices becomes Pending; so do rows of *other* policies for
    ``shared_keys`` (settings a deleted policy configured: a conflict may be gone, a merge may shrink). Each
    touched policy row becomes Pending with counts recomputed from its setting rows, the aggregates move by the
    same deltas, and the devices' stored digest is cleared so their next check-in rewrites their status.
    With ``changed_at``, devices that have checked in since then are left alone: their rows already reflect the
    change (a queued task can run late). Returns the number of status rows changed.
    """
    policies = sorted(set(policy_ids))
    keys = sorted(set(shared_keys))
    if not policies and not keys:
        return 0
    changed = 0
    for chunk in _chunks(sorted(set(device_ids)), 200):
        for attempt in range(3):
            try:
                with transaction.atomic():
                    changed += _mark_pending_chunk(Device, chunk, policies, keys, changed_at)
                break
            except _RETRYABLE as exc:  # pragma: no cover - only under real concurrency
                if attempt == 2 or not is_retryable(exc):
                    raise
    return changed


def _mark_pending_chunk(Device, chunk: list[int], policies: list[int], keys: list[str], changed_at) -> int:
    from django.db.models import Q

    # Lock order everywhere: device rows, then status rows, then counters.
    devices = Device.objects.select_for_update().filter(pk__in=chunk).order_by("pk")
    if changed_at is not None:
        devices = devices.filter(Q(last_checkin_at__isnull=True) | Q(last_checkin_at__lt=changed_at))
    chunk = list(devices.values_list("pk", flat=True))
    if not chunk:
        return 0
    Device.objects.filter(pk__in=chunk).update(desired_fingerprint="")
    where = Q(policy_id__in=policies)
    if keys:
        where |= Q(setting_key__in=keys)
    rows = list(
        DeviceSettingStatus.objects.select_for_update()
        .filter(where, device_id__in=chunk)
        .exclude(status=Status.PENDING)
        .values_list("device_id", "policy_id", "setting_key", "status")
    )
    setting_deltas: Counter = Counter()
    touched: set[tuple[int, int]] = {(did, pid) for did, pid, _, _ in rows}
    for _, pid, key, status in rows:
        setting_deltas[(pid, key, status)] -= 1
        setting_deltas[(pid, key, Status.PENDING)] += 1
    for keys in _chunks([row[:3] for row in rows], _CHUNK):
        with_keys(DeviceSettingStatus.objects.all(), keys).update(status=Status.PENDING, error_code=None)

    policy_rows = list(
        DevicePolicyStatus.objects.select_for_update()
        .filter(device_id__in=chunk, policy_id__in=policies)
        .values_list("id", "device_id", "policy_id", "status")
    )
    other_pairs = touched - {(did, pid) for _, did, pid, _ in policy_rows}
    if other_pairs:
        other_pids = {pid for _, pid in other_pairs}
        for row in (
            DevicePolicyStatus.objects.select_for_update()
            .filter(device_id__in=chunk, policy_id__in=other_pids)
            .values_list("id", "device_id", "policy_id", "status")
        ):
            if (row[1], row[2]) in other_pairs:
                policy_rows.append(row)
    if not policy_rows and not rows:
        return 0
    counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
    pairs_pids = {pid for _, _, pid, _ in policy_rows}
    for did, pid, status in DeviceSettingStatus.objects.filter(
        device_id__in=chunk, policy_id__in=pairs_pids
    ).values_list("device_id", "policy_id", "status"):
        counts[(did, pid)][status] += 1
    policy_deltas: Counter = Counter()
    updates = []
    for rid, did, pid, status in policy_rows:
        c = counts.get((did, pid), Counter())
        policy_deltas[(pid, status)] -= 1
        policy_deltas[(pid, Status.PENDING)] += 1
        updates.append(
            DevicePolicyStatus(
                pk=rid,
                status=Status.PENDING,
                succeeded_count=c[Status.SUCCEEDED],
                error_count=c[Status.ERROR],
                conflict_count=c[Status.CONFLICT],
                not_applicable_count=c[Status.NOT_APPLICABLE],
                pending_count=c[Status.PENDING],
            )
        )
    if updates:
        DevicePolicyStatus.objects.bulk_update(
            updates,
            [
                "status",
                "succeeded_count",
                "error_count",
                "conflict_count",
                "not_applicable_count",
                "pending_count",
            ],
            batch_size=500,
        )
    apply_deltas(policy_deltas, setting_deltas)
    return len(rows) + len(updates)


# ---------------------------------------------------------------------------------------------------------
# Aggregates
# ---------------------------------------------------------------------------------------------------------


def apply_deltas(policy_deltas: Mapping[tuple, int], setting_deltas: Mapping[tuple, int]) -> int:
    """Move the counters by these deltas (sorted: a fixed lock order). Returns the counter rows touched."""
    written = 0
    p_rows = sorted((k, v) for k, v in policy_deltas.items() if v)
    s_rows = sorted((k, v) for k, v in setting_deltas.items() if v)
    if p_rows:
        written += _upsert(PolicyStatusCount, ("policy_id", "status"), p_rows)
    if s_rows:
        written += _upsert(PolicySettingStatusCount, ("policy_id", "setting_key", "status"), s_rows)
    return written


def _upsert(model, key_columns: tuple[str, ...], rows: list[tuple[tuple, int]]) -> int:
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(c) for c in (*key_columns, "count"))
    conflict = ", ".join(qn(c) for c in key_columns)
    placeholder = "(" + ", ".join(["%s"] * (len(key_columns) + 1)) + ")"
    with connection.cursor() as cursor:
        for chunk in _chunks(rows, 500):
            sql = (
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholder] * len(chunk))} "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {qn('count')} = {table}.{qn('count')} + "
                f"excluded.{qn('count')}"
            )
            params: list[Any] = []
            for key, delta in chunk:
                params.extend((*key, delta))
            cursor.execute(sql, params)
    return len(rows)


def duplicate_keys(limit: int = 100) -> dict[str, list[tuple]]:
    """Keys held by more than one setting status or effective setting row (a full scan: for checks, not pages)."""
    found: dict[str, list[tuple]] = {}
    for model, names in (
        (DeviceSettingStatus, ("device_id", "policy_id", "setting_key")),
        (DeviceEffectiveSetting, ("device_id", "setting_key", "entry")),
    ):
        found[model._meta.model_name] = list(
            model.objects.values_list(*names).annotate(n=Count("*")).filter(n__gt=1).order_by()[:limit]
        )
    return found


def recount() -> tuple[dict[tuple, int], dict[tuple, int]]:
    """The exact counts from the rows (for checks and repair): ({(policy, status): n}, {(policy, key, status): n})."""
    policy = {
        (r["policy_id"], r["status"]): r["n"]
        for r in DevicePolicyStatus.objects.values("policy_id", "status").annotate(n=Count("id")).order_by()
    }
    setting = {
        (r["policy_id"], r["setting_key"], r["status"]): r["n"]
        for r in DeviceSettingStatus.objects.values("policy_id", "setting_key", "status")
        .annotate(n=Count("*"))
        .order_by()
    }
    return policy, setting


def stored_counts() -> tuple[dict[tuple, int], dict[tuple, int]]:
    """The aggregates as stored, without zero rows (comparable with :func:`recount`)."""
    policy = {
        (pid, status): n
        for pid, status, n in PolicyStatusCount.objects.exclude(count=0).values_list(
            "policy_id", "status", "count"
        )
    }
    setting = {
        (pid, key, status): n
        for pid, key, status, n in PolicySettingStatusCount.objects.exclude(count=0).values_list(
            "policy_id", "setting_key", "status", "count"
        )
    }
    return policy, setting


@transaction.atomic
def rebuild_aggregates() -> None:
    """Repair: recompute every counter from the rows (never needed when all writes go through this module)."""
    policy, setting = recount()
    PolicyStatusCount.objects.all().delete()
    PolicySettingStatusCount.objects.all().delete()
    PolicyStatusCount.objects.bulk_create(
        [PolicyStatusCount(policy_id=p, status=s, count=n) for (p, s), n in policy.items()], batch_size=_CHUNK
    )
    PolicySettingStatusCount.objects.bulk_create(
        [
            PolicySettingStatusCount(policy_id=p, setting_key=k, status=s, count=n)
            for (p, k, s), n in setting.items()
        ],
        batch_size=_CHUNK,
    )


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def _chunks(items: Sequence, size: int):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


_RETRYABLE = (OperationalError,)


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure (PostgreSQL) or a busy database (SQLite): safe to run again."""
    cause = exc.__cause__ or exc
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if code in {"40P01", "40001"}:
        return True
    return "locked" in str(exc).lower()


# ---------------------------------------------------------------------------------------------------------
# Effective settings (issue 15): plan from the device's effective report, write only what changed, drift
# ---------------------------------------------------------------------------------------------------------

MAX_EFFECTIVE_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class EffectiveRow:
    value: Any
    configured_by: str
    other_attempts: tuple[tuple[str, Any, str], ...]  # (source, value, name)
    intended: Any
    intent: str


def same_value(a: Any, b: Any) -> bool:
    """Flat values compare as the device compares them: case-insensitive text, lists item by item."""
    if isinstance(a, list) or isinstance(b, list):
        if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b):
            return False
        return all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is b
    return str(a).lower() == str(b).lower()


def intent_of(setting_key: str, entry: str, value: Any, desired: Mapping[str, Any]) -> tuple[Any, str]:
    """(intended value, Intent) of one effective entry against the device's desired state."""
    intended = desired.get(setting_key)
    if intended is None:
        return None, Intent.NONE
    if entry:
        items = intended if isinstance(intended, list) else [intended]
        if not any(str(item).lower() == entry.lower() for item in items):
            return None, Intent.NONE
        return entry, (Intent.MATCHES if value is not None else Intent.DIFFERS)
    return intended, (Intent.MATCHES if same_value(value, intended) else Intent.DIFFERS)


@dataclass
class EffectivePlan:
    rows: dict[tuple[str, str], EffectiveRow]

    @cached_property
    def digest(self) -> str:
        blob = _DIGEST_ENCODER.encode(
            [
                [key, entry, row.value, row.configured_by, [list(a) for a in row.other_attempts], row.intended,
                 row.intent]
                for (key, entry), row in sorted(self.rows.items())
            ]
        )  # fmt: skip
        return short_digest(blob)


def plan_effective(
    reported: Iterable[tuple[str, str, Any, str, Sequence[tuple[str, Any, str]]]], desired: Mapping[str, Any]
) -> EffectivePlan:
    """The effective rows of one device from its report: (setting, entry, value, source, other attempts)."""
    rows: dict[tuple[str, str], EffectiveRow] = {}
    for key, entry, value, source, attempts in reported:
        intended, intent = intent_of(key, entry, value, desired)
        rows[(key, entry)] = EffectiveRow(value, source, tuple(tuple(a) for a in attempts), intended, intent)
    return EffectivePlan(rows)


EFFECTIVE_COLUMNS = (
    "device_id",
    "setting_key",
    "entry",
    "value",
    "configured_by",
    "other_attempts",
    "intended_value",
    "intent",
    "changed_at",
)
DRIFT_COLUMNS = ("device_id", "setting_key", "entry", "old_value", "new_value", "old_source", "source", "at")


def _attempts_json(attempts: tuple[tuple[str, Any, str], ...]) -> str:
    if not attempts:  # nearly every entry: no other source tried to set it
        return "[]"
    return _ENCODER.encode([{"source": s, "value": v, "name": n} for s, v, n in attempts])


def _row_tuple(row: EffectiveRow) -> tuple:
    return (row.value, row.configured_by, [list(a) for a in row.other_attempts], row.intended, row.intent)


def ingest_effective(plans: Sequence[tuple[int, EffectivePlan, bool]], now) -> tuple[int, int]:
    """Write the difference between each device's effective plan and its rows; a changed value or source is a
    drift event (not on a device's first report: that is its baseline). ``plans``: (device id, plan, first).
    Returns (rows written, drift events). Call inside the caller's transaction, devices locked."""
    if not plans:
        return 0, 0
    existing: dict[int, dict[tuple[str, str], tuple]] = defaultdict(dict)
    for chunk in _chunks([p[0] for p in plans], 500):
        for did, key, entry, value, source, attempts, intended, intent in (
            DeviceEffectiveSetting.objects.filter(device_id__any=chunk).values_list(
                "device_id", "setting_key", "entry", "value", "configured_by", "other_attempts",
                "intended_value", "intent",
            )
        ):  # fmt: skip
            flat = [[a.get("source"), a.get("value"), a.get("name", "")] for a in attempts or []]
            existing[did][(key, entry)] = (value, source, flat, intended, intent)
    deltas: Counter = Counter()
    delete_keys: list[tuple[int, str, str]] = []  # primary keys: (device, setting key, entry)
    new_rows: list[tuple] = []
    drift: list[tuple] = []
    new_keys: set[str] = set()
    for did, plan, first in plans:
        if first:
            deltas[REPORTING_COUNTER] += 1
        old_rows = existing.get(did, {})
        for (key, entry), old in old_rows.items():
            row = plan.rows.get((key, entry))
            if row is None or list(_row_tuple(row)) != list(old):
                delete_keys.append((did, key, entry))
                deltas[(key, entry, old[4], old[1])] -= 1
            if row is None and not first:
                drift.append(
                    (did, key, entry, canonical_json(old[0]), canonical_json(None), old[1], "default", now)
                )
        for (key, entry), row in plan.rows.items():
            found = old_rows.get((key, entry))
            if found is not None and list(_row_tuple(row)) == list(found):
                continue
            value_text = canonical_json(row.value) if row.value is not None else None
            intended_text = canonical_json(row.intended) if row.intended is not None else None
            new_rows.append(
                (did, text_key(key), entry, text_key(value_text), row.configured_by,
                 _attempts_json(row.other_attempts), text_key(intended_text), INTENT_CODES[row.intent], now)
            )  # fmt: skip
            new_keys.update((key, value_text, intended_text))
            deltas[(key, entry, row.intent, row.configured_by)] += 1
            if first:
                continue
            if found is None:
                drift.append(
                    (
                        did,
                        key,
                        entry,
                        canonical_json(None),
                        canonical_json(row.value),
                        "",
                        row.configured_by,
                        now,
                    )
                )
            elif not same_value(found[0], row.value) or found[1] != row.configured_by:
                drift.append(
                    (
                        did,
                        key,
                        entry,
                        canonical_json(found[0]),
                        canonical_json(row.value),
                        found[1],
                        row.configured_by,
                        now,
                    )
                )
    written = 0
    for chunk in _chunks(delete_keys, _CHUNK):
        written += with_keys(DeviceEffectiveSetting.objects.all(), chunk).delete()[0]
    store_texts(new_keys - {None})  # a row holds the keys of its setting key and values (console.interned)
    written += insert_rows(DeviceEffectiveSetting, EFFECTIVE_COLUMNS, new_rows)
    written += insert_rows(DriftEvent, DRIFT_COLUMNS, drift)
    drift_alerts.announce_rows(drift)  # the SOC webhook hears of protected drift after commit (reports.drift)
    rows = sorted((k, v) for k, v in deltas.items() if v)
    if rows:
        written += _upsert(EffectiveSettingCount, ("setting_key", "entry", "intent", "configured_by"), rows)
    return written, len(drift)


def remove_effective(device_ids: Sequence[int]) -> int:
    """Delete the effective rows of these devices and take them out of the counts (drift history stays)."""
    deltas: Counter = Counter()
    for key, entry, intent, source in DeviceEffectiveSetting.objects.filter(
        device_id__in=device_ids
    ).values_list("setting_key", "entry", "intent", "configured_by"):
        deltas[(key, entry, intent, source)] -= 1
    reporting = Device.objects.filter(pk__in=device_ids).exclude(effective_digest="").count()
    if reporting:
        deltas[REPORTING_COUNTER] -= reporting
    removed = DeviceEffectiveSetting.objects.filter(device_id__in=device_ids).delete()[0]
    rows = sorted((k, v) for k, v in deltas.items() if v)
    if rows:
        _upsert(EffectiveSettingCount, ("setting_key", "entry", "intent", "configured_by"), rows)
    Device.objects.filter(pk__in=device_ids).update(effective_digest="")
    return removed


def recount_effective() -> dict[tuple, int]:
    """The exact effective counts from the rows: {(setting, entry, intent, source): n} (and the reporting devices)."""
    from django.db.models import Count

    reporting = Device.objects.exclude(effective_digest="").count()
    return ({REPORTING_COUNTER: reporting} if reporting else {}) | {
        (r["setting_key"], r["entry"], r["intent"], r["configured_by"]): r["n"]
        for r in DeviceEffectiveSetting.objects.values("setting_key", "entry", "intent", "configured_by")
        .annotate(n=Count("*"))
        .order_by()
    }
