"""The fleet counts PostgreSQL keeps (devices.tally): exact after every kind of write, compacted without loss, and
never a point where device writers wait on each other."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from devices import services, tally
from devices.models import Device, DeviceCountDelta
from reports import queries
from tests.devices.device_factories import device_values, make_device, set_tenant

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _exact() -> None:
    assert tally.fleet_counts() == tally.counted()


def test_counts_follow_every_kind_of_device_write():
    set_tenant()
    _exact()
    one = make_device(display_name="WS-1")
    _exact()
    Device.objects.bulk_create(
        [
            device_values(display_name=f"SRV-{i}", os="windows_server" if i % 2 else "windows")
            for i in range(30)
        ]
    )
    _exact()
    services.reevaluate_device(one)  # onboarding: managed_by and the enrollment status move
    one.refresh_from_db()
    assert one.managed_by == "mde"
    _exact()
    Device.objects.filter(display_name__startswith="SRV-1").update(
        enrollment_status="General error", managed_by="mde"
    )
    _exact()
    one.os = "macos"
    one.save()
    _exact()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE devices_device SET os = 'linux' WHERE display_name LIKE 'SRV-2%%'")
    _exact()
    Device.objects.get(display_name="SRV-3").delete()
    _exact()
    Device.objects.filter(os="linux").delete()
    _exact()
    assert sum(tally.fleet_counts().values()) == Device.objects.count() == 19


def test_a_check_in_that_moves_no_count_writes_no_delta():
    set_tenant()
    device = make_device(display_name="WS-1")
    before = DeviceCountDelta.objects.count()
    Device.objects.filter(pk=device.pk).update(display_name="WS-1b", agent_state={"x": 1})
    device.save()
    assert DeviceCountDelta.objects.count() == before


def test_compaction_folds_the_deltas_into_one_row_per_key_and_keeps_the_counts():
    set_tenant()
    devices = [make_device(display_name=f"WS-{i}") for i in range(12)]
    for status in ("General error", "Success", "General error"):
        Device.objects.filter(pk__in=[d.pk for d in devices[:5]]).update(enrollment_status=status)
    Device.objects.filter(pk=devices[-1].pk).delete()
    counts = tally.fleet_counts()
    before, after = tally.compact()
    assert before > after == len(counts)
    assert tally.fleet_counts() == counts == tally.counted()
    assert tally.compact() == (after, after)


def test_a_key_whose_devices_are_all_gone_leaves_no_row_after_compaction():
    set_tenant()
    device = make_device(display_name="WS-1", os="linux")
    device.delete()
    tally.compact()
    assert not DeviceCountDelta.objects.filter(os="linux").exists()
    assert ("none", "linux", "") not in tally.fleet_counts()


def test_truncating_the_devices_empties_the_counts():
    set_tenant()
    make_device(display_name="WS-1")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE devices_device CASCADE")
    assert tally.fleet_counts() == {}
    make_device(display_name="WS-2")
    _exact()


def test_rebuild_repairs_counts_that_were_tampered_with():
    set_tenant()
    make_device(display_name="WS-1")
    DeviceCountDelta.objects.create(managed_by="mde", os="windows", enrollment_status="Success", delta=7)
    assert tally.fleet_counts() != tally.counted()
    tally.rebuild()
    _exact()


def test_the_overview_charts_read_the_kept_counts():
    set_tenant()
    Device.objects.bulk_create([device_values(display_name=f"WS-{i}") for i in range(5)])
    Device.objects.update(managed_by="mde", enrollment_status="Success")
    groups, not_evaluated = queries.enrollment_breakdown()
    assert {g.status: g.count for g in groups if g.count} == {"Success": 5}
    assert not_evaluated == 0
    assert queries.mde_devices_by_os()["windows"] == 5
    # what they read is the kept counts, not the devices: a delta the devices don't have shows
    DeviceCountDelta.objects.create(managed_by="mde", os="linux", enrollment_status="General error", delta=2)
    groups, _ = queries.enrollment_breakdown()
    assert {g.status: g.count for g in groups if g.count} == {"Success": 5, "General error": 2}
    assert queries.mde_devices_by_os()["linux"] == 2


@pytest.mark.django_db(transaction=True)
def test_two_devices_changing_places_never_wait_on_each_other():
    """Device A moves Success -> Failed while device B moves Failed -> Success, in transactions that stay open.
    A counter row per key would make B wait for A's commit (both touch both keys); the deltas never do."""
    set_tenant()
    a = make_device(display_name="A")
    b = make_device(display_name="B")
    Device.objects.filter(pk=a.pk).update(managed_by="mde", enrollment_status="Success")
    Device.objects.filter(pk=b.pk).update(managed_by="mde", enrollment_status="General error")
    tally.compact()
    a_moved, b_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def move(pk: int, status: str, before: threading.Event | None, after: threading.Event) -> None:
        try:
            conn = connections.create_connection("default")
            try:
                with conn.cursor() as cursor:
                    cursor.execute("BEGIN")
                    cursor.execute("SET LOCAL lock_timeout = '3s'")
                    cursor.execute(
                        "UPDATE devices_device SET enrollment_status = %s WHERE id = %s", [status, pk]
                    )
                    after.set()
                    if before is not None:
                        assert b_done.wait(10), "the other writer did not finish while this one was open"
                    cursor.execute("COMMIT")
            finally:
                conn.close()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
            after.set()

    first = threading.Thread(target=move, args=(a.pk, "General error", b_done, a_moved))
    first.start()
    assert a_moved.wait(10)
    move(b.pk, "Success", None, b_done)
    first.join(15)
    assert not errors, errors
    _exact()
    assert tally.fleet_counts()[("mde", "windows", "Success")] == 1
