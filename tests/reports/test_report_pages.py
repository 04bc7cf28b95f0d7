"""The status pages: Monitor, View report (filter, sort, paginate), the per-device drill-in naming the conflicting
policies, a setting's other policies, Per setting status and the Endpoint security overview."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.models import Device
from reports import queries
from reports.models import DevicePolicyStatus, PolicyStatusCount
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _kw(policy, **extra):
    return {"policy_id": policy.policy_id, **extra}


def _rows(html: str, attr: str = "data-device") -> list[str]:
    return re.findall(rf'<tr[^>]* {attr}="([^"]+)"', html)


def _hrefs(html: str, pattern: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]*)"', html) if pattern in h]


# ---------------------------------------------------------------------------------------------------------
# Monitor
# ---------------------------------------------------------------------------------------------------------


def test_the_monitor_page_shows_each_status_count_linked_to_view_report(ga_client, world):
    cloud = world.policies["Cloud"]
    html = ga_client.get(reverse("reports:policy_monitor", kwargs=_kw(cloud))).content.decode()

    counts = dict(PolicyStatusCount.objects.filter(policy=cloud).values_list("status", "count"))
    assert counts == {"succeeded": 3, "error": 1}
    devices = reverse("reports:policy_devices", kwargs=_kw(cloud))
    for status, label in [("succeeded", "3"), ("error", "1"), ("conflict", "0"), ("pending", "0")]:
        number = re.search(rf'data-testid="count-{status}"[^>]*>([\d,]+)<', html).group(1)
        assert number == label
    assert f'href="{devices}?status=error" data-testid="count-error"' in html
    assert '<svg class="chart donut"' in html and "Error: 1 (25%)" in html
    assert 'data-testid="device-total">4<' in html
    # the setting that fails is listed with a link to the devices where it fails
    assert f"{devices}?setting={f.BEHAVIOR}&setting_status=error" in _hrefs(html, "setting_status=error")


def test_the_monitor_page_of_a_policy_nobody_received_says_so(ga_client, db):
    lonely = f.policy("Unassigned", {f.PUA: 1})
    html = ga_client.get(reverse("reports:policy_monitor", kwargs=_kw(lonely))).content.decode()
    assert "No device has received this policy yet" in html
    assert 'data-testid="device-total">0<' in html


def test_an_unknown_policy_is_404(ga_client, db):
    url = reverse("reports:policy_monitor", kwargs={"policy_id": "00000000-0000-0000-0000-000000000000"})
    assert ga_client.get(url).status_code == 404


# ---------------------------------------------------------------------------------------------------------
# View report
# ---------------------------------------------------------------------------------------------------------


def test_view_report_lists_the_devices_that_received_the_policy(ga_client, world):
    html = ga_client.get(
        reverse("reports:policy_devices", kwargs=_kw(world.policies["Cloud"]))
    ).content.decode()
    assert _rows(html) == ["SRV-1", "WS-1", "WS-2", "WS-3"]  # by device name; WS-9 never received it
    assert 'data-device="WS-3" data-status="error"' in html
    assert "MDE</span>" in html  # Managed by
    assert "Showing 1 to 4 of 4 records" in html
    assert "<time datetime=" in html  # last report time


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=error", ["WS-3"]),
        ("status=succeeded", ["SRV-1", "WS-1", "WS-2"]),
        ("os=windows_server", ["SRV-1"]),
        ("q=ws-", ["WS-1", "WS-2", "WS-3"]),
        ("q=ws-&status=succeeded", ["WS-1", "WS-2"]),
        (f"setting={f.BEHAVIOR}&setting_status=error", ["WS-3"]),
        (f"setting={f.CLOUD}&setting_status=succeeded", ["SRV-1", "WS-1", "WS-2", "WS-3"]),
    ],
)
def test_view_report_filters_by_status_os_search_and_setting(ga_client, world, query, expected):
    url = reverse("reports:policy_devices", kwargs=_kw(world.policies["Cloud"]))
    html = ga_client.get(f"{url}?{query}").content.decode()
    assert _rows(html) == expected
    assert f"of {len(expected)} records" in html


def test_view_report_sorts_and_paginates(ga_client, world):
    url = reverse("reports:policy_devices", kwargs=_kw(world.policies["Cloud"]))
    first = ga_client.get(f"{url}?sort=-device&per_page=3").content.decode()
    assert _rows(first) == ["WS-3", "WS-2", "WS-1"]
    assert "Showing 1 to 3 of 4 records" in first
    second = ga_client.get(f"{url}?sort=-device&per_page=3&page=2").content.decode()
    assert _rows(second) == ["SRV-1"]
    by_status = ga_client.get(f"{url}?sort=status").content.decode()
    assert _rows(by_status)[0] == "WS-3"  # "error" sorts before "succeeded"
    beyond = ga_client.get(f"{url}?per_page=3&page=99").content.decode()
    assert _rows(beyond) == ["WS-3"]  # past the end: the last page


def test_view_report_caps_the_page_size(ga_client, world):
    url = reverse("reports:policy_devices", kwargs=_kw(world.policies["Cloud"]))
    response = ga_client.get(f"{url}?per_page=100000")
    assert response.status_code == 200
    assert response.context["table"].paginator.per_page == 200


def test_a_bad_filter_value_is_shown_beside_the_field_and_filters_nothing(ga_client, world):
    url = reverse("reports:policy_devices", kwargs=_kw(world.policies["Cloud"]))
    response = ga_client.get(f"{url}?status=bogus&os=windows&page=abc&sort=nonsense")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="errorlist"' in html and "bogus is not one of the available choices" in html
    assert _rows(html) == ["SRV-1", "WS-1", "WS-2", "WS-3"]


def test_the_report_uses_the_aggregate_total_and_agrees_with_a_count(ga_client, world):
    """With only a status filter, the total comes from PolicyStatusCount (no COUNT over the fleet)."""
    cloud = world.policies["Cloud"]
    url = reverse("reports:policy_devices", kwargs=_kw(cloud))
    response = ga_client.get(f"{url}?status=succeeded")
    assert response.context["table"].paginator.count == 3
    assert response.context["table"].paginator.known_count == 3
    assert DevicePolicyStatus.objects.filter(policy=cloud, status="succeeded").count() == 3
    searched = ga_client.get(f"{url}?q=WS")
    assert searched.context["table"].paginator.known_count is None  # a search is counted by the database


# ---------------------------------------------------------------------------------------------------------
# Drill-in
# ---------------------------------------------------------------------------------------------------------


def test_the_drill_in_shows_value_status_error_code_and_message_per_setting(ga_client, world):
    cloud, ws3 = world.policies["Cloud"], world.devices["WS-3"]
    html = ga_client.get(
        reverse("reports:policy_device_settings", kwargs=_kw(cloud, device_pk=ws3.pk))
    ).content.decode()
    behavior = re.search(
        rf'<tr data-setting="{f.BEHAVIOR}" data-status="error">(.*?)</tr>', html, re.S
    ).group(1)
    assert "Allow Behavior Monitoring" in behavior  # the catalog's display name
    assert "0x87D1FDE8" in behavior and "Tamper Protection blocked this change" in behavior
    # the catalog's option labels, not raw values: the policy asked for "off", the device still reports "on"
    assert re.search(r'data-value="policy">Not allowed\. Turns off behavior monitoring\.<', behavior)
    assert re.search(r'data-value="device">Allowed\. Turns on real-time behavior monitoring\.<', behavior)
    assert f'data-setting="{f.CLOUD}" data-status="succeeded"' in html


def test_the_drill_in_names_the_conflicting_policies_each_linked_to_its_page(ga_client, world):
    baseline, strict, ws1 = world.policies["Baseline"], world.policies["Strict PUA"], world.devices["WS-1"]
    html = ga_client.get(
        reverse("reports:policy_device_settings", kwargs=_kw(baseline, device_pk=ws1.pk))
    ).content.decode()
    pua = re.search(rf'<tr data-setting="{f.PUA}" data-status="conflict">(.*?)</tr>', html, re.S).group(1)
    assert 'data-other-policy="Strict PUA"' in pua
    assert '<span class="conflict-with">Conflict</span>' in pua
    assert reverse("policies:detail", kwargs={"policy_id": strict.policy_id}) in pua
    realtime = re.search(rf'<tr data-setting="{f.REALTIME}"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert "data-other-policy" not in realtime  # nobody else manages real-time monitoring


def test_a_setting_page_lists_the_other_policies_that_manage_it_as_a_source_of_conflict(ga_client, world):
    baseline, strict, ws1 = world.policies["Baseline"], world.policies["Strict PUA"], world.devices["WS-1"]
    url = reverse("reports:policy_device_setting", kwargs=_kw(baseline, device_pk=ws1.pk, setting_key=f.PUA))
    html = ga_client.get(url).content.decode()
    assert "PUA Protection" in html
    row = re.search(r'<tr data-other-policy="Strict PUA">(.*?)</tr>', html, re.S).group(1)
    assert "Yes" in row and reverse("policies:detail", kwargs={"policy_id": strict.policy_id}) in row
    assert reverse("reports:policy_monitor", kwargs={"policy_id": strict.policy_id}) in row
    assert "Avoid deploying multiple policies that manage the same setting" in html


def test_a_device_or_setting_without_status_for_the_policy_is_404(ga_client, world):
    cloud = world.policies["Cloud"]
    outside = world.devices["WS-9"]
    assert (
        ga_client.get(
            reverse("reports:policy_device_settings", kwargs=_kw(cloud, device_pk=outside.pk))
        ).status_code
        == 404
    )
    assert (
        ga_client.get(
            reverse("reports:policy_device_settings", kwargs=_kw(cloud, device_pk=987654))
        ).status_code
        == 404
    )
    url = reverse(
        "reports:policy_device_setting",
        kwargs=_kw(cloud, device_pk=world.devices["WS-1"].pk, setting_key=f.PUA),
    )
    assert ga_client.get(url).status_code == 404  # Cloud doesn't manage PUA protection


# ---------------------------------------------------------------------------------------------------------
# Per setting status
# ---------------------------------------------------------------------------------------------------------


def test_per_setting_status_counts_each_setting_and_links_each_count_to_those_devices(ga_client, world):
    cloud = world.policies["Cloud"]
    html = ga_client.get(reverse("reports:policy_settings", kwargs=_kw(cloud))).content.decode()
    assert _rows(html, "data-setting") == [f.BEHAVIOR, f.CLOUD] or set(_rows(html, "data-setting")) == {
        f.BEHAVIOR,
        f.CLOUD,
    }
    behavior = re.search(rf'<tr data-setting="{f.BEHAVIOR}">(.*?)</tr>', html, re.S).group(1)
    links = dict(re.findall(r'href="([^"]+)" class="count count-(\w+)"', behavior))
    by_status = {status: url.replace("&amp;", "&") for url, status in links.items()}
    assert set(by_status) == {"succeeded", "error"}
    report = ga_client.get(by_status["error"]).content.decode()
    assert _rows(report) == ["WS-3"]
    assert parse_qs(urlparse(by_status["error"]).query) == {
        "setting": [f.BEHAVIOR],
        "setting_status": ["error"],
    }
    succeeded = ga_client.get(by_status["succeeded"]).content.decode()
    assert _rows(succeeded) == ["SRV-1", "WS-1", "WS-2"]


def test_per_setting_status_searches_filters_and_sorts(ga_client, world):
    url = reverse("reports:policy_settings", kwargs=_kw(world.policies["Cloud"]))
    assert _rows(ga_client.get(f"{url}?q=cloud").content.decode(), "data-setting") == [f.CLOUD]
    assert _rows(ga_client.get(f"{url}?problems=1").content.decode(), "data-setting") == [f.BEHAVIOR]
    by_errors = ga_client.get(f"{url}?sort=-error").content.decode()
    assert _rows(by_errors, "data-setting")[0] == f.BEHAVIOR
    by_name = ga_client.get(f"{url}?sort=-name").content.decode()
    assert _rows(by_name, "data-setting") == [f.CLOUD, f.BEHAVIOR]  # "Allow Cloud …" after "Allow Behavior …"


# ---------------------------------------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------------------------------------


def test_the_overview_counts_mde_devices_by_platform_linking_to_all_devices_filtered(ga_client, world):
    html = ga_client.get(reverse("reports:overview")).content.decode()
    assert 'data-testid="kpi-managed">5<' in html  # WS-1..3, SRV-1 and WS-9 are managed by MDE
    server_link = next(h for h in _hrefs(html, "/devices/?") if "os=windows_server" in h)
    assert parse_qs(urlparse(server_link).query) == {"managed_by": ["mde"], "os": ["windows_server"]}
    listed = ga_client.get(server_link).content.decode()
    assert re.findall(r'data-device="([^"]+)"', listed) == ["SRV-1"]


def test_every_enrollment_group_links_to_all_devices_filtered_to_it(ga_client, world):
    from devices.onboarding import ENROLLMENT_STATUSES

    now = timezone.now()  # onboarding stamps management_changed_at with every status it writes
    Device.objects.filter(pk=world.devices["WS-9"].pk).update(
        enrollment_status="Tenant mismatch",
        enrollment_status_code=15,
        managed_by="none",
        management_changed_at=now,
    )
    Device.objects.exclude(pk=world.devices["WS-9"].pk).update(
        enrollment_status="Success", management_changed_at=now
    )
    html = ga_client.get(reverse("reports:overview")).content.decode()
    links = _hrefs(html, "enrollment_status=")
    assert len(links) == len(ENROLLMENT_STATUSES)  # success and every error group of the reference's table
    for link in links:
        response = ga_client.get(link)
        page = response.content.decode()
        assert response.status_code == 200 and "errorlist" not in page, link
    mismatch = next(link for link in links if "Tenant+mismatch" in link or "Tenant%20mismatch" in link)
    assert re.findall(r'data-device="([^"]+)"', ga_client.get(mismatch).content.decode()) == ["WS-9"]
    assert re.search(r'<li data-key="Tenant mismatch">.*?<a href="[^"]+">1</a>', html, re.S)
    assert re.search(r'<li data-key="Success">.*?<a href="[^"]+">4</a>', html, re.S)


def test_the_overview_shows_policies_per_type_with_their_status_totals(ga_client, world):
    html = ga_client.get(reverse("reports:overview")).content.decode()
    block = re.search(r'data-type="antivirus">(.*?)</table>', html, re.S).group(1)
    assert "3 policies" in block
    cloud_row = re.search(r'<tr data-policy="Cloud">(.*?)</tr>', block, re.S).group(1)
    devices = reverse("reports:policy_devices", kwargs=_kw(world.policies["Cloud"]))
    assert f'<a href="{devices}?status=succeeded" data-status="succeeded">3</a>' in cloud_row
    assert f'<a href="{devices}?status=error" data-status="error">1</a>' in cloud_row
    assert reverse("reports:policy_monitor", kwargs=_kw(world.policies["Cloud"])) in cloud_row


def test_the_overview_lists_devices_with_errors_or_conflicts(ga_client, world):
    html = ga_client.get(reverse("reports:overview")).content.decode()
    assert 'data-testid="kpi-issues">4<' in html  # every device of the group has the PUA conflict
    issues = ga_client.get(reverse("reports:issue_devices") + "?status=error").content.decode()
    assert _rows(issues) == ["WS-3"]
    assert 'data-policy="Cloud"' in issues
    conflicts = ga_client.get(reverse("reports:issue_devices") + "?status=conflict").content.decode()
    assert sorted(_rows(conflicts)) == sorted(["WS-1", "WS-2", "WS-3", "SRV-1"] * 2)
    assert "of 8 records" in conflicts


def test_the_overview_counts_late_devices_up_to_a_cap_and_says_more(ga_client, world, monkeypatch):
    """A fleet that stopped checking in (an outage) must not make the overview count every device: it counts to
    the cap and shows "cap+"; the late devices' own list keeps the exact total."""
    Device.objects.update(next_checkin_at=timezone.now() - timedelta(hours=3))
    late = Device.objects.filter(next_checkin_at__isnull=False).count()
    assert late > 3
    monkeypatch.setattr(queries, "LATE_COUNT_CAP", 3)
    html = ga_client.get(reverse("reports:overview")).content.decode()
    assert 'data-testid="kpi-late">3+<' in html
    assert "View all (3+)" in html
    listed = ga_client.get(reverse("reports:late_devices")).content.decode()
    assert f"of {late} records" in listed
    monkeypatch.setattr(queries, "LATE_COUNT_CAP", late)
    html = ga_client.get(reverse("reports:overview")).content.decode()
    assert f'data-testid="kpi-late">{late}<' in html


def test_devices_whose_last_checkin_is_too_old_are_late(ga_client, world):
    now = timezone.now()
    late, fresh = world.devices["WS-1"], world.devices["WS-2"]
    Device.objects.filter(pk=late.pk).update(
        last_checkin_at=now - timedelta(minutes=150), next_checkin_at=now - timedelta(minutes=60)
    )
    Device.objects.filter(pk=fresh.pk).update(
        last_checkin_at=now - timedelta(minutes=100), next_checkin_at=now - timedelta(minutes=10)
    )
    Device.objects.exclude(pk__in=[late.pk, fresh.pk]).update(next_checkin_at=now + timedelta(minutes=30))
    Device.objects.filter(pk=world.devices["WS-9"].pk).update(next_checkin_at=None)  # not checking in at all

    html = ga_client.get(reverse("reports:overview")).content.decode()
    assert 'data-testid="kpi-late">1<' in html
    listed = ga_client.get(reverse("reports:late_devices")).content.decode()
    assert _rows(listed) == ["WS-1"]
    assert (
        ga_client.get(reverse("reports:late_devices") + "?os=windows_server")
        .content.decode()
        .count("data-device=")
        == 0
    )


def test_the_drill_in_offers_policy_sync_to_those_allowed_and_comes_back_after_it(
    client, world, security_manager, reader
):
    cloud, ws1 = world.policies["Cloud"], world.devices["WS-1"]
    url = reverse("reports:policy_device_settings", kwargs=_kw(cloud, device_pk=ws1.pk))
    client.force_login(reader)
    assert 'data-testid="drill-policy-sync"' not in client.get(url).content.decode()
    client.force_login(security_manager)
    assert 'data-testid="drill-policy-sync"' in client.get(url).content.decode()

    response = client.post(reverse("checkins:device_sync", args=[ws1.pk]), {"next": url})
    assert response.status_code == 302 and response["Location"] == url
    assert Device.objects.get(pk=ws1.pk).sync_requested_at is not None
    assert "Policy sync requested" in client.get(url).content.decode()
