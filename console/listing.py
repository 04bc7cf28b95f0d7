"""NetBox-style list pages: a queryset, a filterset and a table; htmx gets the table partial, others the page."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.cache import cache
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connections
from django.db.models import F, Func, TextField
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.http import StreamingHttpResponse
from django.views.generic import TemplateView
from django_tables2 import RequestConfig
from django_tables2.data import TableListData


class _Echo:
    def write(self, value: str) -> str:
        return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Neutralises spreadsheet formulas (CSV injection): a text cell that starts like one gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def stream_csv(filename: str, header: list[str], rows: Iterable[Iterable[Any]]) -> StreamingHttpResponse:
    """CSV in constant memory: rows are written as they are read (use .iterator() on querysets)."""
    writer = csv.writer(_Echo())

    def generate():
        yield "\ufeff"  # Excel opens UTF-8 CSV correctly with a BOM
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_cell(v) for v in row])

    response = StreamingHttpResponse(generate(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@dataclass(frozen=True)
class CsvColumn:
    """One column of a fast export: a database field and how its value is shown.

    ``kind``: ``text`` (as it is, spreadsheet formulas neutralised), ``str`` (a UUID or number as text),
    ``choice`` (the label of ``choices``), ``packed`` (",a,b," -> "a, b"), ``iso`` (ISO 8601 time, as Python's
    ``isoformat`` writes a UTC time), ``yes_no``, ``on_off``, ``json``. Each kind exists twice, as SQL for
    PostgreSQL's COPY and in Python for the other databases, and both write the same text. A ``choice`` column
    stored as codes (console.compact) gives them as ``codes``: SQL compares the column with the code.
    """

    header: str
    field: str
    kind: str = "text"
    choices: tuple = ()
    codes: Mapping[str, int] | None = None


EXPORT_CHUNK_ROWS = 5000  # rows per round trip of the server-side cursor (databases other than PostgreSQL)
_FLUSH_BYTES = 256 * 1024
_FORMULA_FIRST = frozenset(_FORMULA_START)


def _neutralised(value: Any) -> Any:
    if value is None:
        return ""
    if value.__class__ is str and value[:1] in _FORMULA_FIRST:
        return "'" + value
    return value


def _packed(value: str | None) -> str:
    return ", ".join(t for t in (value or "").split(",") if t)


def _python_show(column: CsvColumn) -> Callable[[Any], Any]:
    kind = column.kind
    if kind == "text":
        return _neutralised
    if kind == "packed":
        return lambda v: _neutralised(_packed(v))
    if kind == "choice":
        labels = dict(column.choices)
        return lambda v: "" if v is None else labels.get(v, _neutralised(str(v)))
    if kind == "iso":
        return lambda v: v.isoformat() if v is not None else ""
    if kind == "yes_no":
        return lambda v: "Yes" if v else "No"
    if kind == "on_off":
        return lambda v: "On" if v else "Off"
    if kind == "json":
        return lambda v: json.dumps(v, sort_keys=True) if v is not None else ""
    if kind == "str":
        return lambda v: "" if v is None else str(v)
    raise ValueError(f"unknown CSV column kind {kind!r}")


def _sql_literal(text: str) -> str:
    if "%" in text:
        raise ValueError("a CSV label with % would need escaping twice (Func template, then the driver)")
    return "'" + text.replace("'", "''") + "'"


# spreadsheet formulas neutralised as csv_cell does; '' becomes NULL, which COPY writes as an empty field
_NEUTRALISE = "CASE WHEN left({x}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN '''' || {x} ELSE NULLIF({x}, '') END"


def _sql_show(column: CsvColumn):
    """The column as a SQL expression producing the exact text the Python path writes (NULL for empty)."""
    x = "%(expressions)s"  # the bare column (no parameters): it may appear several times in a template
    kind = column.kind
    if kind == "text":
        template = _NEUTRALISE.format(x=x)
    elif kind == "packed":
        template = _NEUTRALISE.format(x=f"array_to_string(array_remove(string_to_array({x}, ','), ''), ', ')")
    elif kind == "choice":
        whens = " ".join(
            f"WHEN {x} = {int(column.codes[v]) if column.codes else _sql_literal(str(v))} "
            f"THEN {_sql_literal(str(label))}"
            for v, label in column.choices
        )
        template = f"CASE {whens} ELSE {_NEUTRALISE.format(x=x + '::text')} END"
    elif kind == "iso":
        utc = f"({x} AT TIME ZONE 'UTC')"
        template = (
            f"CASE WHEN mod(date_part('microseconds', {x})::bigint, 1000000) = 0 "
            f"""THEN to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"') """
            f"""ELSE to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') END"""
        )
    elif kind == "yes_no":
        template = f"CASE WHEN {x} THEN 'Yes' ELSE 'No' END"
    elif kind == "on_off":
        template = f"CASE WHEN {x} THEN 'On' ELSE 'Off' END"
    elif kind == "str":
        template = f"{x}::text"
    else:
        return None  # json: PostgreSQL's jsonb text differs from json.dumps(sort_keys=True)
    return Func(F(column.field), template=template, output_field=TextField())


def csv_rows_bytes(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterable[bytes]:
    """CSV text in ~256 KB pieces: one write per row into a buffer, not one response chunk per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    buffer.write("\ufeff")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > _FLUSH_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def export_rows(queryset, columns: list[CsvColumn]) -> Iterable[list]:
    """Rows of ``columns`` without model instances: values_list over a server-side cursor."""
    fields = [c.field for c in columns]
    plan = list(enumerate(_python_show(c) for c in columns))
    for values in queryset.values_list(*fields).iterator(chunk_size=EXPORT_CHUNK_ROWS):
        yield [show(values[i]) for i, show in plan]


def copy_csv_bytes(header: list[str], queryset, columns: list[CsvColumn]) -> Iterable[bytes]:
    """PostgreSQL writes the CSV itself: ``COPY (the list's query) TO STDOUT WITH CSV``, relayed in ~256 KB pieces.

    No row becomes a Python object: the export runs at COPY's speed in constant memory, and the filters, the
    scope and the ordering are the queryset's own SQL.
    """
    names = {f"csv_{i}": _sql_show(c) for i, c in enumerate(columns)}
    sql, params = queryset.annotate(**names).values_list(*names).query.sql_with_params()
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(header)
    yield ("\ufeff" + head.getvalue()).encode()
    with connections[queryset.db].cursor() as cursor:
        pending = bytearray()
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for data in copy:
                pending += data
                if len(pending) >= _FLUSH_BYTES:
                    yield bytes(pending)
                    pending.clear()
        yield bytes(pending)


def stream_csv_values(filename: str, queryset, columns: list[CsvColumn]) -> StreamingHttpResponse:
    """A fast, constant-memory CSV export of ``queryset`` (≥ 50,000 rows/s: see ``manage.py bench_exports``).

    On PostgreSQL the database writes the CSV (COPY); elsewhere rows come from values_list in Python. Both write
    the same text, one line per row ending in a line feed, after a UTF-8 byte order mark and the header.
    """
    header = [c.header for c in columns]
    sql_ready = all(_sql_show(c) is not None for c in columns)
    if sql_ready and connections[queryset.db].vendor == "postgresql":
        body = copy_csv_bytes(header, queryset, columns)
    else:
        body = csv_rows_bytes(header, export_rows(queryset, columns))
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ObjectListView(PermissionRequiredMixin, TemplateView):
    """List page with filters, sorting, pagination and CSV export (`?export=csv`)."""

    queryset = None
    filterset_class = None
    table_class = None
    template_name = "console/object_list.html"
    partial_template_name = "console/partials/table.html"
    title = ""
    breadcrumbs: list[tuple[str, str]] = []
    per_page = 25
    # Keyset (seek) paging (``?after=``/``?before=``/``?last=1``) instead of page numbers: for big lists.
    keyset = False
    max_per_page = 500
    export_filename = ""
    export_columns: list[tuple[str, Callable[[Any], Any]]] = []
    # or, faster (values_list, no model instances): the columns as CsvColumn
    export_values: list[CsvColumn] = []
    raise_exception = True

    def get_queryset(self):
        return self.queryset.all()

    def filtered(self):
        qs = self.get_queryset()
        if self.filterset_class is None:
            return None, qs
        filterset = self.filterset_class(self.request.GET or None, queryset=qs, request=self.request)
        return filterset, (filterset.qs if filterset.is_bound and filterset.is_valid() else qs)

    def get(self, request, *args, **kwargs):
        if request.GET.get("export") == "csv" and self.export_values:
            _, qs = self.filtered()
            return stream_csv_values(self.export_filename or "export.csv", qs, self.export_values)
        if request.GET.get("export") == "csv" and self.export_columns:
            _, qs = self.filtered()
            return stream_csv(
                self.export_filename or "export.csv",
                [name for name, _ in self.export_columns],
                ([get(obj) for _, get in self.export_columns] for obj in qs.iterator(chunk_size=2000)),
            )
        return super().get(request, *args, **kwargs)

    def kept_total(self, filterset) -> int | None:
        """The list's total when something keeps it cheaper than a COUNT; None: count it (``list_total``)."""
        return None

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        filterset, qs = self.filtered()
        if self.keyset:
            per_page = keyset_per_page(self.request, self.per_page, self.max_per_page)
            table = keyset_table(
                self.request, self.table_class, qs, per_page=per_page, total=self.kept_total(filterset)
            )
        else:
            table = self.table_class(qs, request=self.request)
            RequestConfig(self.request, paginate={"per_page": self.per_page}).configure(table)
        ctx.update(
            table=table,
            filterset=filterset,
            title=self.title,
            breadcrumbs=self.breadcrumbs,
            can_export=bool(self.export_columns or self.export_values),
        )
        return ctx

    def get_template_names(self):
        if self.request.htmx and not self.request.htmx.boosted:
            return [self.partial_template_name]
        return [self.template_name]


# ---------------------------------------------------------------------------------------------- keyset paging


class _Presorted(TableListData):
    """Rows already in the page's order: django-tables2 must not sort them again (it sorts lists in Python)."""

    def order_by(self, aliases) -> None:
        return None


class BadCursor(ValueError):
    pass


@dataclass
class KeysetPage:
    """One page of a keyset (seek) paged list: the rows and the cursors of its neighbours.

    ``after``/``before`` are opaque tokens (the sort alias, the sort value and the primary key of a boundary row,
    and that row's position for "Showing 26 to 50"): a page is read with an index seek from the boundary, so page
    20,000 costs what page 1 costs (OFFSET would read and discard every row before it).
    """

    rows: list
    start: int  # 1-based position of the first row
    has_next: bool
    has_previous: bool
    next_cursor: str = ""
    previous_cursor: str = ""
    total: int | None = None
    notice: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.rows) - 1 if self.rows else 0

    @property
    def is_paged(self) -> bool:
        return self.has_next or self.has_previous


def _encode(payload: list) -> str:
    raw = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> list:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(str(exc)) from None
    if not (isinstance(payload, list) and len(payload) in (4, 5)):
        raise BadCursor("not a cursor")
    return payload


class KeysetPager:
    """Pages ``queryset`` ordered by one field (``sort``: ``name`` or ``-name``) with the primary key as tiebreaker.

    NULLs sort after every value ascending and before them descending (PostgreSQL's defaults, so its b-tree
    indexes serve both directions); a nullable field is read as two segments (values, then NULLs) so every
    seek is a row comparison ``(field, pk) > (value, id)`` that an index on ``(field, id)`` answers directly.
    """

    MAX_TOKEN = 2000

    def __init__(self, queryset, *, sort: str, fields: dict[str, str], per_page: int):
        self.queryset = queryset
        self.descending = sort.startswith("-")
        self.alias = sort.lstrip("-")
        self.sort = sort
        self.field_name = fields[self.alias]
        self.field = queryset.model._meta.get_field(self.field_name)
        self.nullable = bool(self.field.null)
        self.per_page = per_page
        self.carried_total: int | None = None  # the total a page link carried
        self.link_total: int | None = None  # the total the links of this page carry

    # segments in the page order: (is_null_segment, queryset ordered within it)
    def _segments(self, reverse: bool) -> list[tuple[bool, Any]]:
        desc = self.descending != reverse
        f, pk = self.field_name, "pk"
        values = self.queryset
        if self.nullable:
            values = values.filter(**{f"{f}__isnull": False})
        values = values.order_by(*((f"-{f}", f"-{pk}") if desc else (f, pk)))
        segments = [(False, values)]
        if self.nullable:
            # ordered by (field, id) although the field is NULL throughout: so the planner walks the (field, id)
            # index from its NULL end instead of the primary key filtering out every non-NULL row (measured at
            # 1M devices: 598 ms -> under 1 ms for the first page of "Last check-in" descending)
            nulls = self.queryset.filter(**{f"{f}__isnull": True}).order_by(
                *((f"-{f}", f"-{pk}") if desc else (f, pk))
            )
            # ascending (not reversed): values then NULLs; descending: NULLs then values
            segments.append((True, nulls))
            if self.descending:
                segments.reverse()
            if reverse:
                segments.reverse()
        return segments

    def _seek(self, boundary: tuple[Any, int] | None, reverse: bool, limit: int) -> list:
        desc = self.descending != reverse
        rows: list = []
        started = boundary is None
        for is_null, qs in self._segments(reverse):
            if not started:
                value, pk = boundary
                if (value is None) != is_null:
                    continue  # the boundary row lies in a later segment
                started = True
                if is_null:
                    qs = qs.filter(pk__lt=pk) if desc else qs.filter(pk__gt=pk)
                else:
                    cmp = TupleLessThan if desc else TupleGreaterThan
                    qs = qs.filter(cmp(Tuple(F(self.field_name), F("pk")), (value, pk)))
            rows.extend(qs[: limit - len(rows)])
            if len(rows) >= limit:
                break
        return rows

    def _key(self, row) -> tuple[Any, int]:
        return getattr(row, self.field.attname), row.pk

    def _token(self, row, position: int) -> str:
        value, pk = self._key(row)
        if value is not None and not isinstance(value, (str, int, bool)):
            value = self.field.value_to_string(row)
        # the list's total travels with the link: only the first page counts (a COUNT over a million rows is
        # most of a page's SQL time); a forged total changes nothing but the "of N" a person sees
        return _encode([self.sort, value, pk, position, self.link_total])

    def _boundary(self, token: str) -> tuple[tuple[Any, int], int] | None:
        """(value, pk) and position of a cursor; None when it belongs to another sort order."""
        if len(token) > self.MAX_TOKEN:
            raise BadCursor("too long")
        sort, value, pk, position, *rest = _decode(token)
        if sort != self.sort:
            return None  # the sort changed since the link was made: start again at page 1
        if not isinstance(pk, int) or not isinstance(position, int) or position < 0:
            raise BadCursor("bad key")
        carried = rest[0] if rest else None
        if isinstance(carried, int) and not isinstance(carried, bool) and carried >= 0:
            self.carried_total = carried
        if value is not None:
            try:
                value = self.field.to_python(value)
            except (ValidationError, TypeError, ValueError):
                raise BadCursor("bad value") from None
        return (value, pk), position

    def page(self, *, after: str = "", before: str = "", last: bool = False) -> KeysetPage:
        n = self.per_page
        notice = ""
        try:
            if before:
                found = self._boundary(before)
                if found is not None:
                    boundary, position = found
                    rows = self._seek(boundary, reverse=True, limit=n + 1)
                    if len(rows) > n:
                        return self._page(
                            rows[:n][::-1], max(2, position - n), has_next=True, has_previous=True
                        )
                    # no full page before it: that is the first page
            elif after:
                found = self._boundary(after)
                if found is not None:
                    boundary, position = found
                    rows = self._seek(boundary, reverse=False, limit=n + 1)
                    return self._page(rows[:n], position + 1, has_next=len(rows) > n, has_previous=True)
            elif last:
                rows = self._seek(None, reverse=True, limit=n + 1)
                more = len(rows) > n
                rows = rows[:n][::-1]
                page = self._page(rows, 1, has_next=False, has_previous=more)
                page.start = 0  # known once the total is counted
                return page
        except BadCursor:
            notice = "That page link is not valid any more: showing the first page."
        rows = self._seek(None, reverse=False, limit=n + 1)
        page = self._page(rows[:n], 1, has_next=len(rows) > n, has_previous=False)
        page.notice = notice
        return page

    def _page(self, rows: list, start: int, *, has_next: bool, has_previous: bool) -> KeysetPage:
        page = KeysetPage(rows, start, has_next, has_previous)
        self.link(page)
        return page

    def link(self, page: KeysetPage) -> None:
        """The page's Next and Previous cursors (again once the total is known: the links carry it)."""
        rows, start = page.rows, page.start
        if rows:
            page.next_cursor = self._token(rows[-1], start + len(rows) - 1) if page.has_next else ""
            page.previous_cursor = self._token(rows[0], start) if page.has_previous else ""


def keyset_fields(table) -> dict[str, str]:
    """Sortable columns of a django-tables2 table that keyset paging can seek on: alias -> model field."""
    model = table._meta.model
    fields: dict[str, str] = {}
    for column in table.columns:
        if not column.orderable:
            continue
        accessors = list(column.order_by) if column.order_by else [column.accessor]
        if len(accessors) != 1:
            continue
        name = str(accessors[0]).lstrip("-")
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if getattr(field, "concrete", False) and not field.is_relation:
            fields[column.name] = name
    return fields


# A list's first page counts its rows. A COUNT over a million devices is a scan of a million index entries (about
# 45 ms on one core, more with twenty admins at once: bench_http saw All devices fall from 69 to 26 requests/s
# between 20,000 and 1,000,000 devices, the database busy counting). A large total is therefore kept in the shared
# cache for LARGE_TOTAL_SECONDS, per exact query (the filter, the search and the viewer's scope are in the SQL):
# "of 1,000,000" may lag a device added meanwhile by that long; the rows themselves are always read fresh. A
# small list (under LARGE_TOTAL rows) is counted on every request.
LARGE_TOTAL = 20_000
LARGE_TOTAL_SECONDS = 30


def list_total(queryset) -> int:
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    key = "listing:total:" + hashlib.sha256(f"{queryset.db}|{sql}|{params!r}".encode()).hexdigest()
    kept = cache.get(key)
    if kept is not None:
        return kept
    total = queryset.count()
    if total >= LARGE_TOTAL:
        cache.set(key, total, LARGE_TOTAL_SECONDS)
    return total


def keyset_table(
    request,
    table_class,
    queryset,
    *,
    per_page: int,
    count: bool = True,
    total: int | None = None,
    **table_kwargs,
):
    """A django-tables2 table of one keyset page of ``queryset`` (``?sort=``, ``?after=``/``?before=``, ``?last=1``).

    Every sortable column is sorted with the primary key as its tiebreaker, so pages never overlap or skip a
    row. The total is one COUNT (an index-only scan with the list's indexes), or ``total`` when the caller keeps
    one (a group's member count); ``count=False`` and no ``total`` leaves it out.
    """
    probe = table_class([], **table_kwargs)
    fields = keyset_fields(probe)
    default = str(probe.order_by[0]) if probe.order_by else next(iter(fields))
    sort = request.GET.get("sort", "") or default
    if sort.lstrip("-") not in fields:
        sort = default
    pager = KeysetPager(queryset, sort=sort, fields=fields, per_page=per_page)
    page = pager.page(
        after=request.GET.get("after", ""),
        before=request.GET.get("before", ""),
        last=request.GET.get("last") == "1",
    )
    if total is None and pager.carried_total is not None and not page.notice:
        total = pager.carried_total
    if total is not None or count:
        page.total = total if total is not None else list_total(queryset)
        pager.link_total = page.total
        if page.start == 0:
            page.start = max(1, page.total - len(page.rows) + 1)
    if page.start == 0:
        page.start = 1  # the last page without a total: positions are unknown
    pager.link(page)
    # no request= here: django-tables2 would paginate the page's rows again (RequestConfig)
    table = table_class(_Presorted(page.rows), order_by=sort, **table_kwargs)
    table.request = request
    table.keyset = page
    return table


def keyset_per_page(request, default: int, maximum: int) -> int:
    try:
        value = int(request.GET.get("per_page", default))
    except (TypeError, ValueError):
        return default
    return max(1, min(value, maximum))
