"""Graph's cached reports as a real cache (issue 14, round two, item 2): POST cachedReportConfigurations ->
status inProgress; a Celery task on the default queue computes the snapshot -> completed, with an
expirationDateTime; getCachedReport pages, sorts, searches, selects and groups the snapshot (not the live rows);
unknown columns are 400, unknown or expired ids 404, a snapshot not ready yet 409; DELETE removes it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from devices.checkins import run_checkin
from devices.models import Device
from reports.models import CachedReport, DevicePolicyStatus
from tests.api.shapes import GRAPH, assert_graph_error, av_body
from tests.api.test_msgraph_sdk import sdk  # noqa: F401 - the fixture
from tests.helpers import wait_for

REPORTS = "/beta/deviceManagement/reports"
CONFIGS = f"{REPORTS}/cachedReportConfigurations"
MDE_RULE = '(device.managementType -eq "MicrosoftSense")'
NAMES = ["WS-0003", "WS-0001", "WS-0002"]


def _checked_in(ga_api, make_device, make_group) -> dict:
    devices = [make_device(name) for name in NAMES]
    group = make_group("MDE devices", rule=MDE_RULE)
    target = {"@odata.type": GRAPH + "groupAssignmentTarget", "groupId": str(group.group_id)}
    policy = ga_api.post(
        "/beta/deviceManagement/configurationPolicies", av_body(assignments=[{"target": target}])
    ).json()
    for device in devices:
        assert run_checkin(device.pk, kind="sync", fault_rate=0.0).checked_in == 1
    return policy


def _config(policy_id: str, **extra) -> dict:
    return {
        "id": f"ConfigurationPolicyDevicesReport_{policy_id}",
        "filter": f"(PolicyId eq '{policy_id}')",
        "select": ["DeviceName", "PolicyStatus", "PolicyStatus_loc", "IntuneDeviceId"],
        "orderBy": [],
        "metadata": "",
        **extra,
    }


def _rows(response) -> list[dict]:
    assert response.status_code == 200, response.content
    data = response.json()
    columns = [c["Column"] for c in data["Schema"]]
    return [dict(zip(columns, values, strict=True)) for values in data["Values"]]


@pytest.fixture
def cached(ga_api, make_device, make_group, eager_celery, django_capture_on_commit_callbacks):
    """A completed cached devices report of a policy on three checked-in devices (the task run in-process)."""
    policy = _checked_in(ga_api, make_device, make_group)
    with django_capture_on_commit_callbacks(execute=True):
        created = ga_api.post(CONFIGS, _config(policy["id"]))
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "inProgress"
    return {"policy": policy, "id": created.json()["id"]}


@pytest.mark.worker
def test_a_worker_computes_the_snapshot_from_in_progress_to_completed(
    ga_api, make_device, make_group, celery_worker_process
):
    policy = _checked_in(ga_api, make_device, make_group)
    created = ga_api.post(CONFIGS, _config(policy["id"]))
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "inProgress" and body["lastRefreshDateTime"] is None
    config_id = body["id"]
    done = wait_for(
        lambda: (r := ga_api.get(f"{CONFIGS}/{config_id}").json())["status"] == "completed" and r, timeout=60
    )
    refreshed = datetime.fromisoformat(done["lastRefreshDateTime"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(done["expirationDateTime"].replace("Z", "+00:00"))
    assert abs((expires - refreshed) - timedelta(hours=1)) < timedelta(seconds=1)
    rows = _rows(ga_api.post(f"{REPORTS}/getCachedReport", {"id": config_id, "orderBy": ["DeviceName"]}))
    assert [r["DeviceName"] for r in rows] == sorted(NAMES)


def test_get_cached_report_reads_the_snapshot_not_the_live_rows(ga_api, cached):
    DevicePolicyStatus.objects.all().delete()  # the live report is now empty
    live = ga_api.post(
        f"{REPORTS}/getConfigurationPolicyDevicesReport",
        {"filter": f"(PolicyId eq '{cached['policy']['id']}')"},
    )
    assert live.json()["TotalRowCount"] == 0
    rows = _rows(ga_api.post(f"{REPORTS}/getCachedReport", {"id": cached["id"]}))
    assert sorted(r["DeviceName"] for r in rows) == sorted(NAMES)
    assert set(rows[0]) == {"DeviceName", "PolicyStatus", "PolicyStatus_loc", "IntuneDeviceId"}


def test_get_cached_report_sorts_pages_searches_selects_and_groups(ga_api, cached):
    read = f"{REPORTS}/getCachedReport"
    page = ga_api.post(read, {"id": cached["id"], "orderBy": ["DeviceName desc"], "skip": 1, "top": 1})
    assert page.json()["TotalRowCount"] == 3
    assert [r["DeviceName"] for r in _rows(page)] == ["WS-0002"]
    found = _rows(ga_api.post(read, {"id": cached["id"], "search": "0003", "select": ["DeviceName"]}))
    assert found == [{"DeviceName": "WS-0003"}]
    schema = ga_api.post(read, {"id": cached["id"], "select": ["PolicyStatus", "DeviceName"]}).json()[
        "Schema"
    ]
    assert schema == [{"Column": "PolicyStatus", "PropertyType": "Int32"}, {"Column": "DeviceName", "PropertyType": "String"}]  # fmt: skip
    grouped = ga_api.post(read, {"id": cached["id"], "groupBy": ["PolicyStatus_loc"]})
    assert grouped.json()["TotalRowCount"] == len({r["PolicyStatus_loc"] for r in _rows(ga_api.post(read, {"id": cached["id"]}))})  # fmt: skip
    assert [c["Column"] for c in grouped.json()["Schema"]] == ["PolicyStatus_loc"]


def test_unknown_columns_and_parameters_are_400s_as_graph_answers_them(ga_api, cached):
    read = f"{REPORTS}/getCachedReport"
    # PolicyName is a column of the report, but not one this configuration selected
    assert_graph_error(
        ga_api.post(read, {"id": cached["id"], "select": ["PolicyName"]}), 400, text="Unknown column"
    )
    assert_graph_error(ga_api.post(read, {"id": cached["id"], "orderBy": ["Nope desc"]}), 400, text="orderBy")
    assert_graph_error(
        ga_api.post(read, {"id": cached["id"], "groupBy": ["Nope"]}), 400, text="Unknown column"
    )
    assert_graph_error(
        ga_api.post(read, {"id": cached["id"], "groupBy": ["PolicyStatus"], "select": ["DeviceName"]}), 400
    )
    assert_graph_error(ga_api.post(read, {"id": cached["id"], "filter": "x"}), 400, text="not a parameter")
    assert_graph_error(ga_api.post(CONFIGS, _config(cached["policy"]["id"], select=["Nope"])), 400, text="Unknown column")  # fmt: skip
    assert_graph_error(ga_api.post(CONFIGS, _config(cached["policy"]["id"], filter="Nope eq 1")), 400)


def test_an_expired_or_deleted_cached_report_is_a_404(ga_api, cached):
    read = f"{REPORTS}/getCachedReport"
    CachedReport.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_graph_error(ga_api.post(read, {"id": cached["id"]}), 404, text="expired")
    assert not CachedReport.objects.exists()  # an expired snapshot is removed
    assert_graph_error(ga_api.get(f"{CONFIGS}/{cached['id']}"), 404)


def test_delete_removes_the_configuration_and_its_snapshot(ga_api, cached):
    assert ga_api.delete(f"{CONFIGS}/{cached['id']}").status_code == 204
    assert not CachedReport.objects.exists()
    assert_graph_error(ga_api.post(f"{REPORTS}/getCachedReport", {"id": cached["id"]}), 404)
    assert_graph_error(ga_api.delete(f"{CONFIGS}/{cached['id']}"), 404)


def test_a_snapshot_not_computed_yet_is_a_409_and_creating_again_recomputes(
    ga_api, make_device, make_group, eager_celery, django_capture_on_commit_callbacks
):
    policy = _checked_in(ga_api, make_device, make_group)
    created = ga_api.post(CONFIGS, _config(policy["id"]))  # the on-commit task never runs in this transaction
    assert created.json()["status"] == "inProgress"
    assert_graph_error(
        ga_api.post(f"{REPORTS}/getCachedReport", {"id": created.json()["id"]}), 409, "Conflict"
    )
    stale = CachedReport.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        again = ga_api.post(CONFIGS, _config(policy["id"], select=["DeviceName"]))
    assert again.status_code == 201
    row = CachedReport.objects.get()
    assert row.generation == stale.generation + 1 and row.status == "completed"
    assert ga_api.get(f"{CONFIGS}/{created.json()['id']}").json()["select"] == ["DeviceName"]


def test_a_report_too_large_to_cache_fails_with_the_reason(
    ga_api, make_device, make_group, eager_celery, django_capture_on_commit_callbacks, monkeypatch
):
    from reports import cached as cached_module

    policy = _checked_in(ga_api, make_device, make_group)
    monkeypatch.setattr(cached_module, "MAX_ROWS", 2)  # three rows: one too many
    with django_capture_on_commit_callbacks(execute=True):
        created = ga_api.post(CONFIGS, _config(policy["id"]))
    config_id = created.json()["id"]
    assert ga_api.get(f"{CONFIGS}/{config_id}").json()["status"] == "failed"
    assert_graph_error(
        ga_api.post(f"{REPORTS}/getCachedReport", {"id": config_id}), 409, text="narrow the filter"
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_beta_sdk_runs_graphs_cached_report_flow(sdk, ga_api, make_device, make_group, eager_celery):  # noqa: F811
    import json
    import warnings

    pytest.importorskip("msgraph_beta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from msgraph_beta.generated.device_management.reports.get_cached_report.get_cached_report_post_request_body import (
            GetCachedReportPostRequestBody,
        )
        from msgraph_beta.generated.models.device_management_cached_report_configuration import (
            DeviceManagementCachedReportConfiguration,
        )

    from tests.api.test_msgraph_sdk import run_async

    policy = _checked_in(ga_api, make_device, make_group)
    reports = sdk.device_management.reports
    config = _config(policy["id"])

    async def flow():
        created = await reports.cached_report_configurations.post(
            DeviceManagementCachedReportConfiguration(
                id=config["id"], filter=config["filter"], select=config["select"], order_by=[], metadata=""
            )
        )
        got = await reports.cached_report_configurations.by_device_management_cached_report_configuration_id(
            created.id
        ).get()
        raw = await reports.get_cached_report.post(
            GetCachedReportPostRequestBody(
                id=created.id, select=["DeviceName"], order_by=["DeviceName desc"], top=2
            )
        )
        await reports.cached_report_configurations.by_device_management_cached_report_configuration_id(
            created.id
        ).delete()
        return created, got, json.loads(raw)

    created, got, table = run_async(flow())
    assert str(getattr(created.status, "value", created.status)) == "inProgress"
    assert (
        str(getattr(got.status, "value", got.status)) == "completed" and got.expiration_date_time is not None
    )
    assert table["TotalRowCount"] == 3 and table["Values"] == [["WS-0003"], ["WS-0002"]]
    assert not CachedReport.objects.exists()


def test_a_person_scoped_to_device_groups_reads_only_their_devices_live_and_cached(
    client, ga_api, make_device, make_group, eager_celery, django_capture_on_commit_callbacks
):
    from django.contrib.auth import get_user_model

    from console import rbac
    from console.roles import sync_roles
    from console.tokens import create_token
    from tests.api.conftest import Api

    policy = _checked_in(ga_api, make_device, make_group)
    servers = make_group("Servers", members=list(Device.objects.filter(display_name="WS-0001")))
    sync_roles()
    role = rbac.create_role(name="Report reader", actions=["Endpoint security policies: Read"])
    person = get_user_model().objects.create_user("scoped-reader", password="x-Unused-1234")
    rbac.create_assignment(name="Servers only", role=role, members=[person], scope_groups=[servers])
    scoped_api = Api(client, create_token(name="scoped", owner=person, role="Report reader")[1])

    live = scoped_api.post(f"{REPORTS}/getConfigurationPolicyDevicesReport", {"filter": f"(PolicyId eq '{policy['id']}')", "select": ["DeviceName"]})  # fmt: skip
    assert _rows(live) == [{"DeviceName": "WS-0001"}]
    with django_capture_on_commit_callbacks(execute=True):
        created = scoped_api.post(CONFIGS, _config(policy["id"], id=f"ConfigurationPolicyDevicesReport_{policy['id'][:8]}"))  # fmt: skip
    assert created.status_code == 201, created.content
    mine = _rows(
        scoped_api.post(f"{REPORTS}/getCachedReport", {"id": created.json()["id"], "select": ["DeviceName"]})
    )
    assert mine == [{"DeviceName": "WS-0001"}]
    # the tenant-wide Global Administrator's snapshot is not the scoped person's to read, nor theirs his
    with django_capture_on_commit_callbacks(execute=True):
        everyone = ga_api.post(CONFIGS, _config(policy["id"])).json()
    assert_graph_error(scoped_api.post(f"{REPORTS}/getCachedReport", {"id": everyone["id"]}), 404)
    assert_graph_error(scoped_api.get(f"{CONFIGS}/{everyone['id']}"), 404)
    assert_graph_error(ga_api.post(f"{REPORTS}/getCachedReport", {"id": created.json()["id"]}), 404)
    assert len(_rows(ga_api.post(f"{REPORTS}/getCachedReport", {"id": everyone["id"]}))) == 3
