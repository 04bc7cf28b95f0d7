"""The device channel over HTTP: per-device credential, own policies only, same tenant, bad payloads refused."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from devices import agent, credentials
from devices.models import Device
from reports.models import CheckinRecord, DevicePolicyStatus, DeviceSettingStatus
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

CHECKIN = "/devicechannel/v1/checkin"
REPORT = "/devicechannel/v1/report"


@pytest.fixture
def world():
    g, other = f.group("Mine"), f.group("Theirs")
    d = f.device("PC-1", groups=[g])
    neighbour = f.device("PC-2", groups=[other])
    mine = f.policy("AV mine", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    theirs = f.policy("AV theirs", {f.SCRIPT_SCANNING: 0}, include=[other])
    return {
        "device": d,
        "token": credentials.issue(d),
        "mine": mine,
        "theirs": theirs,
        "neighbour": neighbour,
    }


def _client(token: str | None, tenant: str | None = "own") -> Client:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if tenant == "own":
        headers["X-Tenant-Id"] = str(f.tenant().tenant_id)
    elif tenant is not None:
        headers["X-Tenant-Id"] = tenant
    return Client(enforce_csrf_checks=True, headers=headers)


def _apply(doc: dict) -> dict:
    state, reports = agent.apply(agent.AgentState.initial(), doc["desired"])
    return {
        "protocolVersion": 1,
        "desiredFingerprint": doc["desiredFingerprint"],
        "reportToken": doc["reportToken"],
        "settings": {
            k: {"status": r.status, "value": r.value, "errorCode": r.error_code, "message": r.message}
            for k, r in reports.items()
        },
        "agentState": state.to_dict(),
    }


def _snapshot():
    return (
        sorted(DevicePolicyStatus.objects.values_list("device_id", "policy_id", "status")),
        sorted(DeviceSettingStatus.objects.values_list("device_id", "policy_id", "setting_key", "status")),
        CheckinRecord.objects.count(),
        list(Device.objects.order_by("pk").values_list("last_checkin_at", "desired_fingerprint")),
    )


def test_a_device_checks_in_applies_and_reports_over_http(world):
    client = _client(world["token"])
    response = client.get(CHECKIN)
    assert response.status_code == 200
    doc = response.json()
    assert doc["deviceId"] == str(world["device"].device_id)
    assert doc["channel"] == "mde"
    assert set(doc["desired"]) == {f.PUA, f.REALTIME}

    report = client.post(REPORT, json.dumps(_apply(doc)), content_type="application/json")

    assert report.status_code == 200, report.content
    assert report.json()["accepted"] is True and report.json()["changed"] is True
    assert f.statuses(world["device"]) == {"AV mine": "succeeded"}
    assert CheckinRecord.objects.get(device=world["device"]).kind == "http"
    assert Device.objects.get(pk=world["device"].pk).agent_state["preferences"]["PUAProtection"] == 1


def test_a_device_reads_only_its_own_policies(world):
    client = _client(world["token"])
    doc = client.get(CHECKIN).json()
    assert [p["name"] for p in doc["policies"]] == ["AV mine"]
    assert f.SCRIPT_SCANNING not in doc["desired"]

    own = client.get(f"/devicechannel/v1/policies/{world['mine'].policy_id}")
    assert own.status_code == 200 and own.json()["settings"] == {f.PUA: 1, f.REALTIME: 1}
    other = client.get(f"/devicechannel/v1/policies/{world['theirs'].policy_id}")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert "AV theirs" not in other.text


def test_a_request_naming_another_tenant_is_refused(world):
    response = _client(world["token"], tenant=str(uuid.uuid4())).get(CHECKIN)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_mismatch"
    assert _client(world["token"], tenant=None).get(CHECKIN).status_code == 403
    assert _client(world["token"], tenant="not-a-uuid").get(CHECKIN).status_code == 403


def test_a_device_registered_to_another_tenant_is_refused(world):
    Device.objects.filter(pk=world["device"].pk).update(tenant_id=uuid.uuid4())
    response = _client(world["token"]).get(CHECKIN)
    assert response.status_code == 403
    assert "another tenant" in response.json()["error"]["message"]


def test_a_revoked_or_unknown_credential_is_401(world):
    client = _client(world["token"])
    doc = client.get(CHECKIN).json()
    before = _snapshot()
    credentials.revoke(world["device"])

    assert client.get(CHECKIN).status_code == 401
    refused = client.post(REPORT, json.dumps(_apply(doc)), content_type="application/json")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert _snapshot() == before
    assert _client(None).get(CHECKIN).status_code == 401
    assert _client("abc.def").get(CHECKIN).status_code == 401
    assert _client(world["token"] + "x").get(CHECKIN).status_code == 401


def test_a_device_of_another_device_cannot_report_for_it(world):
    neighbour_token = credentials.issue(world["neighbour"])
    doc = _client(world["token"]).get(CHECKIN).json()
    before = _snapshot()

    response = _client(neighbour_token).post(REPORT, json.dumps(_apply(doc)), content_type="application/json")

    assert response.status_code in (400, 409)
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed_report"),
        ("[1, 2]", "application/json", 400, "malformed_report"),
        ('{"settings": {}}', "application/json", 400, "malformed_report"),
        ("status=ok", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
def test_a_malformed_report_is_refused_and_changes_nothing(world, body, content_type, status, code):
    client = _client(world["token"])
    client.get(CHECKIN)
    before = _snapshot()

    response = client.post(REPORT, body, content_type=content_type)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda p: p["settings"].update(
                {
                    "device_vendor_msft_policy_config_defender_allowscriptscanning": {
                        "status": "succeeded",
                        "value": 0,
                        "errorCode": None,
                        "message": "",
                    }
                }
            ),
            "unknown_setting",
        ),  # fmt: skip
        (lambda p: p["settings"][f.PUA].update({"status": "fine"}), "malformed_report"),
        (lambda p: p["settings"][f.PUA].update({"errorCode": "0x1"}), "malformed_report"),
        (lambda p: p["settings"][f.PUA].update({"extra": 1}), "malformed_report"),
        (lambda p: p.update({"reportToken": p["reportToken"][:-4] + "0000"}), "invalid_report_token"),
        (lambda p: p.update({"desiredFingerprint": "0" * 64}), "invalid_report_token"),
        (lambda p: p.update({"protocolVersion": 2}), "unsupported_protocol"),
        (lambda p: p.update({"agentState": "C:\\"}), "malformed_report"),
        (lambda p: p.update({"admin": True}), "malformed_report"),
    ],
)
def test_an_invalid_report_is_400_and_changes_nothing(world, mutate, code):
    client = _client(world["token"])
    payload = _apply(client.get(CHECKIN).json())
    mutate(payload)
    before = _snapshot()

    response = client.post(REPORT, json.dumps(payload), content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert _snapshot() == before


def test_an_oversized_report_is_413_and_changes_nothing(world):
    client = _client(world["token"])
    payload = _apply(client.get(CHECKIN).json())
    payload["settings"][f.PUA]["message"] = "x" * (300 * 1024)
    before = _snapshot()

    response = client.post(REPORT, json.dumps(payload), content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "report_too_large"
    assert _snapshot() == before


def test_a_replayed_report_is_409_and_changes_nothing(world):
    client = _client(world["token"])
    payload = _apply(client.get(CHECKIN).json())
    assert client.post(REPORT, json.dumps(payload), content_type="application/json").status_code == 200
    after_first = _snapshot()

    replay = client.post(REPORT, json.dumps(payload), content_type="application/json")

    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "replayed_report"
    assert _snapshot() == after_first


def test_a_report_for_a_desired_state_that_changed_meanwhile_is_409(world):
    client = _client(world["token"])
    payload = _apply(client.get(CHECKIN).json())
    world["mine"].values = {f.PUA: 2}
    world["mine"].save()
    before = _snapshot()

    response = client.post(REPORT, json.dumps(payload), content_type="application/json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "desired_state_changed"
    assert _snapshot() == before


def test_the_channel_needs_no_session_and_no_csrf_token_but_only_the_right_methods(world):
    client = _client(world["token"])
    assert client.get(CHECKIN).status_code == 200  # no login redirect, bearer credential only
    assert client.post(CHECKIN).status_code == 405
    assert client.get(REPORT).status_code == 405


def test_an_unmanaged_device_has_nothing_to_check_in_for(world):
    Device.objects.filter(pk=world["device"].pk).update(managed_by="none", management_type="")
    response = _client(world["token"]).get(CHECKIN)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_managed"


# ---- the settled fleet's path: a report that changes nothing -------------------------------------------


def _settle(client) -> dict:
    """One full check-in that writes the statuses; the next report of the same state changes nothing."""
    first = _apply(client.get(CHECKIN).json())
    assert client.post(REPORT, json.dumps(first), content_type="application/json").json()["changed"] is True
    return _apply(client.get(CHECKIN).json())


def _checkins_counted() -> int:
    from console.counters import CHECKINS, counters

    return counters().get(CHECKINS, 0)


@pytest.mark.parametrize("counter_row", [True, False], ids=["counter", "first-count"])
def test_an_unchanged_report_moves_the_schedule_records_the_checkin_and_counts_it(
    world, counter_row, django_capture_on_commit_callbacks
):
    from console.models import ServiceCounter

    client = _client(world["token"])
    payload = _settle(client)
    ServiceCounter.objects.all().delete()
    if counter_row:
        ServiceCounter.objects.create(name="checkins", value=41)
    statuses, records, counted = _snapshot()[:2], CheckinRecord.objects.count(), _checkins_counted()
    device = Device.objects.get(pk=world["device"].pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(REPORT, json.dumps(payload), content_type="application/json")

    assert response.status_code == 200 and response.json()["changed"] is False
    assert _snapshot()[:2] == statuses
    record = CheckinRecord.objects.order_by("-pk").first()
    assert CheckinRecord.objects.count() == records + 1
    assert (record.device_id, record.kind, record.channel, record.message) == (
        device.pk,
        "http",
        "mde",
        "No changes",
    )
    after = Device.objects.get(pk=device.pk)
    assert after.last_checkin_at > device.last_checkin_at and after.next_checkin_at > after.last_checkin_at
    assert _checkins_counted() == counted + 1


def test_a_replayed_unchanged_report_is_409_and_changes_nothing(world):
    client = _client(world["token"])
    payload = _settle(client)
    assert client.post(REPORT, json.dumps(payload), content_type="application/json").status_code == 200
    after_first, counted = _snapshot(), _checkins_counted()

    replay = client.post(REPORT, json.dumps(payload), content_type="application/json")

    assert replay.status_code == 409 and replay.json()["error"]["code"] == "replayed_report"
    assert _snapshot() == after_first
    assert _checkins_counted() == counted


def test_an_unchanged_report_is_refused_while_the_scheduler_holds_the_device(world):
    from devices.checkins import claim_devices

    client = _client(world["token"])
    payload = _settle(client)
    f.make_due(world["device"])
    ids, _ = claim_devices([world["device"].pk])  # the worker is checking it in right now
    assert ids
    before = _snapshot()

    response = client.post(REPORT, json.dumps(payload), content_type="application/json")

    assert response.status_code == 409
    assert _snapshot() == before


def test_a_sync_requested_before_the_checkin_is_done_by_an_unchanged_report(world):
    from django.utils import timezone

    client = _client(world["token"])
    first = _apply(client.get(CHECKIN).json())
    client.post(REPORT, json.dumps(first), content_type="application/json")
    Device.objects.filter(pk=world["device"].pk).update(sync_requested_at=timezone.now())
    payload = _apply(client.get(CHECKIN).json())

    assert (
        client.post(REPORT, json.dumps(payload), content_type="application/json").json()["changed"] is False
    )
    assert Device.objects.get(pk=world["device"].pk).sync_requested_at is None


@pytest.mark.parametrize(("method", "budget"), [("get", 1), ("post", 2)])
def test_a_settled_check_in_is_one_statement_and_its_report_two(world, method, budget):
    """The device channel's hot path (measured with bench_channel): the GET loads the device by its credential
    with its groups and the policy generation in one statement; an unchanged report adds one statement that moves
    the schedule, records the check-in and counts it (PostgreSQL; SQLite takes the general path)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _client(world["token"])
    payload = _settle(client)
    with CaptureQueriesContext(connection) as queries:
        if method == "get":
            response = client.get(CHECKIN)
        else:
            response = client.post(REPORT, json.dumps(payload), content_type="application/json")
    assert response.status_code == 200
    if connection.vendor == "postgresql":
        assert len(queries) == budget, [q["sql"][:120] for q in queries]
