"""Issue 12, item 5: bulk actions of All devices at fleet size.

Seen: Policy sync on 1,000 or more selected devices failed with 400 ``TooManyFieldsSent`` (one form field per
device against Django's DATA_UPLOAD_MAX_NUMBER_FIELDS), shown as a technical page; bulk delete read the same kind
of list. The selection now travels as one ``ids`` field (up to 10,000) or as the list's filter ("Select all N
devices matching this filter"), and large selections run as a Job whose page shows the progress.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.urls import reverse
from playwright.sync_api import expect

from console.models import AuditEvent, Job
from devices import bulk
from devices.models import Device
from devices.selection import MAX_IDS
from devices.tables import MAX_PER_PAGE
from devices.tasks import bulk_devices
from tests.devices.device_factories import TENANT_ID

SYNC = "checkins:bulk_sync"
DELETE = "devices:bulk"


def mde_fleet(count: int, prefix: str = "CONTOSO-WS") -> list[int]:
    """``count`` devices successfully managed by MDE (Policy sync applies to them); their ids."""
    Device.objects.bulk_create(
        (
            Device(
                display_name=f"{prefix}-{n:05d}",
                os="windows",
                os_version="10.0.22631.3447",
                tenant_id=TENANT_ID,
                managed_by="mde",
                management_type="MicrosoftSense",
            )
            for n in range(count)
        ),
        batch_size=2000,
    )
    return list(
        Device.objects.filter(display_name__startswith=prefix)
        .order_by("display_name")
        .values_list("pk", flat=True)
    )


def packed(ids) -> str:
    return ",".join(map(str, ids))


def job_of(response) -> Job:
    match = re.fullmatch(r"/devices/bulk/jobs/(\d+)/", response["Location"])
    assert match, response["Location"]
    return Job.objects.get(pk=int(match.group(1)))


def synced_in_audit() -> set[int]:
    """The devices whose Policy sync was requested, from the audit log (one event per batch of the job)."""
    events = AuditEvent.objects.filter(action="Policy sync requested")
    return {pk for event in events for pk in event.after["device_ids"]}


def run_on_worker(job: Job) -> Job:
    """What the worker does with the queued job (the task's own code, run here)."""
    bulk_devices.apply(args=[job.pk])
    job.refresh_from_db()
    return job


# ---- 1,000 and 10,000 ticked devices, in one field ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1000, MAX_IDS])
def test_it_syncs_1000_and_10000_ticked_devices_sent_in_one_field(
    esm_client, count, django_capture_on_commit_callbacks
):
    ids = mde_fleet(count)
    assert count + 3 > settings.DATA_UPLOAD_MAX_NUMBER_FIELDS  # one field per device would be refused
    with django_capture_on_commit_callbacks() as queued:
        response = esm_client.post(reverse(SYNC), {"ids": packed(ids), "next": "/devices/"})
    assert response.status_code == 302
    job = job_of(response)
    assert (job.kind, job.total, job.status) == (bulk.SYNC_JOB, count, "queued")
    assert len(queued) == 1  # the job is sent to a worker once the request commits
    assert not Device.objects.filter(sync_requested_at__isnull=False).exists()

    job = run_on_worker(job)

    assert (job.status, job.done, job.total) == ("succeeded", count, count)
    assert job.message == f"Policy sync requested for {count:,} devices."
    assert Device.objects.filter(sync_requested_at__isnull=False).count() == count


@pytest.mark.django_db
def test_it_deletes_1000_ticked_devices_after_a_confirmation_that_sends_one_field(ga_client):
    ids = mde_fleet(1000)
    keep = mde_fleet(3, prefix="KEEP")
    confirm = ga_client.post(reverse(DELETE), {"action": "delete", "ids": packed(ids), "next": "/devices/"})
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "1,000 selected devices" in page
    assert page.count('name="ids"') == 1 and 'name="pk"' not in page
    assert Device.objects.count() == 1003

    done = ga_client.post(
        reverse(DELETE), {"action": "delete", "ids": packed(ids), "confirm": "yes", "next": "/devices/"}
    )
    job = run_on_worker(job_of(done))

    assert (job.kind, job.status, job.done) == (bulk.DELETE_JOB, "succeeded", 1000)
    assert job.message.startswith("Deleted 1,000 devices.")
    assert sorted(Device.objects.values_list("pk", flat=True)) == sorted(keep)


@pytest.mark.django_db
def test_it_asks_to_confirm_a_delete_of_10000_ticked_devices(ga_client):
    ids = mde_fleet(MAX_IDS)
    confirm = ga_client.post(reverse(DELETE), {"action": "delete", "ids": packed(ids)})
    assert confirm.status_code == 200
    assert "10,000 selected devices" in confirm.content.decode()
    assert Device.objects.count() == MAX_IDS


# ---- "Select all N devices matching this filter": the filter is sent, not the ids ----------------------------


@pytest.mark.django_db
def test_select_all_matching_syncs_exactly_the_devices_the_filter_matches(esm_client):
    matching = set(mde_fleet(1200, prefix="SITE-A"))
    others = set(mde_fleet(50, prefix="SITE-B"))
    response = esm_client.post(
        reverse(SYNC), {"select_all": "matching", "filter": "q=SITE-A&managed_by=mde&page=3", "ids": ""}
    )
    job = run_on_worker(job_of(response))
    assert (job.status, job.done) == ("succeeded", 1200)
    synced = set(Device.objects.filter(sync_requested_at__isnull=False).values_list("pk", flat=True))
    assert synced == matching and not synced & others


@pytest.mark.django_db
def test_select_all_matching_deletes_exactly_the_devices_the_filter_matches(ga_client):
    mde_fleet(150, prefix="OLD-LAB")
    others = set(mde_fleet(20, prefix="PROD"))
    fields = {"action": "delete", "select_all": "matching", "filter": "q=OLD-LAB"}
    confirm = ga_client.post(reverse(DELETE), fields)
    page = confirm.content.decode()
    assert "150 selected devices (all devices matching the filter)" in page
    assert 'name="filter" value="q=OLD-LAB"' in page and 'name="ids"' not in page
    job = run_on_worker(job_of(ga_client.post(reverse(DELETE), {**fields, "confirm": "yes"})))
    assert (job.status, job.done) == ("succeeded", 150)
    assert set(Device.objects.values_list("pk", flat=True)) == others


@pytest.mark.django_db
def test_the_job_page_shows_the_progress_and_the_way_back(esm_client):
    ids = mde_fleet(200)
    response = esm_client.post(reverse(SYNC), {"ids": packed(ids), "next": "/devices/?os=windows"})
    page = esm_client.get(response["Location"]).content.decode()
    assert "Policy sync of 200 selected devices" in page
    assert 'hx-get="/jobs/' in page and "0 of 200 devices" in page
    assert 'href="/devices/?os=windows"' in page


# ---- bad input: a clear 400, nothing changed -----------------------------------------------------------------

BAD_SELECTIONS = [
    ({"ids": "1,2,x"}, "'x' is not a device id"),
    ({"ids": "1;DROP TABLE devices_device"}, "is not a device id"),
    ({"ids": "-5"}, "'-5' is not a device id"),
    ({"ids": packed(range(1, MAX_IDS + 2))}, "10,001 devices were selected; select at most 10,000"),
    ({"select_all": "everything"}, "“select_all” must be “matching”"),
    ({"select_all": "matching", "filter": "os=plan9"}, "The filter of the selection is not valid"),
    ({"select_all": "matching", "filter": "q=" + "x" * 2001}, "longer than 2,000 characters"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "reason"), BAD_SELECTIONS)
@pytest.mark.parametrize("action", [SYNC, DELETE])
def test_a_malformed_selection_is_a_clear_400_and_changes_nothing(ga_client, action, fields, reason):
    ids = mde_fleet(3)
    data = {**fields, "confirm": "yes"} | ({"action": "delete"} if action == DELETE else {})
    response = ga_client.post(reverse(action), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert reason in page.replace("&#x27;", "'") and "Nothing was changed." in page
    assert "Traceback" not in page and "TooManyFieldsSent" not in page
    assert Device.objects.filter(pk__in=ids, sync_requested_at__isnull=True).count() == 3
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_device_list_shows_at_most_500_rows_and_offers_select_all_matching(esm_client):
    mde_fleet(MAX_PER_PAGE + 20)
    page = esm_client.get(reverse("devices:list"), {"per_page": 2000}).content.decode()
    assert page.count('name="pk"') == MAX_PER_PAGE
    assert "Select all 520 devices matching this filter" in page
    assert 'name="select_all" value="matching"' in page and 'name="filter" value="per_page=2000"' in page


# ---- in Chromium, on the real stack: a worker carries the job out -------------------------------------------


@pytest.mark.browser
@pytest.mark.worker
def test_select_all_matching_runs_policy_sync_on_a_fleet_over_1000_without_a_technical_page(
    celery_worker_process, login, security_manager, live_server
):
    matching = set(mde_fleet(1100, prefix="CONTOSO-WS"))
    mde_fleet(30, prefix="CONTOSO-SRV")
    page = login(security_manager, reverse("devices:list") + "?q=CONTOSO-WS")
    select_all = page.locator("[data-select-matching]")
    expect(page.locator('[data-testid="select-matching"]')).to_contain_text(
        "Select all 1,100 devices matching this filter"
    )
    select_all.check()
    expect(page.locator('#device-table input[name="pk"]:checked')).to_have_count(25)

    page.get_by_role("button", name="Policy sync").click()

    expect(page.locator('[data-testid="bulk-job"]')).to_contain_text("Policy sync of 1,100 selected devices")
    expect(page.locator(".job")).to_contain_text("Succeeded", timeout=120_000)
    expect(page.locator(".job")).to_contain_text("Policy sync requested for 1,100 devices.")
    assert synced_in_audit() == matching  # (the worker's check-ins then clear sync_requested_at)


@pytest.mark.browser
@pytest.mark.worker
def test_ticking_a_whole_page_of_500_runs_policy_sync_as_sent_in_one_field(
    celery_worker_process, login, security_manager, live_server
):
    """The seen case, as far as the list allows (?per_page=1000 shows 500 rows): every box ticked, then sync."""
    ids = mde_fleet(1000)  # named in id order, and the list sorts by name
    page = login(security_manager, reverse("devices:list") + "?per_page=1000")
    requests = []
    page.on("request", lambda r: requests.append(r) if r.method == "POST" else None)
    page.locator("#device-table input[data-select-all]").check()
    page.get_by_role("button", name="Policy sync").click()

    expect(page.locator(".job")).to_contain_text("Succeeded", timeout=120_000)
    expect(page.locator(".job")).to_contain_text("Policy sync requested for 500 devices.")
    body = requests[0].post_data
    assert body.count("pk=") == 0 and body.count("ids=") == 1  # one field, not 500
    assert synced_in_audit() == set(ids[:MAX_PER_PAGE])  # the first page, by name
