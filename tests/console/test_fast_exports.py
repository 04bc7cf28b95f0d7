"""The fast CSV exports: PostgreSQL's COPY and the Python path write the same text, and memory stays flat.

All devices and a policy's device status are written by PostgreSQL itself (``COPY (query) TO STDOUT``); on other
databases the same columns come from values_list in Python. Formulas, empty values, quotes, commas, choices,
packed tags and times with and without microseconds must come out identically either way.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.urls import reverse

from console.listing import copy_csv_bytes, csv_rows_bytes, export_rows
from devices.models import Device
from devices.views import DeviceListView
from tests.devices.device_factories import make_device

pytestmark = pytest.mark.django_db

COLUMNS = DeviceListView.export_values


@pytest.fixture
def awkward():
    make_device(display_name="=cmd|' /C calc'!A0", tags=["+SUM(1)", "a,b"])
    make_device(display_name='Quote "this", please', os="macos", tags=[])
    make_device(display_name="-leading minus", os="windows_server", intune_enrolled=True, tags=["@x"])
    make_device(display_name="plain", os="linux", tamper_protection=False, mde_onboarded=False)
    stamps = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC),
        None,
        None,
    ]
    for device, stamp in zip(Device.objects.order_by("pk"), stamps, strict=True):
        Device.objects.filter(pk=device.pk).update(last_checkin_at=stamp, management_type="")


def _text(chunks) -> str:
    return b"".join(chunks).decode("utf-8")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
def test_copy_writes_exactly_what_the_python_path_writes(awkward):
    qs = Device.objects.order_by("display_name", "id")
    header = [c.header for c in COLUMNS]
    by_copy = _text(copy_csv_bytes(header, qs, COLUMNS))
    by_python = _text(csv_rows_bytes(header, export_rows(qs, COLUMNS)))
    assert by_copy == by_python
    rows = list(csv.DictReader(io.StringIO(by_copy.lstrip("\ufeff"))))
    assert [r["Device name"] for r in rows][:2] == ["'-leading minus", "'=cmd|' /C calc'!A0"]
    first = next(r for r in rows if r["Device name"].startswith("'="))
    assert first["Tags"] == "'+SUM(1), a, b" or first["Tags"] == "'+SUM(1), a,b"
    assert {r["Last check-in"] for r in rows} == {
        "2026-01-02T03:04:05+00:00",
        "2026-01-02T03:04:05.000120+00:00",
        "",
    }
    assert {r["OS"] for r in rows} >= {"macOS", "Linux"}


def test_the_all_devices_export_lists_every_device_in_the_list_order(ga_client, awkward):
    response = ga_client.get(reverse("devices:list"), {"export": "csv", "os": "macos"})
    assert response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [r["Device name"] for r in rows] == ['Quote "this", please']


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the production path (COPY); SQLite is the local demo's"
)
def test_export_memory_does_not_grow_with_the_rows(ga_client):
    def peak(n: int) -> int:
        Device.objects.all().delete()
        Device.objects.bulk_create([Device(display_name=f"PC-{i:06d}", os="windows") for i in range(n)])
        tracemalloc.start()
        response = ga_client.get(reverse("devices:list"), {"export": "csv"})
        size = sum(len(chunk) for chunk in response.streaming_content)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert size > n * 50
        return top

    small, large = peak(2_000), peak(16_000)
    # 8x the rows, not 8x the memory (16,000 Device instances held at once would take tens of MB)
    assert large < max(small * 3, 6_000_000), (small, large)
