"""Issue 10, item 4: pending marking is idempotent when re-onboarding and membership changes race.

Seen: ``management_changed_task`` raised ``IntegrityError UNIQUE (device_id, policy_id)`` when "Allow MDE to
enforce…" was turned back on (many devices re-onboarding at once) while Entra Connect was toggled (membership
changes queue ``mark_devices_pending`` for the same devices). Whatever order the tasks run in, each device ends
with exactly one row per targeted policy and the aggregates equal a recount of the rows.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections

from devices.models import Device
from reports.ingest import recount, stored_counts
from reports.models import DevicePolicyStatus, DeviceSettingStatus
from reports.pending import add_missing_rows, initialise_device, management_changed_task, mark_devices_pending
from tests.checkins import fleet as f


def _unmanaged_fleet(n: int):
    """``n`` devices not (yet) managed by MDE in two groups; "Baseline" targets one group, "Cloud" the other,
    as a static group and an Entra-synced group would."""
    static, synced = f.group("Static"), f.group("Synced from Entra Connect")
    devices = [f.device(f"PC-{i:03d}", mde=False, groups=[static, synced], due=False) for i in range(n)]
    baseline = f.policy("Baseline", {f.PUA: 1, f.REALTIME: 1}, include=[static])
    cloud = f.policy("Cloud", {f.CLOUD: 1, f.BEHAVIOR: 1}, include=[synced])
    return devices, baseline, cloud


def _manage(devices) -> None:
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(
        managed_by="mde", management_type="MicrosoftSense"
    )


def _assert_exactly_one_row_per_targeted_policy(devices, policies) -> None:
    """One Pending row per (device, policy), whose counts match its setting rows (none yet, when a membership
    change added it, or one per setting of the policy), and aggregates equal to a recount."""
    pairs = Counter(DevicePolicyStatus.objects.values_list("device_id", "policy_id"))
    assert set(pairs) == {(d.pk, p.pk) for d in devices for p in policies}
    assert set(pairs.values()) == {1}
    settings: dict[tuple[int, int], list[str]] = {}
    for did, pid, key in DeviceSettingStatus.objects.values_list("device_id", "policy_id", "setting_key"):
        settings.setdefault((did, pid), []).append(key)
    keys = {p.pk: sorted(p.values) for p in policies}
    for row in DevicePolicyStatus.objects.all():
        assert row.status == "pending"
        found = sorted(settings.get((row.device_id, row.policy_id), []))
        assert found in ([], keys[row.policy_id])
        assert row.setting_total == row.pending_count == len(found)
    assert recount() == stored_counts()


@pytest.mark.django_db
def test_it_adds_only_the_missing_rows_when_a_device_is_managed_after_a_membership_change_marked_it():
    devices, baseline, cloud = _unmanaged_fleet(2)
    _manage(devices)

    # The Entra Connect toggle's membership change ran first: the devices got a Pending row for "Cloud" only.
    assert add_missing_rows([cloud.pk]) == 2
    # Then the re-onboarding task: the devices' other policy gets its rows, "Cloud" is left as it is.
    for d in devices:
        management_changed_task(d.pk, True)

    _assert_exactly_one_row_per_targeted_policy(devices, [baseline, cloud])


@pytest.mark.django_db
def test_it_changes_nothing_when_a_device_is_initialised_twice():
    devices, baseline, cloud = _unmanaged_fleet(1)
    _manage(devices)

    assert initialise_device(devices[0].pk) > 0
    before = (list(DevicePolicyStatus.objects.order_by("pk").values()), stored_counts())
    assert initialise_device(devices[0].pk) == 0
    assert add_missing_rows([baseline.pk, cloud.pk]) == 0

    assert (list(DevicePolicyStatus.objects.order_by("pk").values()), stored_counts()) == before
    _assert_exactly_one_row_per_targeted_policy(devices, [baseline, cloud])


def _run_concurrently(jobs) -> list[BaseException]:
    """Run each job in its own thread (its own database connection), released together; the errors raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(job):
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # collected, and asserted on by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    return errors


@pytest.mark.postgres
def test_it_marks_each_device_pending_exactly_once_when_re_onboarding_races_membership_changes(
    transactional_db,
):
    devices, baseline, cloud = _unmanaged_fleet(60)
    ids = [d.pk for d in devices]
    _manage(devices)

    def onboarding(order):
        return lambda: [management_changed_task(pk, True) for pk in order]

    errors = _run_concurrently(
        [
            onboarding(ids),  # "Allow MDE to enforce…" back on: every device re-onboards…
            onboarding(ids[::-1]),  # …and a re-evaluation delivered twice runs the same tasks again
            lambda: mark_devices_pending(ids, [cloud.pk]),  # Entra Connect toggled: the synced group changed
            lambda: mark_devices_pending(ids, [cloud.pk]),  # and toggled back
        ]
    )

    assert errors == []
    _assert_exactly_one_row_per_targeted_policy(devices, [baseline, cloud])


@pytest.mark.django_db
def test_it_skips_a_row_that_exists_and_counts_only_the_rows_it_inserted():
    from django.utils import timezone

    from reports.ingest import PENDING_MESSAGE, insert_missing_policy_rows

    devices, baseline, cloud = _unmanaged_fleet(2)
    _manage(devices)
    first, second = (d.pk for d in devices)
    now = timezone.now()

    def row(did, pid):
        return (did, pid, "pending", "mde", 0, 0, 0, 0, 0, PENDING_MESSAGE, now, f"D-{did}")

    assert insert_missing_policy_rows([row(first, cloud.pk)]) == [(first, cloud.pk, "pending")]
    assert insert_missing_policy_rows([row(first, cloud.pk), row(second, cloud.pk)]) == [
        (second, cloud.pk, "pending")
    ]
    assert DevicePolicyStatus.objects.filter(policy=cloud).count() == 2
    assert DevicePolicyStatus.objects.get(device_id=first, policy=cloud).last_reported_at == now


@pytest.mark.django_db
def test_it_adds_no_rows_for_a_policy_deleted_after_it_read_the_policies(monkeypatch):
    from devices import channel

    devices, baseline, cloud = _unmanaged_fleet(2)
    _manage(devices)
    before_the_delete = channel.current_context()  # the task read the policies, "Cloud" among them ...
    cloud_pk = cloud.pk
    cloud.delete()  # ... and then an admin deleted it
    monkeypatch.setattr(channel, "current_context", lambda: before_the_delete)

    assert add_missing_rows([cloud_pk]) == 0

    assert not DevicePolicyStatus.objects.filter(policy_id=cloud_pk).exists()
    assert recount() == stored_counts()
