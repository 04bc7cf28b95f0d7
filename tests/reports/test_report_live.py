"""Live refresh: each live region polls a cheap version check; 204 while nothing it shows changed, the fresh
partial (carrying its new version) once a check-in or a Pending marking changed it."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from devices.models import Device
from reports import live
from reports.ingest import mark_pending
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _version(html: str, region: str) -> str:
    match = re.search(rf'id="{region}" class="live-region" data-version="(\w+)" hx-get="([^"]+)"', html)
    assert match, f"no live region {region}"
    return match.group(1)


def _poll(client, url: str, version: str):
    return client.get(f"{url}?v={version}", HTTP_HX_REQUEST="true")


def test_the_monitor_page_polls_its_live_url_every_few_seconds(ga_client, world):
    cloud = world.policies["Cloud"]
    html = ga_client.get(
        reverse("reports:policy_monitor", kwargs={"policy_id": cloud.policy_id})
    ).content.decode()
    version = _version(html, "monitor-live")
    live_url = reverse("reports:policy_monitor_live", kwargs={"policy_id": cloud.policy_id})
    assert (
        f'hx-get="{live_url}?v={version}" hx-trigger="every {live.POLL_SECONDS}s" hx-swap="outerHTML"' in html
    )
    assert version == live.policy_version(cloud)  # the page and the poll compute the same version


def test_the_monitor_poll_is_empty_until_a_checkin_changes_the_policy_then_returns_the_fresh_donut(
    ga_client, world
):
    cloud, ws3 = world.policies["Cloud"], world.devices["WS-3"]
    url = reverse("reports:policy_monitor_live", kwargs={"policy_id": cloud.policy_id})
    before = live.policy_version(cloud)
    unchanged = _poll(ga_client, url, before)
    assert unchanged.status_code == 204 and unchanged.content == b""
    assert unchanged["Cache-Control"] == "no-store"

    # WS-3's Tamper Protection is turned off: its next check-in applies the policy and the error is gone.
    Device.objects.filter(pk=ws3.pk).update(tamper_protection=False)
    f.make_due(ws3)
    f.checkin(ws3)

    fresh = _poll(ga_client, url, before)
    html = fresh.content.decode()
    assert fresh.status_code == 200
    assert "<html" not in html  # just the region
    after = _version(html, "monitor-live")
    assert after != before and after == live.policy_version(cloud)
    assert re.search(r'data-testid="count-succeeded">4<', html)
    assert re.search(r'data-testid="count-error"[^>]*>0<', html)
    assert _poll(ga_client, url, after).status_code == 204


def test_a_change_to_another_policy_does_not_refresh_this_monitor(world):
    cloud, baseline = world.policies["Cloud"], world.policies["Baseline"]
    before_cloud, before_baseline = live.policy_version(cloud), live.policy_version(baseline)
    mark_pending([d.pk for d in world.devices.values()], [baseline.pk])
    assert live.policy_version(baseline) != before_baseline
    assert live.policy_version(cloud) == before_cloud


def test_the_version_check_is_one_query_whatever_the_fleet(world):
    cloud = world.policies["Cloud"]
    with CaptureQueriesContext(connection) as queries:
        live.policy_version(cloud)
    assert len(queries) == 1
    with CaptureQueriesContext(connection) as queries:
        live.overview_version()
    assert len(queries) == 2
    with CaptureQueriesContext(connection) as queries:
        live.device_version(world.devices["WS-1"].pk)
    assert len(queries) == 1


def test_the_overview_poll_refreshes_after_pending_marking_and_a_new_device(ga_client, world, frozen_clock):
    html = ga_client.get(reverse("reports:overview")).content.decode()
    before = _version(html, "overview-live")
    url = reverse("reports:overview_live")
    assert _poll(ga_client, url, before).status_code == 204

    mark_pending([world.devices["WS-1"].pk], [world.policies["Cloud"].pk])
    fresh = _poll(ga_client, url, before)
    assert fresh.status_code == 200
    middle = _version(fresh.content.decode(), "overview-live")
    assert middle != before
    assert _poll(ga_client, url, middle).status_code == 204

    f.device("WS-NEW")
    newest = _poll(ga_client, url, middle)
    assert newest.status_code == 200
    assert 'data-testid="kpi-managed">6<' in newest.content.decode()


def test_the_drill_in_poll_refreshes_when_the_device_checks_in(ga_client, world):
    cloud, ws3 = world.policies["Cloud"], world.devices["WS-3"]
    kwargs = {"policy_id": cloud.policy_id, "device_pk": ws3.pk}
    html = ga_client.get(reverse("reports:policy_device_settings", kwargs=kwargs)).content.decode()
    before = _version(html, "drill-live")
    url = reverse("reports:policy_device_settings_live", kwargs=kwargs)
    assert _poll(ga_client, url, before).status_code == 204

    Device.objects.filter(pk=ws3.pk).update(tamper_protection=False)
    f.make_due(ws3)
    f.checkin(ws3)
    fresh = _poll(ga_client, url, before)
    assert fresh.status_code == 200
    assert f'data-setting="{f.BEHAVIOR}" data-status="succeeded"' in fresh.content.decode()


def test_the_device_panel_poll_refreshes_when_a_policy_sync_is_requested(ga_client, world):
    from devices.checkins import request_policy_sync

    ws1 = world.devices["WS-1"]
    url = reverse("reports:device_panel_live", args=[ws1.pk])
    first = ga_client.get(url, HTTP_HX_REQUEST="true")
    assert first.status_code == 200
    html = first.content.decode()
    version = _version(html, f"device-panel-live-{ws1.pk}")
    assert f'id="checkin-panel-{ws1.pk}"' in html  # the check-in panel, inside the live wrapper
    assert _poll(ga_client, url, version).status_code == 204

    request_policy_sync([Device.objects.get(pk=ws1.pk)])
    refreshed = _poll(ga_client, url, version)
    assert refreshed.status_code == 200
    assert "Sync requested" in refreshed.content.decode()
    assert ga_client.get(reverse("reports:device_panel_live", args=[987654])).status_code == 404
