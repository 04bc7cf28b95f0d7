"""The device lab: simulated devices whose facts, Group Policy objects and local admin changes make onboarding,
check-ins, effective settings and drift follow, as the real world would (and the SOC hears of protected drift)."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from console.models import AuditEvent
from devices import lab
from devices.checkins import run_checkin
from devices.models import Device, GroupPolicyObject, LocalAdminChange
from reports.models import DeviceEffectiveSetting, DriftEvent
from tests.devices.device_factories import set_tenant

P = "device_vendor_msft_policy_config_defender_"
ASR = P + "attacksurfacereductionrules_blockadobereaderfromcreatingchildprocesses"
RTP = P + "allowrealtimemonitoring"
PATHS = P + "excludedpaths"
WIN11 = {"display_name": "LAB-WS-01", "os": "windows", "os_version": "10.0.22631.3447",
         "os_edition": "Windows 11 Enterprise 23H2", "join_type": "workgroup"}  # fmt: skip


@pytest.fixture
def tenant(db):
    return set_tenant()


def test_a_created_device_is_onboarded_and_due_for_a_checkin(tenant):
    device = lab.create_device(dict(WIN11))
    assert device.managed_by == "mde" and device.enrollment_status == "Success"
    assert device.next_checkin_at is not None and device.next_checkin_at <= timezone.now()
    assert AuditEvent.objects.filter(action="lab.device.create", object_id=str(device.pk)).exists()


def test_a_fact_change_reevaluates_onboarding_and_is_audited(tenant):
    device = lab.create_device(dict(WIN11))
    lab.update_facts(device, {"language_mode": "ConstrainedLanguage"})
    device.refresh_from_db()
    assert device.managed_by != "mde" and "ConstrainedLanguage" in device.enrollment_message
    event = AuditEvent.objects.get(action="lab.device.facts")
    assert (
        event.before == {"language_mode": "FullLanguage"}
        and event.after["language_mode"] == "ConstrainedLanguage"
    )
    lab.update_facts(device, {"language_mode": "FullLanguage"})
    device.refresh_from_db()
    assert device.managed_by == "mde"


def test_another_tenant_is_refused_by_onboarding(tenant):
    device = lab.create_device({**WIN11, "tenant_id": lab.OTHER_TENANT})
    assert device.tenant_id != tenant.tenant_id and device.enrollment_status == "Tenant mismatch"


def test_bad_facts_are_refused_with_a_reason_and_nothing_changes(tenant):
    device = lab.create_device(dict(WIN11))
    with pytest.raises(lab.LabError, match="join_type must be one of"):
        lab.update_facts(device, {"join_type": "space", "configmgr_client": True})
    with pytest.raises(lab.LabError, match="Unknown device fact"):
        lab.update_facts(device, {"trust": "hybrid"})
    device.refresh_from_db()
    assert device.join_type == "workgroup" and device.configmgr_client is False


@pytest.mark.parametrize(
    ("setting", "typed", "stored"),
    [
        (ASR, "Audit", "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=2"),
        (ASR, "block", "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=1"),
        (RTP, "0", 0),
        (RTP, "Not allowed", 0),
        (PATHS, "C:\\Dev, D:\\src", ["C:\\Dev", "D:\\src"]),
    ],
)
def test_values_are_typed_as_people_say_them_and_stored_as_the_catalog_does(setting, typed, stored):
    assert lab.parse_setting_value(setting, typed) == stored


@pytest.mark.parametrize(
    ("setting", "typed", "message"),
    [
        (ASR, "sometimes", "isn't an option"),
        ("device_vendor_msft_policy_config_defender_made_up", "1", "is not a Defender Antivirus setting"),
        (RTP, "", "Enter a value"),
    ],
)
def test_bad_values_are_refused_with_the_catalogs_reason(setting, typed, message):
    with pytest.raises(lab.LabError, match=message):
        lab.parse_setting_value(setting, typed)


def test_add_and_remove_are_for_exclusion_lists_only(tenant):
    device = lab.create_device(dict(WIN11))
    with pytest.raises(lab.LabError, match="exclusion lists only"):
        lab.add_local_change(device, setting_id=RTP, operation="add", value="0")
    assert not LocalAdminChange.objects.exists()


def test_a_gpo_with_the_same_name_is_refused(tenant):
    lab.save_gpo(None, name="Servers baseline")
    with pytest.raises(lab.LabError, match="already exists"):
        lab.save_gpo(None, name="servers BASELINE")


def test_linking_a_gpo_makes_the_devices_of_the_ou_due(tenant):
    server = lab.create_device({**WIN11, "display_name": "SRV-01", "ad_domain": "contoso.com",
                                "ad_ou": "OU=Web,OU=Servers,DC=contoso,DC=com"})  # fmt: skip
    other = lab.create_device({**WIN11, "display_name": "WS-02", "ad_domain": "contoso.com",
                               "ad_ou": "OU=Workstations,DC=contoso,DC=com"})  # fmt: skip
    later = timezone.now() + timezone.timedelta(hours=1)
    Device.objects.update(next_checkin_at=later)
    gpo = lab.save_gpo(None, name="Servers ASR audit", link_ou="OU=Servers,DC=contoso,DC=com")
    server.refresh_from_db(), other.refresh_from_db()
    assert server.next_checkin_at <= timezone.now() < other.next_checkin_at
    assert lab.applied_gpos(server) == [gpo] and lab.applied_gpos(other) == []


@pytest.mark.django_db(transaction=True)
def test_a_gpo_that_audits_an_asr_rule_wins_after_the_checkin_and_is_drift():
    set_tenant()
    device = lab.create_device({**WIN11, "display_name": "SRV-WEB-01", "ad_domain": "contoso.com"})
    run_checkin(device.pk)  # the baseline
    gpo = lab.save_gpo(None, name="Domain ASR audit", link_domain="contoso.com")
    lab.set_gpo_setting(gpo, ASR, "Audit")
    run_checkin(device.pk)
    row = DeviceEffectiveSetting.objects.get(device=device, setting_key=ASR)
    assert row.configured_by == "group_policy" and row.value == "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=2"
    event = DriftEvent.objects.get(device=device, setting_key=ASR)
    assert event.source == "group_policy"


@pytest.mark.django_db(transaction=True)
def test_tamper_protection_stops_a_local_attempt_to_turn_realtime_protection_off():
    set_tenant()
    device = lab.create_device(dict(WIN11))
    run_checkin(device.pk)
    lab.add_local_change(device, setting_id=RTP, operation="set", value="0")
    run_checkin(device.pk)
    row = DeviceEffectiveSetting.objects.get(device=device, setting_key=RTP)
    assert row.value == 1 and row.configured_by == "tamper_protection"
    assert ["local_admin", 0] in [[a["source"], a["value"]] for a in row.other_attempts]
    lab.update_facts(device, {"tamper_protection": False})
    run_checkin(device.pk)
    row = DeviceEffectiveSetting.objects.get(device=device, setting_key=RTP)
    assert row.value == 0 and row.configured_by == "local_admin"
    assert DriftEvent.objects.filter(
        device=device, setting_key=RTP, new_value=0, source="local_admin"
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_protected_drift_from_a_checkin_reaches_the_soc(eager_celery):
    from console import webhooks
    from tests.console.test_webhooks import SECRET, Receiver, _verified
    from tests.helpers import wait_for

    set_tenant()
    device = lab.create_device({**WIN11, "tamper_protection": False})
    run_checkin(device.pk)
    with Receiver([]) as receiver:
        webhooks.configure(
            url=receiver.url, secret=SECRET, enabled=True, events="protected", extra_protected=[]
        )
        lab.add_local_change(device, setting_id=RTP, operation="set", value="0")
        run_checkin(device.pk)
        wait_for(lambda: receiver.requests, timeout=10)
    body = json.loads(receiver.requests[0]["body"])
    assert _verified(receiver.requests[0])
    assert body["data"]["settingDefinitionId"] == RTP and body["data"]["configuredBy"] == "Local admin"
    assert body["data"]["reason"] == "Tamper Protection-protected setting"


# ---- pages ----------------------------------------------------------------------------------------------


def test_the_lab_pages_say_simulation(ga_client, tenant):
    for url in ("/lab/", "/lab/devices/new/", "/lab/gpos/new/"):
        page = ga_client.get(url).content.decode()
        assert "Simulation" in page and 'id="simulation-banner"' in page, url


def _facts_post(**overrides):
    data = {**WIN11, "join_type": "workgroup", "language_mode": "FullLanguage", "license_source": "mde",
            "tenant": "own", "mde_onboarded": "on", "in_sync_scope": "on", "tamper_protection": "on"}  # fmt: skip
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_a_device_is_created_and_changed_from_the_pages(ga_client, tenant):
    response = ga_client.post("/lab/devices/new/", _facts_post())
    device = Device.objects.get(display_name="LAB-WS-01")
    assert response.status_code == 302 and response["Location"] == f"/lab/devices/{device.pk}/"
    response = ga_client.post(
        f"/lab/devices/{device.pk}/", _facts_post(configmgr_client="on", tamper_protection=None)
    )
    device.refresh_from_db()
    assert response.status_code == 302 and device.configmgr_client and not device.tamper_protection
    response = ga_client.post(
        f"/lab/devices/{device.pk}/local-changes/", {"operation": "add", "setting": PATHS, "value": "C:\\Dev"}
    )
    assert response.status_code == 302 and LocalAdminChange.objects.get(device=device).value == ["C:\\Dev"]


def test_a_bad_local_change_is_answered_with_the_reason(ga_client, tenant):
    device = lab.create_device(dict(WIN11))
    response = ga_client.post(
        f"/lab/devices/{device.pk}/local-changes/", {"operation": "set", "setting": ASR, "value": "sometimes"}
    )
    assert response.status_code == 400 and "isn&#x27;t an option" in response.content.decode()


def test_a_gpo_is_made_linked_and_given_settings_from_the_pages(ga_client, tenant):
    device = lab.create_device(dict(WIN11))
    response = ga_client.post(
        "/lab/gpos/new/",
        {"name": "Dev exclusions", "enabled": "on", "link_order": "1", "devices": [device.pk]},
    )
    gpo = GroupPolicyObject.objects.get(name="Dev exclusions")
    assert response.status_code == 302 and list(gpo.devices.all()) == [device]
    ga_client.post(f"/lab/gpos/{gpo.pk}/settings/", {"setting": ASR, "value": "Audit"})
    gpo.refresh_from_db()
    assert gpo.settings == {ASR: "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=2"}
    assert "Audit" in ga_client.get(f"/lab/gpos/{gpo.pk}/").content.decode()
    ga_client.post(f"/lab/gpos/{gpo.pk}/settings/", {"setting": ASR, "value": ""})
    gpo.refresh_from_db()
    assert gpo.settings == {}
    assert AuditEvent.objects.filter(action="lab.gpo.setting").count() == 2


def test_only_a_global_administrator_sees_the_lab_in_the_navigation(
    client, global_admin, security_manager, tenant
):
    client.force_login(global_admin)
    assert "/lab/" in client.get("/").content.decode()
    client.force_login(security_manager)
    assert "/lab/" not in client.get("/").content.decode()
    assert client.post("/lab/devices/new/", _facts_post()).status_code == 403
