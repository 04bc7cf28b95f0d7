"""The check-in panel of the device page: Policy sync button, live progress, statuses, Get-MpPreference, history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.models import Device
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _panel(client, device, **kwargs):
    return client.get(reverse("checkins:device_panel", args=[device.pk]), **kwargs)


def test_an_mde_managed_device_has_the_policy_sync_button(esm_client):
    d = f.device("PC-1")
    response = _panel(esm_client, d)
    assert response.status_code == 200
    assert 'data-testid="policy-sync"' in response.text
    assert reverse("checkins:device_sync", args=[d.pk]) in response.text
    assert "<!DOCTYPE html>" in response.text  # a full page without htmx


def test_an_intune_enrolled_device_has_no_policy_sync_button_and_says_why(esm_client):
    d = f.device("INT-1", intune=True)
    response = _panel(esm_client, d)
    assert 'data-testid="policy-sync"' not in response.text
    assert "enrolled in Intune" in response.text
    assert "Microsoft Intune (MDM enrollment)" in response.text


def test_a_device_not_managed_by_mde_has_no_policy_sync_button(esm_client):
    assert 'data-testid="policy-sync"' not in _panel(esm_client, f.device("PC-X", mde=False)).text


def test_a_reader_sees_the_panel_but_not_the_button(reader_client):
    response = _panel(reader_client, f.device("PC-1"))
    assert response.status_code == 200
    assert 'data-testid="policy-sync"' not in response.text


def test_the_htmx_request_gets_only_the_partial(esm_client):
    response = _panel(esm_client, f.device("PC-1"), headers=HTMX)
    assert response.text.lstrip().startswith("<section")
    assert "<html" not in response.text


def test_the_panel_shows_policies_settings_errors_conflicts_the_mp_preference_listing_and_history(esm_client):
    g = f.group("G")
    d = f.device("PC-1", groups=[g], tamper=True)
    f.policy("Tamper", {f.BEHAVIOR: 0}, include=[g])
    f.policy("PUA block", {f.PUA: 1}, include=[g])
    f.policy("PUA audit", {f.PUA: 2}, include=[g])
    f.checkin(d, kind="sync")

    text = _panel(esm_client, d).text

    assert "Tamper Protection blocked this change" in text
    assert "0x87D1FDE8" in text
    assert 'data-status="conflict"' in text
    assert '<span class="pill pill-amber">PUA audit</span>' in text  # the other policy behind the conflict
    assert "Allow Behavior Monitoring" in text or "Behavior" in text
    assert '<pre class="code" data-testid="mp-preference">' in text
    assert "DisableBehaviorMonitoring" in text and "PUAProtection" in text
    assert 'data-testid="checkin-history"' in text and "Policy sync" in text


def test_policies_that_target_the_device_before_its_first_check_in_show_as_pending(esm_client):
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("AV", {f.PUA: 1}, include=[g])
    text = _panel(esm_client, d).text
    assert 'data-policy="AV"' in text
    assert 'data-status="pending"' in text
    assert "hasn't reported its local Defender configuration yet" in text


def test_the_panel_polls_while_a_sync_is_in_progress_and_stops_when_done(esm_client):
    g = f.group("G")
    d = f.device("PC-1", groups=[g], due=False)
    f.policy("AV", {f.PUA: 1}, include=[g])

    Device.objects.filter(pk=d.pk).update(sync_requested_at=timezone.now())
    requested = _panel(esm_client, d, headers=HTMX).text
    assert 'hx-trigger="every 1s"' in requested and "Sync requested" in requested

    Device.objects.filter(pk=d.pk).update(checkin_lease_until=timezone.now() + timedelta(minutes=5))
    checking = _panel(esm_client, d, headers=HTMX).text
    assert 'data-sync-state="checking_in"' in checking and "Checking in" in checking

    Device.objects.filter(pk=d.pk).update(checkin_lease_until=None)
    from devices import checkins

    checkins.policy_sync.run([d.pk], timezone.now().isoformat())
    done = _panel(esm_client, d, headers=HTMX).text
    assert 'hx-trigger="every 1s"' not in done
    assert "Policy sync completed" in done
    assert 'data-status="succeeded"' in done


def test_an_unknown_device_is_404(esm_client):
    assert esm_client.get(reverse("checkins:device_panel", args=[424242])).status_code == 404
