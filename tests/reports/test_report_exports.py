"""CSV exports of every report and list: the filtered rows, streamed from a server-side iterator."""

from __future__ import annotations

import csv
import io

import pytest
from django.db.models.query import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse

from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _csv(response) -> list[dict]:
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def iterations(monkeypatch):
    """Records every QuerySet.iterator(chunk_size=…) call: exports must stream, not load the rows."""
    calls: list[int | None] = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        calls.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    return calls


def test_view_report_exports_the_filtered_devices_with_their_status(ga_client, world, iterations):
    cloud = world.policies["Cloud"]
    url = reverse("reports:policy_devices", kwargs={"policy_id": cloud.policy_id})
    rows = _csv(ga_client.get(f"{url}?export=csv"))
    assert [r["Device name"] for r in rows] == ["SRV-1", "WS-1", "WS-2", "WS-3"]
    ws3 = rows[-1]
    assert ws3["Status"] == "Error" and ws3["Error settings"] == "1" and ws3["Succeeded settings"] == "1"
    assert ws3["Managed by"] == "MDE" and ws3["Device ID"] == str(world.devices["WS-3"].device_id)
    assert ws3["Last report time"]
    # streamed: PostgreSQL's COPY writes the rows (console.listing.copy_csv_bytes); elsewhere a chunked iterator
    assert all(size and size >= 500 for size in iterations)

    only_errors = _csv(ga_client.get(f"{url}?status=error&export=csv"))
    assert [r["Device name"] for r in only_errors] == ["WS-3"]
    by_setting = _csv(
        ga_client.get(f"{url}?setting={f.CLOUD}&setting_status=succeeded&os=windows&export=csv")
    )
    assert [r["Device name"] for r in by_setting] == ["WS-1", "WS-2", "WS-3"]


def test_per_setting_status_exports_every_setting_with_its_counts(ga_client, world):
    url = reverse("reports:policy_settings", kwargs={"policy_id": world.policies["Cloud"].policy_id})
    rows = {r["Setting ID"]: r for r in _csv(ga_client.get(f"{url}?export=csv"))}
    assert set(rows) == {f.BEHAVIOR, f.CLOUD}
    assert rows[f.BEHAVIOR]["Setting"] == "Allow Behavior Monitoring"
    assert (rows[f.BEHAVIOR]["Succeeded"], rows[f.BEHAVIOR]["Error"], rows[f.BEHAVIOR]["Conflict"]) == (
        "3",
        "1",
        "0",
    )
    assert rows[f.CLOUD]["Succeeded"] == "4"
    assert [r["Setting ID"] for r in _csv(ga_client.get(f"{url}?problems=1&export=csv"))] == [f.BEHAVIOR]


def test_the_overview_lists_export_devices_with_errors_or_conflicts_and_late_devices(
    ga_client, world, iterations
):
    from datetime import timedelta

    from django.utils import timezone

    from devices.models import Device

    rows = _csv(ga_client.get(reverse("reports:issue_devices") + "?export=csv"))
    assert len(rows) == 9  # 8 conflicts (two policies on four devices) and WS-3's error
    assert {(r["Device name"], r["Policy"], r["Status"]) for r in rows if r["Status"] == "Error"} == {
        ("WS-3", "Cloud", "Error")
    }
    errors = _csv(ga_client.get(reverse("reports:issue_devices") + "?status=error&export=csv"))
    assert [(r["Device name"], r["Error settings"]) for r in errors] == [("WS-3", "1")]

    Device.objects.filter(pk=world.devices["WS-2"].pk).update(
        next_checkin_at=timezone.now() - timedelta(hours=2)
    )
    Device.objects.exclude(pk=world.devices["WS-2"].pk).update(next_checkin_at=None)
    late = _csv(ga_client.get(reverse("reports:late_devices") + "?export=csv"))
    assert [r["Device name"] for r in late] == ["WS-2"]
    assert late[0]["Expected check-in"]
    assert len(iterations) >= 3


def test_a_device_drill_in_exports_its_settings_with_the_other_policies(ga_client, world):
    baseline, ws1 = world.policies["Baseline"], world.devices["WS-1"]
    url = reverse(
        "reports:policy_device_settings", kwargs={"policy_id": baseline.policy_id, "device_pk": ws1.pk}
    )
    rows = {r["Setting ID"]: r for r in _csv(ga_client.get(f"{url}?export=csv"))}
    assert rows[f.PUA]["Status"] == "Conflict"
    assert rows[f.PUA]["Other policies"] == "Strict PUA (Conflict)"
    assert rows[f.REALTIME]["Status"] == "Succeeded" and rows[f.REALTIME]["Other policies"] == ""


def test_a_csv_cell_that_looks_like_a_formula_is_exported_as_text(ga_client, world):
    """Device names come from devices: a name starting with '=' must not become a spreadsheet formula."""
    from devices.models import Device

    device = Device.objects.get(pk=world.devices["WS-1"].pk)
    device.display_name = "=HYPERLINK(1)"
    device.save()  # a rename is saved (the policy status rows keep the name: reports.ingest.on_device_saved)
    url = reverse("reports:policy_devices", kwargs={"policy_id": world.policies["Cloud"].policy_id})
    names = [r["Device name"] for r in _csv(ga_client.get(f"{url}?export=csv"))]
    assert "=HYPERLINK(1)" not in names
    assert "'=HYPERLINK(1)" in names
