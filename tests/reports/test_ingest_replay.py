"""Ingest replay: the same report twice changes nothing (the channel refuses it; ingest alone writes nothing)."""

from __future__ import annotations

import pytest

from devices import agent, channel
from reports.models import CheckinRecord, DevicePolicyStatus, DeviceSettingStatus, PolicySettingStatusCount
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db


def _everything():
    return (
        list(DevicePolicyStatus.objects.order_by("pk").values()),
        list(DeviceSettingStatus.objects.order_by("pk").values()),
        list(PolicySettingStatusCount.objects.order_by("pk").values()),
        CheckinRecord.objects.count(),
    )


def test_a_report_replayed_in_process_is_refused_and_changes_nothing():
    g = f.group("G")
    d = f.device("PC-1", groups=[g], tamper=True)
    f.policy("AV", {f.PUA: 1, f.BEHAVIOR: 0}, include=[g])
    context = channel.current_context()
    device = channel.load_device(d.pk)
    doc = channel.checkin_response(device, context)
    state, reports = agent.apply(agent.AgentState.initial(), doc["desired"])
    payload = {
        "desiredFingerprint": doc["desiredFingerprint"],
        "reportToken": doc["reportToken"],
        "settings": {
            k: {"status": r.status, "value": r.value, "errorCode": r.error_code, "message": r.message}
            for k, r in reports.items()
        },  # fmt: skip
        "agentState": state.to_dict(),
    }
    channel.accept_report(device, payload, context)
    after_first = _everything()

    with pytest.raises(channel.ChannelError) as refused:
        channel.accept_report(channel.load_device(d.pk), payload, context)

    assert refused.value.status == 409
    assert _everything() == after_first


def test_a_replayed_report_with_the_original_device_snapshot_loses_the_compare_and_set():
    """Two copies of one report racing (both validated against the same device state): only one lands."""
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("AV", {f.PUA: 1}, include=[g])
    context = channel.current_context()
    snapshot = channel.load_device(d.pk)
    doc = channel.checkin_response(snapshot, context)
    _, reports = agent.apply(agent.AgentState.initial(), doc["desired"])
    payload = {
        "desiredFingerprint": doc["desiredFingerprint"],
        "reportToken": doc["reportToken"],
        "settings": {k: {"status": r.status, "value": r.value} for k, r in reports.items()},
    }
    channel.accept_report(snapshot, payload, context)
    after_first = _everything()

    with pytest.raises(channel.ChannelError) as refused:
        channel.accept_report(snapshot, payload, context)  # stale snapshot: passes validation, fails the CAS

    assert refused.value.status == 409
    assert _everything() == after_first
