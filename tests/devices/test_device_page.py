"""The device page: Entra properties, sensor facts, timeline, groups; Device tags on the Defender side; Delete."""

from __future__ import annotations

import pytest
from django.urls import reverse

from console.models import AuditEvent
from devices import membership, services
from devices.models import Device
from tests.devices.device_factories import make_device, make_group, set_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    set_tenant(windows_server_scope="tagged")
    device = make_device(display_name="SRV-SQL-01", os="windows_server", join_type="domain_joined")
    services.reevaluate_device(device)
    device.refresh_from_db()
    return device


def test_the_device_page_shows_entra_properties_sensor_facts_timeline_and_groups(reader_client):
    set_tenant()
    device = make_device(display_name="CONTOSO-WS-0042", join_type="workgroup")
    group = make_group("All MDE managed devices", '(device.managementType -eq "MicrosoftSense")')
    services.reevaluate_device(device)
    html = reader_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    assert "CONTOSO-WS-0042" in html
    assert "deviceOSType" in html and "MicrosoftSense" in html and str(device.device_id) in html
    assert "PowerShell language mode" in html and "Tamper Protection" in html
    assert "Survey for an Intune presence" in html and "synthetic device identity" in html
    assert group.name in html
    assert "Active since" in html  # the device credential
    # A read-only operator gets no tags form and no Delete command.
    assert 'id="tags-form"' not in html and reverse("devices:delete", args=[device.pk]) not in html


def test_an_unknown_device_is_a_404(reader_client):
    assert reader_client.get(reverse("devices:detail", args=[424242])).status_code == 404


def test_tagging_a_device_in_pilot_mode_onboards_it(ga_client, server):
    assert server.enrollment_status_code == 2
    response = ga_client.post(
        reverse("devices:tags", args=[server.pk]),
        {"mde_management": "on", "other_tags": "SQL, Tier 0"},
        follow=True,
    )
    server.refresh_from_db()
    assert server.tag_list == ["MDE-Management", "SQL", "Tier 0"]
    assert server.is_mde_managed and server.join_type == "hybrid_joined"
    assert "Managed by: None → MDE" in response.content.decode()
    audit = AuditEvent.objects.get(action="device.tags.update")
    assert audit.after["tags"] == ["MDE-Management", "SQL", "Tier 0"] and audit.before == {"tags": []}


def test_untagging_a_device_in_pilot_mode_propagates_to_intune(esm_client, server, monkeypatch):
    esm_client.post(reverse("devices:tags", args=[server.pk]), {"mde_management": "on"})
    group = make_group("All MDE managed devices", '(device.managementType -eq "MicrosoftSense")')
    membership.recompute_group(group)
    assert group.member_count == 1

    esm_client.post(reverse("devices:tags", args=[server.pk]), {"other_tags": "SQL"})
    server.refresh_from_db()
    group.refresh_from_db()
    assert server.managed_by == "none" and server.management_type == ""
    assert "MDEManaged" not in server.label_list
    # It was enrolled: it left the enforcement scope (not "never been enrolled", code 2)
    assert server.enrollment_status == "Left the enforcement scope" and server.enrollment_status_code is None
    assert server.next_checkin_at is None
    assert group.member_count == 0
    stopped = AuditEvent.objects.get(action="device.management.stopped")
    assert stopped.after["source_system"] == services.SOURCE_DEVICE_TAGS
    assert stopped.actor_name == "esm"


def test_an_invalid_tag_is_refused_beside_the_field(ga_client, server):
    response = ga_client.post(
        reverse("devices:tags", args=[server.pk]), {"mde_management": "on", "other_tags": "ok, <script>"}
    )
    assert response.status_code == 200
    assert b"Not a valid tag" in response.content
    server.refresh_from_db()
    assert server.tags == "" and not server.is_mde_managed


def test_saving_the_same_tags_changes_nothing(ga_client, server):
    response = ga_client.post(reverse("devices:tags", args=[server.pk]), {"other_tags": ""}, follow=True)
    assert b"did not change" in response.content
    assert not AuditEvent.objects.filter(action="device.tags.update").exists()


def test_a_read_only_operator_cannot_tag(reader_client, server):
    assert (
        reader_client.post(reverse("devices:tags", args=[server.pk]), {"mde_management": "on"}).status_code
        == 403
    )
    server.refresh_from_db()
    assert server.tags == ""


def test_tagging_an_unknown_device_is_a_404(ga_client):
    assert ga_client.post(reverse("devices:tags", args=[777777]), {"mde_management": "on"}).status_code == 404


def test_delete_asks_for_confirmation_then_deletes(ga_client, server):
    url = reverse("devices:delete", args=[server.pk])
    page = ga_client.get(url)
    assert page.status_code == 200 and b"propagates to Microsoft Defender for Endpoint" in page.content
    assert Device.objects.filter(pk=server.pk).exists()
    response = ga_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("devices:list")
    assert not Device.objects.filter(pk=server.pk).exists()


def test_the_status_region_is_its_own_partial(reader_client, server):
    html = reader_client.get(reverse("devices:status", args=[server.pk])).content.decode()
    assert html.startswith('<div id="device-status"') and "Device is not enrolled" in html
