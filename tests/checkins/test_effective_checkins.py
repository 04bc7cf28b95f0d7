"""Effective settings through the check-in: other sources win, ingest writes only changes, every change is drift."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from devices import agent, credentials
from devices.models import Device, GroupPolicyObject, LocalAdminChange
from reports.ingest import recount_effective
from reports.models import DeviceEffectiveSetting, DriftEvent
from tests.checkins import fleet as f
from tests.helpers import stored_effective_counts as stored_counts

pytestmark = pytest.mark.django_db

ASR_PROFILE = "Attack Surface Reduction Rules"
ADOBE = f.P + "attacksurfacereductionrules_blockadobereaderfromcreatingchildprocesses"
GUID = "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c"
BLOCK, AUDIT = f"{GUID}=1", f"{GUID}=2"


def rows(device) -> dict:
    return {(r.setting_key, r.entry): r for r in DeviceEffectiveSetting.objects.filter(device=device)}


@pytest.fixture
def server():
    g = f.group("Servers")
    d = f.device(
        "SRV-01", os="windows_server", groups=[g], ad_domain="contoso.com", ad_ou="OU=Servers,DC=contoso"
    )
    f.policy("ASR block", {ADOBE: BLOCK}, profile=ASR_PROFILE, include=[g])
    return d


def test_a_gpo_linked_to_the_devices_ou_overrides_the_policys_block_with_audit(server):
    GroupPolicyObject.objects.create(
        name="Servers ASR audit", settings={ADOBE: AUDIT}, link_ou="OU=Servers,DC=contoso"
    )

    f.checkin(server)

    row = rows(server)[(ADOBE, "")]
    assert (row.value, row.configured_by, row.intent) == (AUDIT, "group_policy", "differs")
    assert row.intended_value == BLOCK
    assert row.other_attempts == [{"source": "intune", "value": BLOCK, "name": ""}]
    assert stored_counts() == recount_effective()
    assert not DriftEvent.objects.exists()  # the first report is the baseline, not drift
    # the policy's own report still says Succeeded: the value was written
    assert f.statuses(server) == {"ASR block": "succeeded"}


def test_a_domain_gpo_does_not_reach_another_domain_and_a_disabled_link_does_not_apply(server):
    GroupPolicyObject.objects.create(name="Fabrikam", settings={ADOBE: AUDIT}, link_domain="fabrikam.com")
    GroupPolicyObject.objects.create(
        name="Off", settings={ADOBE: AUDIT}, link_domain="contoso.com", enabled=False
    )

    f.checkin(server)

    row = rows(server)[(ADOBE, "")]
    assert (row.value, row.configured_by, row.intent) == (BLOCK, "intune", "matches")


def test_linking_and_unlinking_a_gpo_are_drift_events_and_an_unchanged_check_in_writes_nothing(server):
    f.checkin(server)
    first = rows(server)[(ADOBE, "")]
    assert first.configured_by == "intune"

    f.make_due(server)
    f.checkin(server)
    assert rows(server)[(ADOBE, "")].pk == first.pk  # nothing rewritten
    assert not DriftEvent.objects.exists()

    gpo = GroupPolicyObject.objects.create(name="Audit", settings={ADOBE: AUDIT})
    gpo.devices.add(server)
    f.make_due(server)
    f.checkin(server)
    [event] = DriftEvent.objects.all()
    assert (event.setting_key, event.old_value, event.new_value) == (ADOBE, BLOCK, AUDIT)
    assert (event.old_source, event.source) == ("intune", "group_policy")

    gpo.devices.remove(server)
    f.make_due(server)
    f.checkin(server)
    latest = DriftEvent.objects.order_by("-id").first()
    assert (latest.old_value, latest.new_value, latest.source) == (AUDIT, BLOCK, "intune")
    assert stored_counts() == recount_effective()


def test_local_exclusions_merge_unless_disable_local_admin_merge_is_on():
    g = f.group("Developers")
    d = f.device("DEV-01", groups=[g])
    f.policy("Exclusions", {f.EXCLUDED_PATHS: ["C:\\Build"]}, profile=f.AV_EXCLUSIONS, include=[g])
    LocalAdminChange.objects.create(
        device=d, setting_id=f.EXCLUDED_PATHS, operation="add", value=["C:\\Temp"], at=timezone.now()
    )
    f.checkin(d)
    found = rows(d)
    assert (
        found[(f.EXCLUDED_PATHS, "C:\\Build")].configured_by,
        found[(f.EXCLUDED_PATHS, "C:\\Build")].intent,
    ) == (
        "intune",
        "matches",
    )
    local = found[(f.EXCLUDED_PATHS, "C:\\Temp")]
    assert (local.value, local.configured_by, local.intent) == ("C:\\Temp", "local_admin", "none")

    GroupPolicyObject.objects.create(name="No local merge", settings={f.LOCALADMINMERGE: 1}).devices.add(d)
    f.make_due(d)
    f.checkin(d)
    local = rows(d)[(f.EXCLUDED_PATHS, "C:\\Temp")]
    assert (local.value, local.configured_by) == (None, "default")
    assert local.other_attempts == [{"source": "local_admin", "value": "C:\\Temp", "name": ""}]
    assert DriftEvent.objects.filter(entry="C:\\Temp", new_value=None).exists()


def test_tamper_protection_stops_a_local_admin_turning_real_time_protection_off():
    g = f.group("Workstations")
    d = f.device("PC-01", groups=[g], tamper=True)
    f.policy("AV", {f.PUA: 1}, include=[g])
    LocalAdminChange.objects.create(
        device=d, setting_id=f.REALTIME, value=0, at=timezone.now() - timedelta(hours=1)
    )

    f.checkin(d)

    row = rows(d)[(f.REALTIME, "")]
    assert (row.value, row.configured_by, row.intent) == (1, "tamper_protection", "none")
    assert row.other_attempts == [{"source": "local_admin", "value": 0, "name": ""}]

    Device.objects.filter(pk=d.pk).update(tamper_protection=False)
    f.make_due(d)
    f.checkin(d)
    row = rows(d)[(f.REALTIME, "")]
    assert (row.value, row.configured_by) == (0, "local_admin")
    assert DriftEvent.objects.filter(
        setting_key=f.REALTIME, old_source="tamper_protection", new_value=0
    ).exists()


def test_removing_the_device_from_management_takes_its_rows_out_of_the_counts(server):
    GroupPolicyObject.objects.create(name="Audit", settings={ADOBE: AUDIT}, link_domain="contoso.com")
    f.checkin(server)
    assert stored_counts()

    from reports.ingest import remove_devices

    remove_devices([server.pk])

    assert not DeviceEffectiveSetting.objects.filter(device=server).exists()
    assert stored_counts() == {}


# --------------------------------------------------------------------------------------------------------------
# Over HTTP
# --------------------------------------------------------------------------------------------------------------

CHECKIN = "/devicechannel/v1/checkin"
REPORT = "/devicechannel/v1/report"


def _http(device):
    from django.test import Client

    return Client(
        headers={
            "Authorization": f"Bearer {credentials.issue(device)}",
            "X-Tenant-Id": str(f.tenant().tenant_id),
        }
    )


def _report(doc: dict, effective) -> dict:
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
        "effective": effective,
    }


def test_an_http_report_carries_the_effective_settings(server):
    client = _http(server)
    effective = [
        {"setting": ADOBE, "entry": "", "value": AUDIT, "source": "group_policy",
         "attempts": [{"source": "intune", "value": BLOCK, "name": ""}]},
    ]  # fmt: skip
    response = client.post(
        REPORT, json.dumps(_report(client.get(CHECKIN).json(), effective)), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    row = rows(server)[(ADOBE, "")]
    assert (row.value, row.configured_by, row.intent) == (AUDIT, "group_policy", "differs")


GOOD = {"setting": ADOBE, "entry": "", "value": AUDIT, "source": "group_policy", "attempts": []}


@pytest.mark.parametrize(
    ("effective", "code", "says"),
    [
        ("all fine", "malformed_report", "effective must be a list"),
        ([{**GOOD, "source": "sccm"}], "malformed_report", "effective[0].source must be one of"),
        ([{**GOOD, "setting": "nope"}], "unknown_setting", "isn't a catalog setting"),
        ([GOOD, GOOD], "malformed_report", "effective[1] repeats"),
        ([{**GOOD, "value": {"a": 1}}], "malformed_report", "effective[0].value must be"),
        (
            [{**GOOD, "attempts": [{"source": "intune", "extra": 1}]}],
            "malformed_report",
            "attempts[0] must have",
        ),
        ([{**GOOD, "entry": "x" * 501}], "malformed_report", "effective[0].entry"),
        ([{"setting": ADOBE}], "malformed_report", "must have setting, source"),
    ],
)
def test_a_bad_effective_report_is_400_says_what_is_wrong_and_changes_nothing(server, effective, code, says):
    client = _http(server)
    doc = client.get(CHECKIN).json()
    before = list(Device.objects.filter(pk=server.pk).values_list("last_checkin_at", "effective_digest"))

    response = client.post(REPORT, json.dumps(_report(doc, effective)), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert says in response.json()["error"]["message"]
    assert not DeviceEffectiveSetting.objects.exists()
    assert (
        list(Device.objects.filter(pk=server.pk).values_list("last_checkin_at", "effective_digest")) == before
    )
    # nothing lost: the same check-in reported correctly still goes through
    ok = client.post(REPORT, json.dumps(_report(doc, [GOOD])), content_type="application/json")
    assert ok.status_code == 200, ok.content


def test_a_mac_cannot_report_effective_settings():
    g = f.group("Macs")
    mac = f.device("MAC-01", os="macos", groups=[g])
    f.policy("AV mac", {f.PUA: 1}, include=[g], platform="macos")
    client = _http(mac)
    response = client.post(
        REPORT, json.dumps(_report(client.get(CHECKIN).json(), [])), content_type="application/json"
    )
    assert response.status_code == 400
    assert "Windows devices only" in response.json()["error"]["message"]


def test_an_ou_gpo_beats_a_domain_gpo_and_a_configmgr_baseline_reaches_only_configmgr_clients():
    from devices.models import ConfigMgrBaseline
    from devices.sources import load_sources

    ou = "OU=Web,OU=Servers,DC=contoso,DC=com"
    client = f.device("WEB-1", os="windows_server", ad_domain="contoso.com", ad_ou=ou, configmgr_client=True)
    other = f.device(
        "WEB-2", os="windows_server", ad_domain="contoso.com", ad_ou="OU=Desktops,DC=contoso,DC=com"
    )
    GroupPolicyObject.objects.create(
        name="Domain", settings={f.PUA: 0}, link_domain="contoso.com", link_order=1
    )
    GroupPolicyObject.objects.create(name="Servers OU", settings={f.PUA: 2}, link_ou="OU=Servers,DC=contoso,DC=com",
                                     link_order=5)  # fmt: skip
    ConfigMgrBaseline.objects.create(name="CM", settings={f.SCRIPT_SCANNING: 0})

    found = load_sources([client, other])

    from devices.precedence import resolve

    client_entries = {
        e.setting_id: e
        for e in resolve(found[client.pk].attempts, tamper_protection=False, tamper_protected=())
    }
    assert (client_entries[f.PUA].value, client_entries[f.PUA].other_attempts[0].name) == (2, "Domain")
    assert client_entries[f.SCRIPT_SCANNING].configured_by == "configmgr"
    other_entries = {
        e.setting_id: e
        for e in resolve(found[other.pk].attempts, tamper_protection=False, tamper_protected=())
    }
    assert other_entries[f.PUA].value == 0  # only the domain GPO reaches it
    assert f.SCRIPT_SCANNING not in other_entries  # not a ConfigMgr client
