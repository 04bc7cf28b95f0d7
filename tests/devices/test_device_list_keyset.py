"""All devices and the audit log page by keyset (seek), not OFFSET: every sort order walks every row exactly once.

A page link carries the sort value and the id of its boundary row (``?after=`` / ``?before=``), so page 40,000 of a
million devices is one index seek like page 1. These tests walk whole lists forwards and backwards on every
sortable column, with ties and empty values, and check that nothing repeats or goes missing.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from devices.models import Device
from tests.devices.device_factories import make_device

pytestmark = pytest.mark.django_db

LIST = reverse("devices:list")
SORTABLE = [
    "display_name",
    "managed_by",
    "os",
    "os_version",
    "join_type",
    "enrollment_status",
    "tamper_protection",
    "mde_onboarded",
    "last_checkin_at",
]


@pytest.fixture
def ties():
    """23 devices with duplicate names, few OS values and empty check-ins: every column has ties or NULLs."""
    now = timezone.now()
    oses = ["windows", "windows_server", "macos"]
    for n in range(23):
        make_device(
            display_name=f"PC-{n % 7:02d}",
            os=oses[n % 3],
            os_version=f"10.0.{n % 4}",
            tamper_protection=n % 2 == 0,
            intune_enrolled=n % 5 == 0,
        )
    # a third never checked in (NULL), the rest with repeated times
    for i, device in enumerate(Device.objects.order_by("pk")):
        if i % 3:
            Device.objects.filter(pk=device.pk).update(last_checkin_at=now - timedelta(minutes=i % 4))


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="(\?[^"]*)" rel="{rel}"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def ids(response) -> list[int]:
    return [row.record.pk for row in response.context["table"].rows]


def walk(client, query: str) -> tuple[list[list[int]], list[str]]:
    pages, htmls = [], []
    url = LIST + query
    while url:
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        pages.append(ids(response))
        htmls.append(html)
        nxt = link(html, "next")
        url = LIST + nxt if nxt else None
        assert len(pages) < 50, "the walk does not end"
    return pages, htmls


@pytest.mark.parametrize("sort", SORTABLE + [f"-{s}" for s in SORTABLE])
def test_walking_next_visits_every_device_once_in_the_column_order(reader_client, ties, sort):
    pages, htmls = walk(reader_client, f"?sort={sort}&per_page=5")
    seen = [pk for page in pages for pk in page]
    assert sorted(seen) == sorted(Device.objects.values_list("pk", flat=True))
    assert len(pages) == 5 and [len(p) for p in pages] == [5, 5, 5, 5, 3]
    field = sort.lstrip("-")
    values = dict(Device.objects.values_list("pk", field))
    keys = [values[pk] for pk in seen]
    present = [k for k in keys if k is not None]
    assert present == sorted(present, reverse=sort.startswith("-"))
    # NULLs last ascending, first descending; the id breaks ties in the same direction
    nulls = [i for i, k in enumerate(keys) if k is None]
    if nulls:
        expected = (
            list(range(len(keys) - len(nulls), len(keys))) if sort[0] != "-" else list(range(len(nulls)))
        )
        assert nulls == expected
    assert "Showing 1 to 5 of 23 records" in htmls[0] and "Showing 21 to 23 of 23 records" in htmls[-1]

    # and back with Previous from the last page: the same pages in reverse
    back = [pages[-1]]
    html = htmls[-1]
    while prev := link(html, "prev"):
        response = reader_client.get(LIST + prev)
        html = response.content.decode()
        back.append(ids(response))
    assert back[::-1] == pages


def test_last_page_is_the_tail_of_the_order(reader_client, ties):
    pages, _ = walk(reader_client, "?sort=-last_checkin_at&per_page=5")
    order = [pk for page in pages for pk in page]
    response = reader_client.get(LIST, {"sort": "-last_checkin_at", "per_page": 5, "last": 1})
    assert ids(response) == order[-5:]
    html = response.content.decode()
    assert "Showing 19 to 23 of 23 records" in html
    assert link(html, "next") is None and link(html, "prev")


def test_filters_and_search_are_kept_while_paging(reader_client, ties):
    pages, htmls = walk(reader_client, "?os=windows&q=PC-0&sort=os_version&per_page=3")
    seen = {pk for page in pages for pk in page}
    expected = set(
        Device.objects.filter(os="windows", display_name__icontains="PC-0").values_list("pk", flat=True)
    )
    assert seen == expected and len(seen) == sum(len(p) for p in pages)
    assert all("os=windows" in (link(h, "next") or "os=windows") for h in htmls)


@pytest.mark.parametrize("cursor", ["garbage", "eyJ4IjoxfQ", "W10", "x" * 3000])
def test_a_broken_page_link_shows_the_first_page_and_says_so(reader_client, ties, cursor):
    response = reader_client.get(LIST, {"after": cursor, "per_page": 5})
    assert response.status_code == 200
    assert "That page link is not valid any more" in response.content.decode()
    assert len(ids(response)) == 5


def test_a_page_link_of_another_sort_order_starts_that_order_at_page_one(reader_client, ties):
    first = reader_client.get(LIST, {"sort": "os", "per_page": 5}).content.decode()
    nxt = link(first, "next").replace("sort=os", "sort=display_name")
    response = reader_client.get(LIST + nxt)
    assert "Showing 1 to 5 of 23 records" in response.content.decode()


def test_a_deep_page_costs_the_same_queries_as_the_first(reader_client, ties):
    # searched, so the total is a COUNT (the whole fleet's comes from the kept fleet counts on PostgreSQL)
    pages, htmls = walk(reader_client, "?sort=last_checkin_at&per_page=2&q=PC")
    deep = link(htmls[-2], "next")
    with CaptureQueriesContext(connection) as first:
        reader_client.get(LIST, {"sort": "last_checkin_at", "per_page": 2, "q": "PC"})
    with CaptureQueriesContext(connection) as last:
        reader_client.get(LIST + deep)
    assert len(last) <= len(first) + 1  # a nullable column may read its second segment
    assert not any("OFFSET" in q["sql"] for q in last.captured_queries)
    # the total travels with the page links: only the first page counts
    assert any("COUNT(" in q["sql"] for q in first.captured_queries)
    assert not any("COUNT(" in q["sql"] for q in last.captured_queries)


def test_the_audit_log_pages_by_keyset_newest_first(ga_client):
    from console import audit
    from console.models import AuditEvent

    for i in range(7):
        audit.record("policy.update", object_type="Policy", object_repr=f"POLICY-{i}")
    url = reverse("audit_logs")
    seen = []
    query = "?per_page=3&action=policy.update"
    while query:
        html = ga_client.get(url + query).content.decode()
        seen += re.findall(r"POLICY-(\d)", html)
        query = link(html, "next")
    assert seen == [str(i) for i in range(6, -1, -1)]
    assert AuditEvent.objects.filter(action="policy.update").count() == 7


def test_a_group_member_list_pages_by_keyset_with_the_kept_member_count(ga_client, ties):
    from devices.membership import add_members
    from tests.devices.device_factories import make_group

    group = make_group("Lab")
    members = list(Device.objects.order_by("pk").values_list("pk", flat=True))[:17]
    add_members(group, members)
    group.refresh_from_db()
    url = reverse("devices:group_detail", args=[group.pk])
    seen, query, pages = [], "?per_page=5", 0
    queries = []
    while query:
        with CaptureQueriesContext(connection) as captured:
            response = ga_client.get(url + query)
        queries.append(len(captured))
        html = response.content.decode()
        seen += ids(response)
        query = link(html, "next")
        pages += 1
    assert sorted(seen) == sorted(members) and len(seen) == 17 and pages == 4
    assert "Showing 16 to 17 of 17 records" in html
    assert max(queries) <= min(queries) + 1  # the remove buttons do not query per row


@pytest.fixture
def large_totals(monkeypatch):
    """A list counts as large from 5 rows on: its total is kept in the cache (console.listing.list_total)."""
    from django.core.cache import cache

    from console import listing

    monkeypatch.setattr(listing, "LARGE_TOTAL", 5)
    cache.clear()
    yield
    cache.clear()


def counts(queries) -> int:
    return sum(1 for q in queries if "COUNT(" in q["sql"].upper())


def test_a_large_list_counts_its_total_once_and_keeps_it_briefly(reader_client, ties, large_totals):
    # a search: the fleet counts PostgreSQL keeps cannot answer it (test_device_list_total.py), so it is counted
    with CaptureQueriesContext(connection) as first:
        html = reader_client.get(LIST, {"q": "PC-"}).content.decode()
    assert counts(first.captured_queries) == 1 and "of 23 records" in html
    make_device(display_name="PC-NEW")
    with CaptureQueriesContext(connection) as second:
        html = reader_client.get(LIST, {"q": "PC-"}).content.decode()
    assert counts(second.captured_queries) == 0
    assert "of 23 records" in html  # the kept total (for LARGE_TOTAL_SECONDS); the rows are read fresh
    filtered = reader_client.get(LIST, {"q": "PC-01"}).content.decode()  # another query: its own total
    assert re.search(r"of \d+ records", filtered) and "of 23 records" not in filtered


def test_a_small_list_is_counted_on_every_request(reader_client, ties):
    reader_client.get(LIST, {"q": "PC-"})
    make_device(display_name="PC-NEW")
    with CaptureQueriesContext(connection) as queries:
        html = reader_client.get(LIST, {"q": "PC-"}).content.decode()
    assert counts(queries.captured_queries) == 1 and "of 24 records" in html
