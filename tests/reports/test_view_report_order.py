"""View report reads a policy's devices in page order from the policy status row: the row carries the device's
name (written with the row, kept on a rename), and (policy, name, id) / (policy, status, name, id) order it."""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reports import pending
from reports.models import DevicePolicyStatus
from tests.checkins import fleet as f
from tests.reports.conftest import build_world

pytestmark = pytest.mark.django_db


def _names(policy) -> dict[str, str]:
    # values only: the migration test reads this at an older schema than the models' (no model instances)
    return dict(
        DevicePolicyStatus.objects.filter(policy=policy).values_list("device__display_name", "device_name")
    )


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr[^>]* data-device="([^"]+)"', html)


def test_a_checked_in_devices_policy_rows_carry_its_name(world):
    names = _names(world.policies["Cloud"])
    assert names == {"WS-1": "WS-1", "WS-2": "WS-2", "WS-3": "WS-3", "SRV-1": "SRV-1"}


def test_rows_marked_pending_for_a_new_assignment_carry_the_name(world):
    late = f.device("WS-LATE", groups=[world.group])
    policy = f.policy("Later", {f.PUA: 1}, include=[world.group])
    DevicePolicyStatus.objects.filter(
        device=late
    ).delete()  # whatever the signals did: add_missing_rows writes it
    pending.add_missing_rows([policy.pk], [late.pk])
    assert DevicePolicyStatus.objects.get(policy=policy, device=late).device_name == "WS-LATE"


def test_a_renamed_device_is_listed_by_its_new_name(ga_client, world):
    device = world.devices["WS-1"]
    device.display_name = "ZZ-RENAMED"
    device.save()
    cloud = world.policies["Cloud"]
    assert set(_names(cloud).items()) >= {("ZZ-RENAMED", "ZZ-RENAMED")}
    html = ga_client.get(reverse("reports:policy_devices", kwargs={"policy_id": cloud.policy_id})).content
    assert _rows(html.decode()) == ["SRV-1", "WS-2", "WS-3", "ZZ-RENAMED"]


def test_a_check_in_save_of_other_fields_does_not_touch_the_rows(world):
    device = world.devices["WS-2"]
    with CaptureQueriesContext(connection) as ctx:
        device.save(update_fields=["last_checkin_at"])
    assert not [q for q in ctx.captured_queries if "reports_devicepolicystatus" in q["sql"]]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
@pytest.mark.parametrize(
    "query",
    ["", "?sort=status", "?status=error", "?sort=-device", "?sort=-last_reported_at"],
    ids=["name", "status", "filtered", "desc", "last_report"],
)
def test_a_view_report_page_is_read_in_order_from_the_policys_rows(ga_client, world, query):
    # At 1,000,000 devices the first page sorted by the device table's name walked the devices in name order and
    # probed each one for the policy's row: 580,377 probes for 25 rows of a policy whose devices sort last (1.1 s).
    # Sorting is forbidden here so the plan must deliver the order from an index, as a top-N over 46,568 rows or a
    # walk over 1,000,000 devices had to be weighed there.
    cloud = world.policies["Cloud"]
    url = reverse("reports:policy_devices", kwargs={"policy_id": cloud.policy_id}) + query
    with CaptureQueriesContext(connection) as ctx:
        assert ga_client.get(url).status_code == 200
    page = [
        q["sql"]
        for q in ctx.captured_queries
        if "LIMIT" in q["sql"] and "reports_devicepolicystatus" in q["sql"]
    ]
    assert len(page) == 1, page
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + page[0])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert re.search(r"Index Scan( Backward)? using dps_policy_(status_name|name|reported)_idx", plan), plan
    after_limit = plan.split("Limit", 1)[1]
    if "last_report" in query:
        # (policy, last reported) has no tiebreaker (it deduplicates: a batch reports at one time): the few rows
        # of one time are put in device order as they come, never the policy's rows as a whole
        assert "Incremental Sort" in after_limit, plan
        assert re.search(r"Presorted Key: (\w+\.)?last_reported_at\n", after_limit), plan
    full_sort = re.search(r"^\s*(->\s*)?Sort\s+\(", after_limit, re.MULTILINE)  # not an incremental one
    assert "device_name_seek_idx" not in plan and not full_sort, plan


def test_last_report_time_sorts_newest_first_and_back(ga_client, world):
    from datetime import timedelta

    from django.utils import timezone

    cloud = world.policies["Cloud"]
    now = timezone.now()
    for minutes, name in enumerate(["WS-2", "SRV-1", "WS-3", "WS-1"]):
        DevicePolicyStatus.objects.filter(policy=cloud, device__display_name=name).update(
            last_reported_at=now - timedelta(minutes=minutes)
        )
    url = reverse("reports:policy_devices", kwargs={"policy_id": cloud.policy_id})
    newest = _rows(ga_client.get(url + "?sort=-last_reported_at").content.decode())
    assert newest == ["WS-2", "SRV-1", "WS-3", "WS-1"]
    assert _rows(ga_client.get(url + "?sort=last_reported_at").content.decode()) == newest[::-1]


def test_devices_reported_at_one_time_are_listed_in_device_order_both_ways(ga_client, world):
    from django.utils import timezone

    cloud = world.policies["Cloud"]
    rows = list(DevicePolicyStatus.objects.filter(policy=cloud).order_by("-device_id"))
    DevicePolicyStatus.objects.filter(policy=cloud).delete()
    for row in rows:  # written last device first: the rows' own ids run against the devices' order
        row.pk, row.last_reported_at = None, timezone.now()
    DevicePolicyStatus.objects.bulk_create(rows)
    DevicePolicyStatus.objects.filter(policy=cloud).update(last_reported_at=timezone.now())  # one batch
    by_id = [
        name
        for name, _ in sorted(
            DevicePolicyStatus.objects.filter(policy=cloud).values_list("device_name", "device_id"),
            key=lambda row: row[1],
        )
    ]
    url = reverse("reports:policy_devices", kwargs={"policy_id": cloud.policy_id})
    assert _rows(ga_client.get(url + "?sort=last_reported_at").content.decode()) == by_id
    assert _rows(ga_client.get(url + "?sort=-last_reported_at").content.decode()) == by_id[::-1]


def test_os_and_managed_by_are_shown_but_not_sortable(ga_client, world):
    # Sorting a policy's devices by their device's OS or manager joined and sorted every row of the policy
    # (1.9 s and 5.4 s at 1,000,000 devices); the columns stay, their headers are not sort links, and a
    # hand-made ?sort=os shows the default order.
    cloud = world.policies["Cloud"]
    url = reverse("reports:policy_devices", kwargs={"policy_id": cloud.policy_id})
    html = ga_client.get(url).content.decode()
    assert "sort=os" not in html and "sort=managed_by" not in html
    assert "sort=last_reported_at" in html or "sort=-last_reported_at" in html
    assert _rows(ga_client.get(url + "?sort=os").content.decode()) == ["SRV-1", "WS-1", "WS-2", "WS-3"]


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_rows_their_devices_name():
    before, after = [("reports", "0007_status_messages")], [("reports", "0008_policy_status_device_name")]
    world = build_world()
    cloud = world.policies["Cloud"]
    executor = MigrationExecutor(connection)
    executor.migrate(before)

    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
        assert _names(cloud) == {"WS-1": "WS-1", "WS-2": "WS-2", "WS-3": "WS-3", "SRV-1": "SRV-1"}
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())  # the latest schema for the other tests
