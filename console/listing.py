"""NetBox-style list pages: a queryset, a filterset and a table; htmx gets the table partial, others the page."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import StreamingHttpResponse
from django.views.generic import TemplateView
from django_tables2 import RequestConfig


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
    export_filename = ""
    export_columns: list[tuple[str, Callable[[Any], Any]]] = []
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
        if request.GET.get("export") == "csv" and self.export_columns:
            _, qs = self.filtered()
            return stream_csv(
                self.export_filename or "export.csv",
                [name for name, _ in self.export_columns],
                ([get(obj) for _, get in self.export_columns] for obj in qs.iterator(chunk_size=2000)),
            )
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        filterset, qs = self.filtered()
        table = self.table_class(qs, request=self.request)
        RequestConfig(self.request, paginate={"per_page": self.per_page}).configure(table)
        ctx.update(
            table=table,
            filterset=filterset,
            title=self.title,
            breadcrumbs=self.breadcrumbs,
            can_export=bool(self.export_columns),
        )
        return ctx

    def get_template_names(self):
        if self.request.htmx and not self.request.htmx.boosted:
            return [self.partial_template_name]
        return [self.template_name]
