"""Graph's cached reports: `cachedReportConfigurations` and `getCachedReport`, as a real cache.

POST a configuration (id, reportName, filter, select, orderBy) -> it is checked at once (an unknown report, column
or a bad filter is a 400), stored with status `inProgress`, and a Celery task on the default queue computes the
snapshot (reports.tasks.compute_cached_report) -> `completed` (or `failed`, with the reason). getCachedReport then
pages, sorts, searches and groups the snapshot, never the live rows, until `expirationDateTime` (an hour after the
snapshot; Graph's documentation gives no lifetime, its reports keep about an hour). An expired or unknown id is a
404, a snapshot not ready yet (or failed) a 409. Creating the same id again computes a new snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from console.api.errors import GraphError
from console.celery import app
from devices.scope import ALL_DEVICES
from reports.graph_reports import (
    DEFAULT_TOP,
    MAX_TOP,
    REPORTS,
    Report,
    _dt,
    _int,
    _str_list,
    _text,
    run_report,
    search_columns,
    snapshot,
)
from reports.models import CachedReport

TTL = timedelta(hours=1)
MAX_ROWS = 100_000  # a snapshot larger than this is refused: narrow the filter
CONFIG_KEYS = {"id", "reportName", "filter", "select", "orderBy", "metadata"}
READ_KEYS = {"id", "select", "search", "groupBy", "orderBy", "skip", "top"}
NAMES = ", ".join(name[3:] for name in REPORTS)
State = CachedReport.State


def report_named(name: str) -> Report:
    for candidate in (name, f"get{name}", f"get{name[:1].upper()}{name[1:]}"):
        if candidate in REPORTS:
            return REPORTS[candidate]
    raise GraphError(400, f"Unknown reportName '{name[:80]}'. Reports this console caches: {NAMES}.")


def _key(config_id: str) -> str:
    return config_id.strip().lower()


def configuration_json(row: CachedReport) -> dict[str, Any]:
    """A deviceManagementCachedReportConfiguration."""
    return {
        "id": row.config_id,
        "reportName": row.report_name,
        "filter": row.filter,
        "select": row.select,
        "orderBy": row.order_by,
        "metadata": row.metadata,
        "status": row.status,
        "lastRefreshDateTime": _dt(row.last_refresh_at),
        "expirationDateTime": _dt(row.expires_at),
    }


def _scope(row: CachedReport) -> tuple[int, ...] | None:
    return None if row.scope_groups is None else tuple(row.scope_groups)


def get_configuration(config_id: object, group_ids: tuple[int, ...] | None = ALL_DEVICES) -> CachedReport:
    """The configuration with this id made within the same device scope; 404 when there is none or it has expired
    (an expired one is removed)."""
    if not isinstance(config_id, str) or not config_id.strip():
        raise GraphError(400, "'id' must be the id of a cached report configuration.")
    row = CachedReport.objects.filter(key=_key(config_id)).first()
    if row is not None and _scope(row) != group_ids:
        row = None  # another scope's snapshot: its devices aren't this person's to see
    if row is not None and row.expires_at <= timezone.now():
        CachedReport.objects.filter(pk=row.pk, generation=row.generation).delete()
        raise GraphError(
            404,
            f"Cached report configuration '{config_id[:120]}' expired at {_dt(row.expires_at)}; create it again.",
            "ResourceNotFound",
        )
    if row is None:
        raise GraphError(
            404, f"Cached report configuration '{config_id[:120]}' was not found.", "ResourceNotFound"
        )
    return row


def create_configuration(
    body: Mapping[str, Any], group_ids: tuple[int, ...] | None = ALL_DEVICES
) -> CachedReport:
    """Check the configuration now (as the report action would), store it `inProgress` and queue the snapshot."""
    for key in body:
        if key not in CONFIG_KEYS and not str(key).startswith("@"):
            raise GraphError(
                400,
                f"Property '{str(key)[:80]}' does not exist on type 'deviceManagementCachedReportConfiguration'.",
            )
    config_id = _text(body, "id").strip()
    if not config_id or len(config_id) > 200:
        raise GraphError(400, "'id' is required: a name for the cached report, e.g. '<reportName>_<guid>'.")
    report = report_named(_text(body, "reportName").strip() or config_id.split("_", 1)[0])
    select = _str_list(body, "select")
    order = _str_list(body, "orderBy")
    flt = _text(body, "filter")
    run_report(
        report, {"select": select, "orderBy": order, "filter": flt, "top": 1}, group_ids
    )  # refuses a bad one
    now = timezone.now()
    CachedReport.objects.filter(expires_at__lte=now).delete()
    fields = {
        "config_id": config_id,
        "report_name": report.name[3:],
        "filter": flt,
        "select": select,
        "order_by": order,
        "metadata": _text(body, "metadata"),
        "status": State.IN_PROGRESS,
        "error": "",
        "columns": [],
        "rows": [],
        "last_refresh_at": None,
        "expires_at": now + TTL,
        "scope_groups": None if group_ids is ALL_DEVICES else list(group_ids),
    }
    with transaction.atomic():
        row, created = CachedReport.objects.select_for_update().get_or_create(
            key=_key(config_id), defaults=fields
        )
        if not created:
            for name, value in fields.items():
                setattr(row, name, value)
            row.generation = F("generation") + 1
            row.save()
            row.refresh_from_db()
        pk, generation = row.pk, row.generation
        # The task lives in reports.tasks (a layer above): queued by name, on the default queue.
        transaction.on_commit(
            lambda: app.tasks["reports.tasks.compute_cached_report"].apply_async(
                args=[pk, generation], queue="default"
            )
        )
    return row


def compute(pk: int, generation: int) -> None:
    """The snapshot of one configuration (the Celery task's body). A configuration deleted or created again
    meanwhile is left alone; a report that can't be computed is `failed` with the reason."""
    row = CachedReport.objects.filter(pk=pk, generation=generation, status=State.IN_PROGRESS).first()
    if row is None:
        return
    report = report_named(row.report_name)
    try:
        rows = snapshot(report, row.filter, MAX_ROWS, _scope(row))
    except GraphError as exc:
        CachedReport.objects.filter(pk=pk, generation=generation).update(
            status=State.FAILED, error=str(exc.detail)
        )
        return
    now = timezone.now()
    CachedReport.objects.filter(pk=pk, generation=generation).update(
        status=State.COMPLETED,
        columns=[[c.name, c.type] for c in report.columns],
        rows=rows,
        last_refresh_at=now,
        expires_at=now + TTL,
    )


def delete_configuration(config_id: str, group_ids: tuple[int, ...] | None = ALL_DEVICES) -> None:
    row = get_configuration(config_id, group_ids)
    CachedReport.objects.filter(pk=row.pk).delete()


def _column_list(body: Mapping[str, Any], key: str, known: list[str], what: str) -> list[str]:
    names = _str_list(body, key)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise GraphError(400, f"Unknown column '{unknown[0][:80]}' in {key}. {what}: {', '.join(known)}.")
    return list(dict.fromkeys(names))


def _sort(rows: list[list[Any]], clauses: list[str], index: dict[str, int]) -> list[list[Any]]:
    parsed = []
    for clause in clauses:
        bits = clause.split()
        if (
            not bits
            or bits[0] not in index
            or len(bits) > 2
            or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc"))
        ):
            raise GraphError(
                400,
                f"Invalid orderBy '{clause[:80]}': use 'Column [asc|desc]' with one of {', '.join(index)}.",
            )
        parsed.append((index[bits[0]], len(bits) == 2 and bits[1].lower() == "desc"))
    for position, descending in reversed(parsed):  # stable sorts, last key first
        rows = sorted(
            rows,
            key=lambda r, p=position: (r[p] is None, str(r[p]).casefold() if isinstance(r[p], str) else r[p]),
            reverse=descending,
        )
    return rows


def read(body: Mapping[str, Any], group_ids: tuple[int, ...] | None = ALL_DEVICES) -> dict[str, Any]:
    """getCachedReport: the snapshot's rows, with select (of the configuration's columns), search, groupBy,
    orderBy, skip and top; the table format of the report actions."""
    for key in body:
        if key not in READ_KEYS and not str(key).startswith("@"):
            raise GraphError(400, f"Property '{str(key)[:80]}' is not a parameter of getCachedReport.")
    row = get_configuration(body.get("id"), group_ids)
    if row.status == State.IN_PROGRESS:
        raise GraphError(
            409,
            f"Cached report '{row.config_id}' is still being computed (status inProgress): read "
            "cachedReportConfigurations/{id} until its status is completed.",
            "Conflict",
        )
    if row.status == State.FAILED:
        raise GraphError(
            409, f"Cached report '{row.config_id}' failed: {row.error} Create it again.", "Conflict"
        )
    report = report_named(row.report_name)
    index = {name: i for i, (name, _) in enumerate(row.columns)}
    types = dict(row.columns)
    available = list(row.select) or list(index)
    group = _column_list(body, "groupBy", available, "Columns of the cached report")
    select = _column_list(body, "select", available, "Columns of the cached report") or (
        group or list(row.select) or list(report.default)
    )
    if group and any(c not in group for c in select):
        raise GraphError(400, "With groupBy, select may only name the groupBy columns.")
    rows = row.rows
    search = _text(body, "search").strip().casefold()
    if search:
        where = [index[c] for c in search_columns(report)]
        rows = [r for r in rows if any(search in str(r[i] or "").casefold() for i in where)]
    if group:
        seen: dict[tuple, list[Any]] = {}
        for r in rows:
            seen.setdefault(tuple(r[index[c]] for c in group), r)
        rows = list(seen.values())
    clauses = _str_list(body, "orderBy") or list(row.order_by)
    rows = _sort(rows, clauses, index)
    skip = _int(body, "skip", 0, 10**9)
    top = _int(body, "top", DEFAULT_TOP, MAX_TOP) or DEFAULT_TOP
    return {
        "TotalRowCount": len(rows),
        "Schema": [{"Column": c, "PropertyType": types[c]} for c in select],
        "Values": [[r[index[c]] for c in select] for r in rows[skip : skip + top]],
        "SessionId": "",
    }
