"""The scheduler: due devices are claimed with a lease, batched, checked in once, and rescheduled ~90 min out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import checkins
from devices.models import Device
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def test_claiming_stamps_a_lease_and_a_second_claim_gets_other_devices():
    devices = [f.device(f"PC-{i}") for i in range(5)]

    first, lease = checkins.claim_due(3)
    second, _ = checkins.claim_due(10)

    assert len(first) == 3
    assert set(second) == {d.pk for d in devices} - set(first)
    assert set(Device.objects.filter(checkin_lease_until=lease).values_list("pk", flat=True)) == set(first)
    # A short lease (recovery within two minutes when a batch is lost); the worker renews it when it starts.
    assert timedelta(seconds=30) < lease - timezone.now() <= checkins.LEASE


def test_only_due_devices_are_claimed_most_overdue_first():
    now = timezone.now()
    late = f.device("late")
    Device.objects.filter(pk=late.pk).update(next_checkin_at=now - timedelta(hours=2))
    soon = f.device("soon")
    f.device("future", due=False)
    Device.objects.filter(display_name="future").update(next_checkin_at=now + timedelta(minutes=30))
    f.device("unmanaged", mde=False, due=False)

    ids, _ = checkins.claim_due(10)

    assert ids == [late.pk, soon.pk]


def test_an_expired_lease_can_be_claimed_again():
    d = f.device("stuck")
    ids, _ = checkins.claim_due(10)
    assert ids == [d.pk]
    assert checkins.claim_due(10)[0] == []
    Device.objects.filter(pk=d.pk).update(checkin_lease_until=timezone.now() - timedelta(seconds=1))
    assert checkins.claim_due(10)[0] == [d.pk]


def test_a_check_in_reschedules_the_device_about_90_minutes_out_and_releases_the_lease():
    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(20)]
    f.policy("AV", {f.PUA: 1}, include=[g])
    before = timezone.now()

    f.checkin(*devices)

    for d in Device.objects.filter(pk__in=[x.pk for x in devices]):
        assert d.checkin_lease_until is None
        assert d.last_checkin_at >= before
        minutes = (d.next_checkin_at - d.last_checkin_at).total_seconds() / 60
        assert 81 <= minutes <= 99  # 90 minutes ± 10 % jitter
    spread = {d.next_checkin_at for d in Device.objects.filter(pk__in=[x.pk for x in devices])}
    assert len(spread) > 1  # jitter: not a wave


def test_a_check_in_with_nothing_to_change_costs_five_statements_for_the_whole_batch(
    django_assert_num_queries,
):
    from reports.models import CheckinRecord, DeviceSettingStatus

    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(25)]
    f.policy("AV", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    f.policy("Excl", {f.EXCLUDED_PATHS: ["C:\\x"]}, profile=f.AV_EXCLUSIONS, include=[g])
    f.checkin(*devices)
    rows_before = list(DeviceSettingStatus.objects.order_by("pk").values_list("pk", "status"))
    records_before = CheckinRecord.objects.count()
    f.make_due(*devices)
    ids, lease = checkins.claim_devices([d.pk for d in devices])

    # The SELECT of the batch, the other management sources of its devices (GPOs, ConfigMgr baselines, local admin
    # changes: devices.sources, one query each for the whole batch) and the UPDATE of its schedule.
    with django_assert_num_queries(5):
        run = checkins.run_checkins(ids, lease=lease)

    assert run.unchanged == 25 and run.changed == 0
    assert list(DeviceSettingStatus.objects.order_by("pk").values_list("pk", "status")) == rows_before
    assert CheckinRecord.objects.count() == records_before
    assert not Device.objects.filter(pk__in=ids, checkin_lease_until__isnull=False).exists()


def test_a_device_whose_lease_was_taken_over_is_not_written():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("AV", {f.PUA: 1}, include=[g])
    ids, lease = checkins.claim_devices([d.pk])
    # Another scheduler took over (e.g. our lease expired while the batch waited in the queue).
    Device.objects.filter(pk=d.pk).update(checkin_lease_until=lease + timedelta(seconds=1))

    run = checkins.run_checkins(ids, lease=lease)

    assert run.checked_in == 0
    assert f.statuses(d) == {}
    assert Device.objects.get(pk=d.pk).last_checkin_at is None


def test_a_batch_that_starts_with_a_fresh_lease_reads_its_devices_and_keeps_the_lease(
    django_assert_num_queries,
):
    devices = [f.device(f"PC-{i}") for i in range(4)]
    ids, lease = checkins.claim_due(10)
    taken = devices[1].pk
    Device.objects.filter(pk=taken).update(
        checkin_lease_until=lease + timedelta(seconds=1)
    )  # someone else's now

    with django_assert_num_queries(1) as captured:  # one SELECT: no row is written to renew a fresh lease
        held, kept = checkins.renew_lease(ids, lease)

    assert captured.captured_queries[0]["sql"].lstrip().upper().startswith("SELECT")
    assert kept == lease
    assert held == [pk for pk in ids if pk != taken]
    assert set(Device.objects.filter(checkin_lease_until=lease).values_list("pk", flat=True)) == set(held)


def test_a_batch_that_waited_in_the_queue_renews_its_lease_for_the_whole_term():
    devices = [f.device(f"PC-{i}") for i in range(3)]
    claimed_at = timezone.now() - checkins.LEASE * 0.6  # the message waited: less than half the lease is left
    ids, lease = checkins.claim_due(10, now=claimed_at)
    taken = devices[0].pk
    Device.objects.filter(pk=taken).update(checkin_lease_until=lease + timedelta(seconds=1))

    started = timezone.now()
    held, renewed = checkins.renew_lease(ids, lease, now=started)

    assert renewed == started + checkins.LEASE
    assert sorted(held) == sorted(pk for pk in ids if pk != taken)
    assert set(Device.objects.filter(checkin_lease_until=renewed).values_list("pk", flat=True)) == set(held)
    assert Device.objects.get(pk=taken).checkin_lease_until == lease + timedelta(seconds=1)  # still theirs


def test_a_batch_delivered_twice_checks_each_device_in_once():
    from reports.models import CheckinRecord

    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(5)]
    f.policy("AV", {f.PUA: 1}, include=[g])
    ids, lease = checkins.claim_devices([d.pk for d in devices])

    first = checkins.run_checkins(ids, lease=lease)
    again = checkins.run_checkins(ids, lease=lease)  # broker redelivery

    assert first.checked_in == 5 and again.checked_in == 0
    assert CheckinRecord.objects.count() == 5


def test_the_beat_tick_queues_batches_on_the_checkins_queue(sent_tasks):
    from console.celery import app

    size = checkins.BATCH_SIZE
    for i in range(2 * size + 50):
        Device.objects.create(
            display_name=f"PC-{i}", os="windows", managed_by="mde", management_type="MicrosoftSense",
            next_checkin_at=timezone.now() - timedelta(seconds=1),
        )  # fmt: skip

    queued = checkins.claim_due_checkins.run()

    assert queued == 2 * size + 50
    batches = [args for name, args, _ in sent_tasks if name == "devices.checkins.checkin_batch"]
    assert [len(b[0]) for b in batches] == [size, size, 50]
    assert len({pk for b in batches for pk in b[0]}) == 2 * size + 50
    assert all(b[2] == "scheduled" for b in batches)
    assert app.amqp.router.route({}, "devices.checkins.checkin_batch")["queue"].name == "checkins"
    assert checkins.claim_due_checkins.run() == 0  # all leased now


def test_the_beat_tick_respects_its_per_tick_limit(sent_tasks, settings):
    settings.CHECKIN_CLAIM_MAX_PER_TICK = 30
    for i in range(50):
        f.device(f"PC-{i}")

    assert checkins.claim_due_checkins.run() == 30
    assert checkins.claim_due_checkins.run() == 20


def test_managed_devices_without_a_check_in_time_get_a_random_phase():
    mde = f.device("mde", due=False)
    intune = f.device("intune", intune=True, due=False)
    unmanaged = f.device("none", mde=False, due=False)

    assert checkins.schedule_unscheduled() == 2

    now = timezone.now()
    for d in (mde, intune):
        at = Device.objects.get(pk=d.pk).next_checkin_at
        assert now - timedelta(seconds=5) <= at <= now + timedelta(minutes=91)
    assert Device.objects.get(pk=unmanaged.pk).next_checkin_at is None


def test_a_policy_change_reaches_the_next_check_in_although_the_policy_set_is_cached():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    p = f.policy("AV", {f.PUA: 1}, include=[g])
    f.checkin(d)
    assert f.setting_rows(d)[("AV", f.PUA)].value == 1

    p.values = {f.PUA: 2}
    p.save()  # post_save replaces the generation token
    f.make_due(d)
    f.checkin(d)

    assert f.setting_rows(d)[("AV", f.PUA)].value == 2


def test_the_policy_set_is_loaded_once_per_generation(django_assert_num_queries):
    from devices import channel

    g = f.group("G")
    f.device("PC-1", groups=[g])
    f.policy("AV", {f.PUA: 1}, include=[g])
    token = channel.checkin_queryset().first().generation
    assert token
    channel.load_context(token)

    with django_assert_num_queries(0):
        assert channel.load_context(token).inputs


def test_one_failing_report_does_not_hold_back_the_rest_of_its_batch(monkeypatch):
    from devices import channel
    from reports.ingest import recount, stored_counts

    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(4)]
    bad = devices[2]
    f.policy("AV", {f.PUA: 1}, include=[g])
    real = channel.ingest  # the pipeline imports reports.ingest.ingest at the top of devices/channel.py

    def flaky(plans, now):
        if any(plan.device_id == bad.pk for plan in plans):
            raise ValueError("simulated failure writing one device")
        return real(plans, now)

    monkeypatch.setattr(channel, "ingest", flaky)
    ids, lease = checkins.claim_devices([d.pk for d in devices])

    run = checkins.run_checkins(ids, lease=lease)

    assert run.checked_in == 3 and run.lost == 1
    assert f.statuses(bad) == {}
    assert Device.objects.get(pk=bad.pk).checkin_lease_until == lease  # retried once the lease expires
    assert all(f.statuses(d) == {"AV": "succeeded"} for d in devices if d != bad)
    assert recount() == stored_counts()


def test_run_checkin_checks_one_device_in_now_unless_another_check_in_holds_it():
    g = f.group("G")
    d = f.device("PC-1", groups=[g], due=False)
    f.policy("AV", {f.PUA: 1}, include=[g])

    assert checkins.run_checkin(d.pk, kind="sync").checked_in == 1
    assert f.statuses(d) == {"AV": "succeeded"}

    Device.objects.filter(pk=d.pk).update(checkin_lease_until=timezone.now() + timedelta(minutes=5))
    assert checkins.run_checkin(d.pk).checked_in == 0
