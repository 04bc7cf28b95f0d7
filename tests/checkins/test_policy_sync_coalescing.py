"""Issue 10, item 5: Policy sync requests for a device that already has one pending coalesce on the server.

Seen: two concurrent Policy sync POSTs for one device (two browser tabs) recorded two Policy sync check-ins in
the same second. A second request while one is pending returns the pending one: no second task, no second
check-in, and a message that says so.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from django.urls import reverse
from playwright.sync_api import expect

from console.datetimes import exact
from console.models import AuditEvent
from devices import checkins
from devices.models import Device
from tests.checkins import fleet as f
from tests.helpers import wait_for

ALREADY = "Policy sync already requested"


# ---- the coalescing itself ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_returns_the_pending_request_instead_of_queueing_a_second_one(
    sent_tasks, django_capture_on_commit_callbacks
):
    d = f.device("PC-1", due=False)
    with django_capture_on_commit_callbacks(execute=True):
        first = checkins.request_policy_sync([d])
    requested_at = Device.objects.get(pk=d.pk).sync_requested_at

    with django_capture_on_commit_callbacks(execute=True):
        second = checkins.request_policy_sync([Device.objects.get(pk=d.pk)])

    assert [x.pk for x in first.queued] == [d.pk]
    assert not second.queued and not second.refused
    assert [(x.pk, x.sync_requested_at) for x in second.pending] == [(d.pk, requested_at)]
    assert Device.objects.get(pk=d.pk).sync_requested_at == requested_at
    assert len(sent_tasks) == 1
    assert AuditEvent.objects.filter(action="Policy sync requested").count() == 1


@pytest.mark.django_db
def test_it_queues_a_new_sync_once_the_pending_one_has_checked_in(sent_tasks):
    g = f.group("G")
    d = f.device("PC-1", groups=[g], due=False)
    f.policy("AV", {f.PUA: 1}, include=[g])
    checkins.request_policy_sync([d])
    checkins.policy_sync.run([d.pk], Device.objects.get(pk=d.pk).sync_requested_at.isoformat())
    assert Device.objects.get(pk=d.pk).sync_requested_at is None

    again = checkins.request_policy_sync([Device.objects.get(pk=d.pk)])

    assert [x.pk for x in again.queued] == [d.pk] and not again.pending


@pytest.mark.django_db
def test_it_queues_only_the_devices_of_a_bulk_request_without_a_pending_sync(
    sent_tasks, django_capture_on_commit_callbacks
):
    a, b, c = f.device("PC-A"), f.device("PC-B"), f.device("PC-C")
    checkins.request_policy_sync([b])

    with django_capture_on_commit_callbacks(execute=True):
        outcome = checkins.request_policy_sync([a, b, c])

    assert sorted(x.pk for x in outcome.queued) == [a.pk, c.pk]
    assert [x.pk for x in outcome.pending] == [b.pk]
    assert sorted(pk for _, args, _ in sent_tasks for pk in args[0]) == [a.pk, c.pk]


@pytest.mark.django_db
def test_it_queues_a_device_named_twice_in_one_request_once(sent_tasks, django_capture_on_commit_callbacks):
    d = f.device("PC-1", due=False)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = checkins.request_policy_sync([d, Device.objects.get(pk=d.pk)])

    assert [x.pk for x in outcome.queued] == [d.pk] and not outcome.pending
    assert [args[0] for _, args, _ in sent_tasks] == [[d.pk]]
    assert AuditEvent.objects.filter(action="Policy sync requested").count() == 1


@pytest.mark.postgres
def test_it_lets_exactly_one_of_many_simultaneous_requests_queue_the_sync(transactional_db, sent_tasks):
    d = f.device("PC-1", due=False)
    outcomes: list[checkins.SyncRequest] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def request():
        try:
            device = Device.objects.get(pk=d.pk)  # each tab loaded the page before either clicked
            barrier.wait()
            outcomes.append(checkins.request_policy_sync([device]))
        except BaseException as exc:  # collected, and asserted on by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert sorted(len(o.queued) for o in outcomes) == [0, 0, 0, 0, 0, 1]
    assert sum(len(o.pending) for o in outcomes) == 5
    assert len(sent_tasks) == 1
    assert AuditEvent.objects.filter(action="Policy sync requested").count() == 1


# ---- what the button, the bulk actions and the API say -----------------------------------------------------


@pytest.mark.django_db
def test_the_button_says_the_sync_is_already_requested_and_when(esm_client, sent_tasks):
    d = f.device("PC-1", due=False)
    url = reverse("checkins:device_sync", args=[d.pk])
    esm_client.post(url, headers={"HX-Request": "true"})
    requested_at = Device.objects.get(pk=d.pk).sync_requested_at

    response = esm_client.post(url, headers={"HX-Request": "true"})

    assert response.status_code == 200
    text = response.content.decode()
    assert f"{ALREADY} at {exact(requested_at)}" in text
    assert "waiting for PC-1 to check in" in text
    assert Device.objects.get(pk=d.pk).sync_requested_at == requested_at

    response = esm_client.post(url, {"next": "/devices/"}, follow=True)  # without JavaScript
    assert f"{ALREADY} at {exact(requested_at)}" in response.content.decode()


@pytest.mark.django_db
def test_bulk_and_group_sync_say_which_devices_were_already_requested(esm_client, sent_tasks):
    a, b = f.device("PC-A"), f.device("PC-B")
    g = f.group("Finance", [a, b])
    checkins.request_policy_sync([a])

    response = esm_client.post(
        reverse("checkins:bulk_sync"), {"device_ids": [a.pk, b.pk], "next": "/devices/"}, follow=True
    )
    text = response.content.decode()
    assert "Policy sync requested for 1 device." in text
    assert f"{ALREADY} for 1 device (PC-A)" in text

    response = esm_client.post(reverse("checkins:group_sync", args=[g.pk]), follow=True)
    text = response.content.decode()
    assert f"{ALREADY} for 2 devices (PC-A, PC-B)" in text
    assert "has no members to sync" not in text


@pytest.mark.django_db
def test_the_graph_sync_device_action_still_answers_204_when_a_sync_is_pending(client, security_manager):
    from console.roles import ENDPOINT_SECURITY_MANAGER
    from console.tokens import create_token

    d = f.device("PC-1", due=False)
    secret = create_token(name="esm", owner=security_manager, role=ENDPOINT_SECURITY_MANAGER)[1]
    d.refresh_from_db()  # the managed device id (distinct from the Entra ids) is given on save
    url = f"/beta/deviceManagement/managedDevices/{d.managed_device_id}/syncDevice"
    headers = {"Authorization": f"Bearer {secret}"}

    assert client.post(url, headers=headers).status_code == 204
    requested_at = Device.objects.get(pk=d.pk).sync_requested_at
    assert client.post(url, headers=headers).status_code == 204

    assert Device.objects.get(pk=d.pk).sync_requested_at == requested_at
    assert AuditEvent.objects.filter(action="Policy sync requested").count() == 1


# ---- end to end: two browser tabs, a real worker ------------------------------------------------------------

CLICK_AT = """at => {
  window.__syncReplies = [];
  document.body.addEventListener("htmx:afterRequest", (e) => {
    if (e.detail.requestConfig.verb === "post") window.__syncReplies.push(e.detail.xhr.responseText);
  });
  setTimeout(() => document.querySelector('[data-testid="policy-sync"]').click(), at - Date.now());
}"""


@pytest.mark.browser
@pytest.mark.worker
@pytest.mark.postgres
def test_two_tabs_clicking_policy_sync_at_once_check_the_device_in_once(
    login, security_manager, live_server, celery_worker_process
):
    import redis
    from django.conf import settings

    from console.celery import app
    from reports.models import CheckinRecord

    g = f.group("Workstations")
    d = f.device("CONTOSO-WS-0042", groups=[g], due=False)
    f.policy("Antivirus baseline", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    wait_for(lambda: app.control.ping(timeout=1.0), timeout=60)
    panel_url = reverse("checkins:device_panel", args=[d.pk])
    first = login(security_manager, panel_url)
    second = first.context.new_page()
    second.goto(live_server.url + panel_url)
    tabs = (first, second)
    for tab in tabs:
        expect(tab.locator('[data-testid="policy-sync"]')).to_be_enabled()

    # The worker leaves the sync queue alone until both tabs have their answer: "at once" means while the first
    # request is still pending. (On a busy machine the first sync could otherwise finish before the second click
    # reaches the server, and a second sync after the first one is a new, legitimate request.)
    app.control.cancel_consumer("sync", reply=True, timeout=5)
    # Both tabs click at the same moment of the browser's clock, and keep what the server answered each.
    at = first.evaluate("Date.now() + 500")
    for tab in tabs:
        tab.evaluate(CLICK_AT, at)
    wait_for(lambda: all(tab.evaluate("window.__syncReplies.length") == 1 for tab in tabs), timeout=30)
    app.control.add_consumer("sync", reply=True, timeout=5)

    wait_for(lambda: CheckinRecord.objects.filter(device=d, kind="sync").exists(), timeout=60)
    wait_for(lambda: Device.objects.get(pk=d.pk).sync_requested_at is None, timeout=60)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    time.sleep(2 * checkins.SYNC_RETRY_SECONDS + 1)  # a second sync would be running or retried by now
    wait_for(lambda: broker.llen("sync") == 0, timeout=30)

    assert CheckinRecord.objects.filter(device=d, kind="sync").count() == 1
    assert f.statuses(d) == {"Antivirus baseline": "succeeded"}
    replies = [tab.evaluate("window.__syncReplies") for tab in tabs]
    assert [len(r) for r in replies] == [1, 1]
    assert sum(ALREADY in r[0] for r in replies) == 1  # the other tab was told, not queued a second time
