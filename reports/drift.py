"""Drift: every change of a device's effective value is a ``DriftEvent``; protected ones are told to the SOC.

Ingest records the events and calls :func:`announce` with them; once the transaction commits, the
``drift_recorded`` signal carries them up (reports.apps connects the receiver, which knows the Tamper
Protection-protected settings of the simulated agent) to :func:`alert_soc`, which queues one signed webhook
delivery (console.webhooks) per event that counts as protected:

* the settings Tamper Protection guards (reference "effective-settings.md", Modifiers),
* every ASR rule,
* the tenant's own additions (Tenant administration › Webhook, "Also protected in this tenant"),

or every event when the webhook is set to "Every drift event".
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import timedelta

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from console import webhooks
from console.models import WebhookEndpoint
from devices.models import Device
from devices.scope import scoped
from policies.catalog import get_catalog

from .models import DriftEvent

#: sent after commit with ``events=[DriftEvent, ...]`` (saved rows with their device loaded or loadable)
drift_recorded = Signal()

SOURCE_LABELS = {
    "intune": "Intune",
    "group_policy": "Group Policy",
    "configmgr": "Configuration Manager",
    "tamper_protection": "Tamper Protection",
    "local_admin": "Local admin",
    "default": "Default",
    "unknown": "Unknown",
}


def announce(events: list[DriftEvent]) -> None:
    """Called by ingest with the events it wrote: the signal goes out when (and only if) they are committed."""
    if events:
        transaction.on_commit(lambda: drift_recorded.send(sender=DriftEvent, events=list(events)))


def announce_rows(rows: list[tuple]) -> None:
    """:func:`announce` for the plain tuples ingest inserts (``reports.ingest.DRIFT_COLUMNS``, JSON encoded)."""
    if rows:
        announce(
            [
                DriftEvent(device_id=did, setting_key=key, entry=entry, old_value=json.loads(old),
                           new_value=json.loads(new), old_source=old_source, source=source, at=at)
                for did, key, entry, old, new, old_source, source, at in rows
            ]
        )  # fmt: skip


def is_asr_rule(setting_key: str) -> bool:
    setting = get_catalog().get(setting_key)
    return setting is not None and setting.asr_guid is not None


def protection_reason(setting_key: str, *, tamper_protected: Collection[str], extra: Collection[str]) -> str:
    """Why drift of this setting is told to the SOC ("" when it is not protected)."""
    if setting_key in tamper_protected:
        return "Tamper Protection-protected setting"
    if is_asr_rule(setting_key):
        return "Attack surface reduction rule"
    if setting_key in extra:
        return "Protected in this tenant"
    return ""


def setting_label(setting_key: str) -> str:
    setting = get_catalog().get(setting_key)
    return setting.display_name if setting is not None and setting.display_name else setting_key


def event_data(event: DriftEvent, reason: str, device=None) -> dict:
    device = device or event.device
    return {
        "deviceName": device.display_name,
        "deviceId": str(device.device_id),
        "settingDefinitionId": event.setting_key,
        "displayName": setting_label(event.setting_key),
        "entry": event.entry,
        "oldValue": event.old_value,
        "newValue": event.new_value,
        "oldConfiguredBy": SOURCE_LABELS.get(event.old_source, event.old_source),
        "configuredBy": SOURCE_LABELS.get(event.source, event.source),
        "driftDateTime": event.at.isoformat(),
        "protected": bool(reason),
        "reason": reason or "Every drift event is sent",
    }


def alert_soc(events: Iterable[DriftEvent], *, tamper_protected: Collection[str]) -> int:
    """Queues a webhook delivery per drift event that the tenant wants told; returns how many."""
    endpoint = WebhookEndpoint.load()
    if not endpoint.enabled or not endpoint.url:
        return 0
    extra = set(endpoint.extra_protected or [])
    events = list(events)
    devices = Device.objects.in_bulk({event.device_id for event in events})
    sent = 0
    with transaction.atomic():
        for event in events:
            if event.device_id not in devices:
                continue  # deleted since: nothing to tell
            reason = protection_reason(event.setting_key, tamper_protected=tamper_protected, extra=extra)
            if not reason and endpoint.events != WebhookEndpoint.Events.ALL:
                continue
            webhooks.enqueue(
                webhooks.EVENT_DRIFT, event_data(event, reason, devices[event.device_id]), endpoint=endpoint
            )
            sent += 1
    return sent


def drift_count(user, hours: int = 24) -> int:
    """Drift events of the last ``hours`` on the devices in ``user``'s scope (an indexed count by time)."""
    since = timezone.now() - timedelta(hours=hours)
    return scoped(DriftEvent.objects.filter(at__gte=since), user, via="device__").count()
