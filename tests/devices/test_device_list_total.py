"""All devices' total comes from the fleet counts PostgreSQL keeps (devices.tally) when they can answer it exactly:
the whole fleet, or narrowed by OS, Managed by or MDE enrollment status, for a viewer who sees every device. A
search, any other filter or a scoped viewer is counted. At a million devices the COUNT was the page's cost."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console import rbac
from devices import membership
from devices.models import Device, Group
from tests.devices.device_factories import make_device

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LIST = reverse("devices:list")


@pytest.fixture
def fleet():
    for n in range(12):
        make_device(
            display_name=f"WS-{n:02d}",
            os=["windows", "macos", "linux"][n % 3],
            tamper_protection=n % 2 == 0,
        )
    Device.objects.filter(display_name__in=["WS-00", "WS-03", "WS-06"]).update(
        managed_by="mde", enrollment_status="Success"
    )
    Device.objects.filter(display_name="WS-01").update(managed_by="mde", enrollment_status="General error")


def counted(queries) -> int:
    return sum(1 for q in queries if "COUNT(" in q["sql"].upper() and "devices_device" in q["sql"])


def total(html: str) -> int:
    found = re.search(r"([\d,]+) records<", html) or re.search(r"of ([\d,]+) records", html)
    assert found, "the page shows no total"
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sort": "os"},
        {"os": "macos"},
        {"managed_by": "mde"},
        {"managed_by": "mde", "os": "windows"},
        {"enrollment_status": "Success"},
        {"managed_by": "intune", "os": "linux"},  # nobody: 0
    ],
)
def test_the_total_of_the_fleet_or_its_kept_keys_is_read_from_the_fleet_counts(reader_client, fleet, params):
    filters = {k: v for k, v in params.items() if k != "sort"}
    with CaptureQueriesContext(connection) as queries:
        html = reader_client.get(LIST, params).content.decode()
    assert counted(queries.captured_queries) == 0
    assert any("devices_devicecountdelta" in q["sql"] for q in queries.captured_queries)
    assert total(html) == Device.objects.filter(**filters).count()


def test_the_kept_total_follows_a_new_device_at_once(reader_client, fleet):
    assert total(reader_client.get(LIST).content.decode()) == 12
    make_device(display_name="WS-NEW", os="macos")
    assert total(reader_client.get(LIST).content.decode()) == 13
    assert total(reader_client.get(LIST, {"os": "macos"}).content.decode()) == 5


def test_the_last_page_numbers_its_rows_from_the_kept_total(reader_client, fleet):
    html = reader_client.get(LIST, {"last": "1", "per_page": 5, "os": "windows"}).content.decode()
    assert "Showing 1 to 4 of 4 records" in html
    html = reader_client.get(LIST, {"last": "1", "per_page": 5}).content.decode()
    assert "Showing 8 to 12 of 12 records" in html


@pytest.mark.parametrize(
    "params",
    [{"q": "WS-0"}, {"tamper_protection": "on"}, {"os": "macos", "tamper_protection": "off"}, {"tag": "x"}],
)
def test_a_search_or_another_filter_is_counted(reader_client, fleet, params):
    with CaptureQueriesContext(connection) as queries:
        html = reader_client.get(LIST, params).content.decode()
    assert counted(queries.captured_queries) == 1
    qs = Device.objects.all()
    if "q" in params:
        qs = qs.filter(display_name__icontains=params["q"])
    if "os" in params:
        qs = qs.filter(os=params["os"])
    if "tamper_protection" in params:
        qs = qs.filter(tamper_protection=params["tamper_protection"] == "on")
    if "tag" in params:
        qs = qs.filter(tags__icontains=f",{params['tag']},")
    assert total(html) == qs.count()


def test_an_invalid_filter_is_counted_like_before(reader_client, fleet):
    with CaptureQueriesContext(connection) as queries:
        response = reader_client.get(LIST, {"os": "amiga"})
    assert response.status_code == 200
    assert counted(queries.captured_queries) == 1


def test_a_scoped_viewer_gets_the_count_of_their_scope_not_the_fleet(client, global_admin, fleet):
    group = Group.objects.create(name="Macs")
    membership.add_members(group, list(Device.objects.filter(os="macos").values_list("pk", flat=True)[:3]))
    role = rbac.create_role(name="Mac readers", actions=["Managed devices: Read"])
    quinn = get_user_model().objects.create_user("quinn", password="x-Unused-1234")
    rbac.create_assignment(name="Macs", role=role, members=[quinn], scope_groups=[group])
    client.force_login(quinn)
    with CaptureQueriesContext(connection) as queries:
        html = client.get(LIST).content.decode()
    assert counted(queries.captured_queries) == 1
    assert total(html) == 3
