"""Devices › All devices: Managed by sortable and filterable, labels, filters, totals, CSV, bulk delete."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.urls import reverse

from devices import services
from devices.models import Device
from tests.devices.device_factories import make_device, set_tenant

pytestmark = pytest.mark.django_db

LIST = reverse("devices:list")


@pytest.fixture
def fleet():
    set_tenant(windows_server_scope="tagged")
    devices = {
        "mde": make_device(display_name="CONTOSO-WS-0001", join_type="workgroup"),
        "intune": make_device(display_name="CONTOSO-WS-0002", intune_enrolled=True, join_type="entra_joined"),
        "server": make_device(display_name="SRV-SQL-01", os="windows_server", tags=["MDE-Management", "SQL"]),
        "untagged": make_device(display_name="SRV-WEB-01", os="windows_server"),
        "mac": make_device(display_name="mac-alex-001", os="macos", join_type="entra_registered"),
    }
    for device in devices.values():
        services.reevaluate_device(device)
    return devices


def next_link(html: str, rel: str = "next") -> str:
    found = re.search(rf'<a href="(\?[^"]*)" rel="{rel}"', html)
    assert found, f"no {rel} link"
    return found.group(1).replace("&amp;", "&")


def names(response) -> list[str]:
    return [row.record.display_name for row in response.context["table"].rows]


def test_the_list_shows_the_columns_of_intune(reader_client, fleet):
    response = reader_client.get(LIST)
    html = response.content.decode()
    for header in ("Device name", "Managed by", "OS", "OS version", "Join type", "Labels", "MDE Enrollment status",
                   "Last check-in"):  # fmt: skip
        assert re.search(rf">\s*{re.escape(header)}\s*<", html), header
    assert 'class="pill pill-green">MDEManaged<' in html and 'class="pill pill-blue">MDEJoined<' in html
    assert "Showing 1 to 5 of 5 records" in html
    assert 'data-select-all="pk"' in html and 'name="pk"' in html


def row_of(html: str, name: str) -> list[str]:
    """The cells of the device's row, as HTML."""
    row = re.search(rf'<tr data-device="{re.escape(name)}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {name}"
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)


def test_each_row_shows_what_the_device_reports(reader_client, fleet):
    """The body rows are built as strings (console.tables.FastRows): every cell as django-tables2 showed it."""
    mac = fleet["mac"]
    Device.objects.filter(pk=mac.pk).update(os_version="", tamper_protection=False, last_checkin_at=None)
    html = reader_client.get(LIST).content.decode()
    cells = row_of(html, "mac-alex-001")
    assert cells[0] == f'<input type="checkbox" name="pk" value="{mac.pk}" aria-label="Select device" />'
    assert cells[1] == f'<a href="{reverse("devices:detail", args=[mac.pk])}">mac-alex-001</a>'
    assert cells[3:6] == ["macOS", "—", "Microsoft Entra registered"]
    assert 'data-tamper="off">Off<' in cells[8] and cells[9] == "Yes" and cells[10] == "—"
    server = row_of(html, "SRV-SQL-01")
    assert "MDEJoined" in server[6] and "pill-purple" in server[2]
    assert re.search(r'<td class="nowrap">Windows Server</td>', html)


def test_device_names_and_messages_are_escaped(reader_client, fleet):
    Device.objects.filter(pk=fleet["mde"].pk).update(
        display_name="<b>WS</b>&1", enrollment_message='"><script>alert(1)</script>'
    )
    html = reader_client.get(LIST).content.decode()
    assert "<b>WS</b>" not in html and "<script>alert(1)" not in html
    cells = row_of(html, "&lt;b&gt;WS&lt;/b&gt;&amp;1")
    assert "&lt;b&gt;WS&lt;/b&gt;&amp;1</a>" in cells[1]
    assert "&quot;&gt;&lt;script&gt;" in cells[7]


def test_sorting_by_managed_by_groups_the_mde_devices(reader_client, fleet):
    response = reader_client.get(LIST, {"sort": "managed_by"})
    managed_by = [row.record.managed_by for row in response.context["table"].rows]
    assert managed_by == sorted(managed_by)
    response = reader_client.get(LIST, {"sort": "-managed_by"})
    managed_by = [row.record.managed_by for row in response.context["table"].rows]
    assert managed_by == sorted(managed_by, reverse=True)


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"managed_by": "mde"}, ["CONTOSO-WS-0001", "SRV-SQL-01", "mac-alex-001"]),
        ({"managed_by": "intune"}, ["CONTOSO-WS-0002"]),
        ({"os": "windows_server"}, ["SRV-SQL-01", "SRV-WEB-01"]),
        ({"label": "MDEJoined"}, ["CONTOSO-WS-0001", "SRV-SQL-01"]),
        ({"label": "MDEManaged"}, ["CONTOSO-WS-0001", "SRV-SQL-01", "mac-alex-001"]),
        ({"label": "none"}, ["CONTOSO-WS-0002", "SRV-WEB-01"]),
        ({"enrollment_status": "Device is not enrolled and has never been enrolled"}, ["SRV-WEB-01"]),
        ({"enrollment_status": "Success"}, ["CONTOSO-WS-0001", "SRV-SQL-01", "mac-alex-001"]),
        ({"tag": "mde-management"}, ["SRV-SQL-01"]),
        ({"tag": "SQL"}, ["SRV-SQL-01"]),
        ({"q": "srv"}, ["SRV-SQL-01", "SRV-WEB-01"]),
        ({"q": "srv", "managed_by": "mde"}, ["SRV-SQL-01"]),
    ],
)
def test_filters_and_search(reader_client, fleet, params, expected):
    assert names(reader_client.get(LIST, params)) == expected


def test_an_unknown_filter_value_is_reported_and_shows_everything(reader_client, fleet):
    response = reader_client.get(LIST, {"managed_by": "nobody"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert len(names(response)) == 5


def test_an_htmx_request_gets_only_the_list(reader_client, fleet):
    response = reader_client.get(LIST, {"managed_by": "mde"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html and 'id="bulk-form"' in html and "SRV-SQL-01" in html


def test_pagination_shows_totals(reader_client):
    for n in range(30):
        make_device(display_name=f"CONTOSO-WS-{n:04d}")
    html = reader_client.get(LIST).content.decode()
    assert "Showing 1 to 25 of 30 records" in html
    html = reader_client.get(LIST + next_link(html)).content.decode()
    assert "Showing 26 to 30 of 30 records" in html


def test_the_list_costs_the_same_few_queries_for_any_fleet(reader_client, django_assert_max_num_queries):
    set_tenant()
    for n in range(60):
        services.reevaluate_device(make_device(display_name=f"CONTOSO-WS-{n:04d}"))
    reader_client.get(LIST)  # warm the session
    # 10, and one for the person's role-assignment scope (devices.scope)
    with django_assert_max_num_queries(11):
        response = reader_client.get(LIST, {"managed_by": "mde", "sort": "managed_by"})
    assert len(names(response)) == 25


def test_csv_export_has_every_filtered_device(reader_client, fleet):
    response = reader_client.get(LIST, {"managed_by": "mde", "export": "csv"})
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["Device name"] for r in rows] == ["CONTOSO-WS-0001", "SRV-SQL-01", "mac-alex-001"]
    assert rows[0]["Labels"] == "MDEJoined, MDEManaged" and rows[0]["managementType"] == "MicrosoftSense"


# ---- bulk selection -------------------------------------------------------------------------------------


def test_bulk_delete_asks_for_confirmation_then_deletes(ga_client, fleet):
    ids = [fleet["mde"].pk, fleet["mac"].pk]
    confirm = ga_client.post(reverse("devices:bulk"), {"action": "delete", "pk": ids})
    assert confirm.status_code == 200
    assert b"2 selected devices" in confirm.content
    assert Device.objects.filter(pk__in=ids).count() == 2

    done = ga_client.post(
        reverse("devices:bulk"), {"action": "delete", "pk": ids, "confirm": "yes"}, follow=True
    )
    assert b"Deleted 2 devices" in done.content
    assert not Device.objects.filter(pk__in=ids).exists()
    assert Device.objects.count() == 3


def test_bulk_with_nothing_selected_says_so(ga_client, fleet):
    response = ga_client.post(reverse("devices:bulk"), {"action": "delete"}, follow=True)
    assert b"Select at least one device" in response.content
    assert Device.objects.count() == 5


@pytest.mark.parametrize(
    "data", [{"action": "delete", "pk": ["1; DROP TABLE"]}, {"action": "explode", "pk": ["1"]}, {"pk": ["1"]}]
)
def test_a_forged_bulk_form_is_a_400_and_changes_nothing(ga_client, fleet, data):
    assert ga_client.post(reverse("devices:bulk"), {**data, "confirm": "yes"}).status_code == 400
    assert Device.objects.count() == 5


def test_a_read_only_operator_cannot_bulk_delete(reader_client, fleet):
    response = reader_client.post(
        reverse("devices:bulk"), {"action": "delete", "pk": [fleet["mde"].pk], "confirm": "yes"}
    )
    assert response.status_code == 403
    assert Device.objects.count() == 5


def test_bulk_delete_of_devices_that_are_gone_says_so(ga_client, fleet):
    response = ga_client.post(reverse("devices:bulk"), {"action": "delete", "pk": [987654]}, follow=True)
    assert b"None of the selected devices exists" in response.content
