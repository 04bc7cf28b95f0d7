"""The tenant switches on both consoles' sides: who may change them, the audit, and the re-evaluation job."""

from __future__ import annotations

import pytest
from django.urls import reverse

from console.models import AuditEvent, Job, TenantSettings
from devices import services, tasks
from devices.models import Device
from tests.devices.device_factories import make_device, set_tenant

pytestmark = pytest.mark.django_db

SCOPE_URL = reverse("devices:enforcement_scope")
CONNECTOR_URL = reverse("devices:mde_connector")


def scope_form(tenant: TenantSettings, **changes) -> dict:
    data = {}
    for name in services.DEFENDER_FIELDS:
        value = changes.get(name, getattr(tenant, name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = value
    return data


@pytest.fixture
def queued(monkeypatch):
    """Records the jobs the views queue instead of sending them to a broker."""
    sent = []
    monkeypatch.setattr(tasks.reevaluate_all, "delay", lambda job_id, **kw: sent.append(job_id))
    return sent


def test_a_global_administrator_switches_a_platform_and_every_device_is_re_evaluated(
    ga_client, queued, django_capture_on_commit_callbacks
):
    tenant = set_tenant(windows_server_scope="tagged")
    untagged = make_device(os="windows_server", display_name="SRV-APP-01")
    services.reevaluate_device(untagged)
    untagged.refresh_from_db()
    assert untagged.enrollment_status_code == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = ga_client.post(SCOPE_URL, scope_form(tenant, windows_server_scope="all"))
    assert response.status_code == 302

    tenant.refresh_from_db()
    assert tenant.windows_server_scope == "all"
    job = Job.objects.get(kind=services.REEVALUATE_JOB)
    assert queued == [job.pk]
    audit = AuditEvent.objects.get(action="tenant.settings.update")
    assert audit.before == {"windows_server_scope": "tagged"}
    assert audit.after["windows_server_scope"] == "all"
    assert audit.after["source_system"] == services.SOURCE_ENFORCEMENT_SCOPE
    assert audit.actor_name == "ga"

    tasks.reevaluate_all(job.pk)
    job.refresh_from_db()
    untagged.refresh_from_db()
    assert job.status == "succeeded" and job.done == job.total == 1
    assert untagged.managed_by == "mde"
    page = ga_client.get(SCOPE_URL)
    assert b"SRV-APP-01" in page.content and b"1 devices evaluated" in page.content


def test_saving_without_a_change_starts_no_job(ga_client, queued, django_capture_on_commit_callbacks):
    tenant = set_tenant()
    with django_capture_on_commit_callbacks(execute=True):
        response = ga_client.post(SCOPE_URL, scope_form(tenant), follow=True)
    assert b"Nothing changed" in response.content
    assert not Job.objects.exists() and queued == []
    assert not AuditEvent.objects.filter(action="tenant.settings.update").exists()


def test_an_endpoint_security_manager_sees_the_switches_read_only_with_the_reason(esm_client):
    set_tenant()
    for url in (SCOPE_URL, CONNECTOR_URL):
        response = esm_client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert 'id="read-only-reason"' in html
        assert "Endpoint Security Manager role might not have the necessary permissions" in html
        assert ">Save</button>" not in html
        assert "disabled" in html


def test_a_forged_post_by_an_endpoint_security_manager_is_refused_and_changes_nothing(
    esm_client, queued, django_capture_on_commit_callbacks
):
    tenant = set_tenant()
    with django_capture_on_commit_callbacks(execute=True):
        scope = esm_client.post(SCOPE_URL, scope_form(tenant, windows_client_enabled=False))
        connector = esm_client.post(CONNECTOR_URL, {"entra_connect_sync_configured": "on"})
        rerun = esm_client.post(reverse("devices:reevaluate"))
    assert (scope.status_code, connector.status_code, rerun.status_code) == (403, 403, 403)
    assert b"Global Administrator" in scope.content
    tenant.refresh_from_db()
    assert tenant.windows_client_enabled and tenant.allow_mde_enforcement
    assert not Job.objects.exists() and queued == []
    assert not AuditEvent.objects.filter(action__startswith="tenant.").exists()


def test_a_read_only_operator_cannot_post_either(reader_client):
    tenant = set_tenant()
    assert reader_client.post(SCOPE_URL, scope_form(tenant, macos_enabled=False)).status_code == 403
    tenant.refresh_from_db()
    assert tenant.macos_enabled


def test_a_forged_scope_value_is_refused_beside_the_field_and_changes_nothing(ga_client, queued):
    tenant = set_tenant()
    response = ga_client.post(SCOPE_URL, scope_form(tenant, linux_scope="everything", linux_enabled=False))
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    tenant.refresh_from_db()
    assert tenant.linux_scope == "all" and tenant.linux_enabled
    assert not Job.objects.exists()


def test_the_intune_switch_off_gives_every_candidate_code_8(
    ga_client, queued, django_capture_on_commit_callbacks
):
    set_tenant()
    device = make_device()
    services.reevaluate_device(device)
    with django_capture_on_commit_callbacks(execute=True):
        response = ga_client.post(CONNECTOR_URL, {"entra_connect_sync_configured": "on"})
    assert response.status_code == 302
    assert not TenantSettings.load().allow_mde_enforcement
    tasks.reevaluate_all(queued[0])
    device.refresh_from_db()
    assert device.enrollment_status_code == 8 and device.managed_by == "none"
    assert "MDEManaged" not in device.label_list


def test_the_configmgr_switch_moves_configmgr_clients_both_ways(
    ga_client, queued, django_capture_on_commit_callbacks
):
    tenant = set_tenant(configmgr_manages_security=True)
    device = make_device(configmgr_client=True, join_type="hybrid_joined")
    services.reevaluate_device(device)
    device.refresh_from_db()
    assert device.enrollment_status_code == 4 and device.managed_by == "configmgr"

    with django_capture_on_commit_callbacks(execute=True):
        ga_client.post(SCOPE_URL, scope_form(tenant, configmgr_manages_security=False))
    tasks.reevaluate_all(queued[-1])
    device.refresh_from_db()
    assert device.managed_by == "mde" and device.is_mde_managed

    with django_capture_on_commit_callbacks(execute=True):
        ga_client.post(SCOPE_URL, scope_form(TenantSettings.load(), configmgr_manages_security=True))
    tasks.reevaluate_all(queued[-1])
    device.refresh_from_db()
    assert device.managed_by == "configmgr" and device.enrollment_status_code == 4


def test_the_job_converges_when_it_dies_midway_and_is_run_again(monkeypatch, global_admin):
    set_tenant(windows_client_enabled=False)
    devices = [make_device() for _ in range(7)]
    for device in devices:
        services.reevaluate_device(device)
    set_tenant()
    job = Job.objects.create(kind=services.REEVALUATE_JOB, created_by=global_admin)

    real = services.reevaluate_batch
    calls = {"n": 0}

    def dies_on_the_second_batch(batch, tenant, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker lost")
        return real(batch, tenant, **kwargs)

    monkeypatch.setattr(services, "reevaluate_batch", dies_on_the_second_batch)
    with pytest.raises(RuntimeError):
        tasks.reevaluate_all(job.pk, batch_size=3)
    job.refresh_from_db()
    assert job.status == "failed" and "run the re-evaluation again" in job.message
    managed = Device.objects.filter(managed_by="mde").count()
    assert managed == 3  # the first batch finished, each device whole; the rest untouched

    monkeypatch.setattr(services, "reevaluate_batch", real)
    rerun = Job.objects.create(kind=services.REEVALUATE_JOB, created_by=global_admin)
    tasks.reevaluate_all(rerun.pk, batch_size=3)
    rerun.refresh_from_db()
    assert rerun.status == "succeeded" and rerun.done == 7
    assert Device.objects.filter(managed_by="mde").count() == 7
    assert all(d.next_checkin_at for d in Device.objects.all())
    # Once converged, another run changes nothing.
    third = Job.objects.create(kind=services.REEVALUATE_JOB)
    tasks.reevaluate_all(third.pk)
    third.refresh_from_db()
    assert "0 changed" in third.message
    assert AuditEvent.objects.filter(action="device.management.started", actor_name="ga").count() == 7


def test_the_status_region_polls_only_while_the_job_is_active(ga_client):
    set_tenant()
    job = Job.objects.create(kind=services.REEVALUATE_JOB, total=3)
    region = ga_client.get(reverse("devices:scope_status"))
    assert b'hx-trigger="every 1s"' in region.content
    job.status = "succeeded"
    job.save()
    region = ga_client.get(reverse("devices:scope_status"))
    assert b"hx-trigger" not in region.content


def test_a_batch_decides_on_the_current_row_not_on_a_stale_read():
    from devices.models import Device

    tenant = set_tenant(windows_server_scope="tagged")
    server = make_device(os="windows_server")
    gone = make_device()
    stale = list(Device.objects.order_by("pk"))  # read before the tag edit and the delete below
    services.set_tags(server, ["MDE-Management"])
    services.delete_device(gone)
    server.refresh_from_db()
    assert server.is_mde_managed

    result = services.reevaluate_batch(stale, tenant)

    server.refresh_from_db()
    assert server.is_mde_managed  # the stale (untagged) copy did not take it out of scope
    assert result.stopped == 0 and not Device.objects.filter(pk=gone.pk).exists()
