"""Query budgets: every report page runs a fixed number of SQL statements, the same for a fleet of 4 devices and
of 64, and for a page of 5 rows and of 50 (no per-row queries)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reports import live
from tests.checkins import fleet as f
from tests.reports.conftest import build_world

pytestmark = pytest.mark.django_db

# Each budget includes the request's own overhead: session, user, the user's and its groups' permissions (4),
# and the shell's context processor (tenant name, role: 2). The overview is counted cold: its three tenant-wide
# counts (MDE devices per OS, enrollment groups, devices with problems) are cached per version, so a warm render
# is three fewer. A live poll that finds nothing changed is the overhead plus the version check; one that finds a
# change renders the region.
# Pages that show devices spend one query more on the person's role-assignment scope (devices.scope); so does the
# overview, whose charts are the viewer's (one query tells a whole-tenant viewer, who keeps the cached aggregates).
# View report, Per setting status and the drill-in spend one more on "Overridden by …" (effective settings: one
# query over the partial index of overridden entries, for the page's devices or the policy's settings).
BUDGETS = {
    "overview": 16,
    "overview_live_unchanged": 6,
    "overview_live_changed": 18,
    # A policy's pages spend one query on the viewer's scope tags (console.scopetags: a hidden policy is a 404).
    "monitor": 11,
    "monitor_live_unchanged": 7,
    "monitor_live_changed": 11,
    "view_report": 11,
    "view_report_filtered": 11,
    "per_setting": 11,  # + the scope tags; + the policy's device count: unreported devices are Pending for every setting
    "drill_in": 13,  # + the role-assignment scope
    "setting": 11,
    "issues": 10,
    "late": 9,
}


def _urls(world, per_page: int) -> dict[str, str]:
    cloud, baseline = world.policies["Cloud"], world.policies["Baseline"]
    ws1 = world.devices["WS-1"]
    devices = reverse("reports:policy_devices", kwargs={"policy_id": cloud.policy_id})
    monitor_live = reverse("reports:policy_monitor_live", kwargs={"policy_id": cloud.policy_id})
    return {
        "overview": reverse("reports:overview"),
        "overview_live_unchanged": reverse("reports:overview_live") + f"?v={live.overview_version()}",
        "overview_live_changed": reverse("reports:overview_live") + "?v=stale",
        "monitor": reverse("reports:policy_monitor", kwargs={"policy_id": cloud.policy_id}),
        "monitor_live_unchanged": f"{monitor_live}?v={live.policy_version(cloud)}",
        "monitor_live_changed": f"{monitor_live}?v=stale",
        "view_report": f"{devices}?per_page={per_page}",
        "view_report_filtered": f"{devices}?per_page={per_page}&q=WS&setting={f.CLOUD}&setting_status=succeeded",
        "per_setting": reverse("reports:policy_settings", kwargs={"policy_id": cloud.policy_id}),
        "drill_in": reverse(
            "reports:policy_device_settings", kwargs={"policy_id": baseline.policy_id, "device_pk": ws1.pk}
        ),
        "setting": reverse(
            "reports:policy_device_setting",
            kwargs={"policy_id": baseline.policy_id, "device_pk": ws1.pk, "setting_key": f.PUA},
        ),
        "issues": reverse("reports:issue_devices") + f"?per_page={per_page}",
        "late": reverse("reports:late_devices") + f"?per_page={per_page}",
    }


def _expected_status(page: str) -> int:
    return 204 if page.endswith("_unchanged") else 200


def _count(client, page: str, url: str) -> int:
    from django.core.cache import cache

    cache.clear()  # the worst case: the overview's tenant-wide counts are computed, not cached
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == _expected_status(page), url
    return len(ctx)


@pytest.fixture(autouse=True)
def frozen_minute(monkeypatch):
    """The overview's version includes the minute: hold the clock so "unchanged" stays unchanged."""
    from django.utils import timezone

    now = timezone.now()
    monkeypatch.setattr("reports.views.timezone.now", lambda: now)
    monkeypatch.setattr("reports.live.timezone.now", lambda: now)


def _make_everyone_late():
    from datetime import timedelta

    from django.utils import timezone

    from devices.models import Device

    Device.objects.update(next_checkin_at=timezone.now() - timedelta(hours=3))


@pytest.mark.parametrize("page", sorted(BUDGETS))
def test_each_report_page_stays_within_its_query_budget(
    ga_client, world, page, django_assert_max_num_queries, frozen_clock
):
    _make_everyone_late()
    url = _urls(world, 25)[page]
    with django_assert_max_num_queries(BUDGETS[page]):
        response = ga_client.get(url)
    assert response.status_code == _expected_status(page)


def test_query_counts_do_not_grow_with_the_fleet_or_the_page_size(ga_client, db, frozen_clock):
    world = build_world()
    _make_everyone_late()
    small = {page: _count(ga_client, page, url) for page, url in _urls(world, 5).items()}

    group = world.group
    more = [f.device(f"WS-M{i:03d}", groups=[group], tamper=False) for i in range(60)]
    f.checkin(*more)
    _make_everyone_late()
    large = {page: _count(ga_client, page, url) for page, url in _urls(world, 50).items()}

    assert large == small
    assert all(small[page] <= BUDGETS[page] for page in BUDGETS), small


def test_an_export_runs_the_same_queries_for_any_number_of_rows(ga_client, db):
    world = build_world()
    url = (
        reverse("reports:policy_devices", kwargs={"policy_id": world.policies["Cloud"].policy_id})
        + "?export=csv"
    )
    small = _count(ga_client, "export", url)
    more = [f.device(f"WS-E{i:03d}", groups=[world.group], tamper=False) for i in range(40)]
    f.checkin(*more)
    assert _count(ga_client, "export", url) == small
