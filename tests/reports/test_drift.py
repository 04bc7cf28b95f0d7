"""Endpoint security › Reports › Drift, its count on the Endpoint security overview, and the SOC webhook for
protected drift (a real HTTP receiver on loopback)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from console import webhooks
from console.models import WebhookDelivery
from reports import drift
from reports.models import DriftEvent
from tests.console.test_webhooks import SECRET, Receiver, _verified
from tests.devices.device_factories import make_device
from tests.helpers import wait_for

P = "device_vendor_msft_policy_config_defender_"
RTP = P + "allowrealtimemonitoring"
ASR = P + "attacksurfacereductionrules_blockadobereaderfromcreatingchildprocesses"
CPU = P + "avgcpuloadfactor"


def _event(device, key, old, new, source, *, hours_ago=1.0, old_source="intune"):
    return DriftEvent.objects.create(
        device=device, setting_key=key, old_value=old, new_value=new, old_source=old_source, source=source,
        at=timezone.now() - timedelta(hours=hours_ago),
    )  # fmt: skip


def _rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode().lstrip("\ufeff"))))


@pytest.fixture
def events(db):
    web = make_device(display_name="WEB-01")
    dev = make_device(display_name="DEV-LAPTOP-7")
    return [
        _event(web, ASR, "block", "audit", "group_policy"),
        _event(dev, CPU, 50, 20, "local_admin", hours_ago=2),
        _event(dev, RTP, 1, 1, "tamper_protection", hours_ago=3),
        _event(web, CPU, 50, 30, "group_policy", hours_ago=72),  # outside 24 h, inside 7 days
    ]


def test_the_list_shows_the_last_24_hours_by_default_and_seven_days_on_request(reader_client, events):
    page = reader_client.get("/endpoint-security/reports/drift/").content.decode()
    assert "WEB-01" in page and "DEV-LAPTOP-7" in page
    assert "Block Adobe Reader from creating child processes" in page
    assert page.count("<tr") - page.count("<thead") >= 3
    day = reader_client.get("/endpoint-security/reports/drift/?export=csv")
    week = reader_client.get("/endpoint-security/reports/drift/?window=7d&export=csv")
    assert len(_rows(day)) == 3 and len(_rows(week)) == 4


def test_it_filters_by_setting_and_by_source_and_exports_what_it_shows(reader_client, events):
    response = reader_client.get(
        f"/endpoint-security/reports/drift/?window=7d&setting={CPU}&source=group_policy&export=csv"
    )
    rows = _rows(response)
    assert [(r["Device name"], r["Old value"], r["New value"], r["Configured by"]) for r in rows] == [
        ("WEB-01", "50", "30", "Group Policy")
    ]


def test_the_summary_counts_by_setting_and_source(reader_client, events):
    response = reader_client.get("/endpoint-security/reports/drift/")
    by_source = {row["label"]: row["n"] for row in response.context["by_source"]}
    assert by_source == {"Group Policy": 1, "Local admin": 1, "Tamper Protection": 1}


def test_a_bad_filter_is_shown_not_a_500(reader_client, events):
    response = reader_client.get("/endpoint-security/reports/drift/?window=forever&source=nobody")
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_the_endpoint_security_overview_counts_the_last_24_hours(reader_client, events):
    page = reader_client.get("/endpoint-security/").content.decode()
    assert 'id="drift-count"' in page and "<strong>3</strong> drift events in the last 24 hours" in page


def _enable(url, events_mode="protected", extra=()):
    webhooks.configure(url=url, secret=SECRET, enabled=True, events=events_mode, extra_protected=list(extra))


@pytest.mark.django_db(transaction=True)
def test_protected_drift_reaches_the_soc_signed_and_other_drift_does_not(eager_celery):
    device = make_device(display_name="SRV-DC-01")
    with Receiver([]) as receiver:
        _enable(receiver.url)
        made = [
            _event(device, ASR, "block", "audit", "group_policy"),
            _event(device, RTP, 1, 0, "local_admin"),
            _event(device, CPU, 50, 20, "local_admin"),
        ]
        drift.announce(made)  # outside a transaction: on_commit runs at once
        wait_for(lambda: len(receiver.requests) == 2, timeout=10)
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert all(_verified(r) for r in receiver.requests)
    assert {b["data"]["settingDefinitionId"] for b in bodies} == {ASR, RTP}
    asr = next(b for b in bodies if b["data"]["settingDefinitionId"] == ASR)
    assert asr["type"] == "effectiveSetting.drift"
    assert asr["data"]["deviceName"] == "SRV-DC-01" and asr["data"]["configuredBy"] == "Group Policy"
    assert asr["data"]["oldValue"] == "block" and asr["data"]["newValue"] == "audit"
    assert asr["data"]["reason"] == "Attack surface reduction rule"


@pytest.mark.django_db(transaction=True)
def test_a_tenant_can_add_a_setting_to_the_protected_ones():
    device = make_device(display_name="PC-9")
    _enable("https://soc.contoso.com/hook", extra=[CPU])
    sent = drift.alert_soc([_event(device, CPU, 50, 20, "local_admin")], tamper_protected=set())
    assert sent == 1 and WebhookDelivery.objects.get().payload["data"]["reason"] == "Protected in this tenant"


@pytest.mark.django_db(transaction=True)
def test_every_drift_event_is_sent_when_the_tenant_asks_for_all():
    device = make_device(display_name="PC-10")
    _enable("https://soc.contoso.com/hook", events_mode="all")
    assert drift.alert_soc([_event(device, CPU, 50, 20, "local_admin")], tamper_protected=set()) == 1


@pytest.mark.django_db(transaction=True)
def test_nothing_is_queued_when_the_webhook_is_off():
    device = make_device(display_name="PC-11")
    assert drift.alert_soc([_event(device, ASR, "block", "off", "local_admin")], tamper_protected=set()) == 0
    assert not WebhookDelivery.objects.exists()
