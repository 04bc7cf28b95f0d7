"""The devices a bulk action of All devices applies to, read from its form without one form field per device.

Why: Django refuses a request with more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` (1,000) fields, so a Policy sync of
1,000 ticked devices failed with a technical 400 (issue 12). The list now sends its selection as

* ``ids``: one field, the ticked device ids separated by commas (the page's script packs the ticked boxes into
  it; at most :data:`MAX_IDS`), or
* ``select_all=matching`` with ``filter``: the list's query string, as Intune's "Select all": the devices are
  those the same filters match when the action runs, however many there are, and no id is sent at all.

Repeated ``pk`` (the checkboxes themselves, sent as they are when the script does not run; a page holds at most
:data:`~devices.tables.MAX_PER_PAGE` of them) and ``device_ids`` (the Policy sync form's older name) are read too.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import QueryDict

from .filtersets import DeviceFilterSet
from .models import Device
from .scope import device_filter

MAX_IDS = 10_000
MAX_FILTER_LENGTH = 2_000
SELECT_ALL = "matching"


class SelectionError(ValueError):
    """The form's selection is malformed (forged or truncated): the message says what is wrong, for a 400."""


@dataclass(frozen=True)
class Selection:
    """Either explicit device ids or a filter query string (``select_all``); never both."""

    ids: tuple[int, ...] = ()
    query: str | None = None
    # The device groups of the person's role-assignment scope (devices.scope); None: all devices.
    scope: tuple[int, ...] | None = None

    @property
    def is_filter(self) -> bool:
        return self.query is not None

    def devices(self) -> QuerySet[Device]:
        """The selected devices as they are now (a filter is applied again; deleted ids are simply absent)."""
        chosen = (
            Device.objects.filter(pk__in=self.ids) if self.query is None else filtered_devices(self.query)
        )
        return chosen.filter(device_filter(self.scope))

    def as_params(self) -> dict:
        """For ``Job.params``: the selection, so the worker reads exactly what the person confirmed."""
        params: dict = {"query": self.query} if self.query is not None else {"ids": list(self.ids)}
        if self.scope is not None:
            params["scope"] = list(self.scope)
        return params

    @classmethod
    def from_params(cls, params: dict) -> Selection:
        scope = tuple(int(pk) for pk in params["scope"]) if params.get("scope") is not None else None
        if params.get("query") is not None:
            return cls(query=str(params["query"]), scope=scope)
        return cls(ids=tuple(int(pk) for pk in params.get("ids", ())), scope=scope)

    def hidden_fields(self) -> dict[str, str]:
        """The same selection as form fields, for a confirmation page (one field, whatever its size)."""
        if self.query is not None:
            return {"select_all": SELECT_ALL, "filter": self.query}
        return {"ids": ",".join(map(str, self.ids))}


def filtered_devices(query: str) -> QuerySet[Device]:
    """All devices the list's filters in ``query`` match; SelectionError when the filters are not valid."""
    filterset = DeviceFilterSet(QueryDict(query), queryset=Device.objects.all())
    if not filterset.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in filterset.form.errors.items())
        raise SelectionError(f"The filter of the selection is not valid ({problems}). Reload the list.")
    return filterset.qs


def _parse_id(value: str) -> int:
    value = value.strip()
    if not value.isdigit() or len(value) > 18:
        shown = value if len(value) <= 20 else value[:17] + "..."
        raise SelectionError(f"The selection is not a list of device ids: {shown!r} is not a device id.")
    return int(value)


def _parse_ids(values: list[str]) -> tuple[int, ...]:
    if len(values) > MAX_IDS:
        raise SelectionError(
            f"{len(values):,} devices were selected; select at most {MAX_IDS:,}, or use "
            "“Select all devices matching this filter”."
        )
    return tuple(dict.fromkeys(_parse_id(value) for value in values))


def read_selection(post: QueryDict, scope: tuple[int, ...] | None = None) -> Selection:
    """The selection of a bulk form (see the module docstring); SelectionError with the reason when malformed.

    ``scope``: the device groups the person is limited to (devices.scope), kept with the selection so a job
    run later by a worker acts only on devices in that scope.
    """
    if post.get("select_all"):
        if post.get("select_all") != SELECT_ALL:
            raise SelectionError("“select_all” must be “matching”.")
        query = post.get("filter", "")
        if len(query) > MAX_FILTER_LENGTH:
            raise SelectionError(
                f"The filter of the selection is longer than {MAX_FILTER_LENGTH:,} characters."
            )
        filtered_devices(query)  # refuse a bad filter now, not in the worker
        return Selection(query=query, scope=scope)
    packed = post.get("ids", "")
    if len(packed) > MAX_IDS * 20:
        raise SelectionError(f"The selection is too long; select at most {MAX_IDS:,} devices.")
    values = [v for v in packed.split(",") if v.strip()] if packed.strip() else []
    values += post.getlist("pk") + post.getlist("device_ids")
    return Selection(ids=_parse_ids(values), scope=scope)
