"""The outgoing webhook: signed JSON posts to the tenant's SOC, persisted and retried with exponential backoff.

Every event becomes a ``WebhookDelivery`` row first (in the caller's transaction), then a Celery task posts it.
A failed attempt moves ``next_attempt_at`` out by ``WEBHOOK_BACKOFF_SECONDS * 2**(attempts-1)`` and schedules
the task again; beat's sweep (``retry_due_webhooks``) re-sends any due row whose task was lost (a worker killed
mid-attempt, a broker restart), so delivery survives restarts: the database, not the broker, is the record.

The receiver checks ``X-Console-Signature: sha256=<hex>`` = HMAC-SHA256(secret, "<X-Console-Timestamp>.<body>")
and refuses timestamps older than a few minutes (replay); ``X-Console-Delivery`` is the same for every retry of
one event, so a receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import audit
from .models import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Console-Signature"
TIMESTAMP_HEADER = "X-Console-Timestamp"
EVENT_HEADER = "X-Console-Event"
DELIVERY_HEADER = "X-Console-Delivery"
USER_AGENT = "MDE-Security-Console-Webhook/1"
LEASE_SECONDS = 30
TIMEOUT_SECONDS = 10
EVENT_DRIFT = "effectiveSetting.drift"
EVENT_TEST = "webhook.test"


class WebhookError(ValueError):
    """Bad webhook configuration; the message says what to fix, and nothing was changed."""


def backoff_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_BACKOFF_SECONDS", 30))


def max_attempts() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 8))


def delay_after(attempts: int) -> timedelta:
    """Exponential backoff: 1×, 2×, 4×, … the base after the 1st, 2nd, 3rd failed attempt (capped at a day)."""
    return timedelta(seconds=min(backoff_seconds() * 2 ** max(attempts - 1, 0), 86400))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: int = 300) -> bool:
    """What a receiver does (and what the tests do): the signature matches and the timestamp is recent."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def validate_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(
            "Enter an http:// or https:// URL with a host name, e.g. https://soc.contoso.com/hook."
        )
    if parts.username or parts.password:
        raise WebhookError("Put no user name or password in the URL: the secret signs every request instead.")
    if getattr(settings, "PRODUCTION", False):
        if parts.scheme != "https":
            raise WebhookError("In production the webhook URL must use https://.")
        try:
            if not ipaddress.ip_address(parts.hostname).is_global:
                raise WebhookError("In production the webhook cannot post to a private or loopback address.")
        except ValueError:
            pass  # a host name, not an address literal
    return url


def configure(*, url: str, secret: str | None, enabled: bool, events: str, extra_protected: list[str]):
    """Saves the webhook (audited; the secret is never written to the audit log). ``secret=None`` keeps it."""
    endpoint = WebhookEndpoint.load()
    if events not in WebhookEndpoint.Events.values:
        raise WebhookError(f"Events must be one of: {', '.join(WebhookEndpoint.Events.values)}.")
    if enabled or url:
        url = validate_url(url)
    new_secret = endpoint.secret if secret is None else secret.strip()
    if enabled and len(new_secret) < 16:
        raise WebhookError("The secret must have at least 16 characters (or let the console generate one).")
    fields = ["url", "enabled", "events", "extra_protected"]
    before = audit.snapshot(endpoint, fields)
    endpoint.url, endpoint.enabled, endpoint.events = url, enabled, events
    endpoint.extra_protected = sorted(set(extra_protected))
    secret_changed = new_secret != endpoint.secret
    endpoint.secret = new_secret
    endpoint.save()
    b, a = audit.changed(before, audit.snapshot(endpoint, fields))
    if secret_changed:
        b["secret"], a["secret"] = "(hidden)", "(changed)"
    if a:
        audit.record("webhook.update", endpoint, object_repr=endpoint.url or "Webhook", before=b, after=a)
    return endpoint


def enqueue(
    event_type: str, data: dict, *, endpoint: WebhookEndpoint | None = None
) -> WebhookDelivery | None:
    """Persists one delivery (when the webhook is on) and sends it after the caller's transaction commits."""
    endpoint = endpoint or WebhookEndpoint.load()
    if not endpoint.enabled or not endpoint.url:
        return None
    now = timezone.now()
    delivery = WebhookDelivery(event_type=event_type, url=endpoint.url, next_attempt_at=now)
    delivery.payload = {
        "id": str(delivery.event_id),
        "type": event_type,
        "createdDateTime": now.isoformat(),
        "tenantId": None,
        "data": data,
    }
    from .models import TenantSettings

    delivery.payload["tenantId"] = str(TenantSettings.load().tenant_id)
    delivery.save()
    transaction.on_commit(lambda: deliver_webhook.delay(delivery.pk))
    return delivery


def send_test_event(actor: audit.Actor | None = None) -> WebhookDelivery:
    endpoint = WebhookEndpoint.load()
    if not endpoint.enabled or not endpoint.url:
        raise WebhookError("Turn the webhook on with a URL and a secret before sending a test event.")
    delivery = enqueue(EVENT_TEST, {"message": "A test event from the console's webhook settings."})
    audit.record("webhook.test", endpoint, object_repr=endpoint.url, after={"event": str(delivery.event_id)},
                 actor=actor)  # fmt: skip
    return delivery


def _claim(delivery_id: int) -> WebhookDelivery | None:
    """Atomic compare-and-set: only a due, unleased, pending row is taken, by one worker."""
    now = timezone.now()
    taken = WebhookDelivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        pk=delivery_id,
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lte=now,
    ).update(lease_until=now + timedelta(seconds=LEASE_SECONDS))
    return WebhookDelivery.objects.filter(pk=delivery_id).first() if taken else None


def _post(url: str, secret: str, delivery: WebhookDelivery) -> tuple[int | None, str]:
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(url, data=body, method="POST")
    for name, value in {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.event_id),
    }.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"[:500]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"[:500]


def attempt(delivery_id: int) -> WebhookDelivery | None:
    """One attempt at one delivery; returns the row afterwards, or None when it was not due or taken."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    endpoint = WebhookEndpoint.load()
    started = time.monotonic()
    code, error = _post(delivery.url, endpoint.secret, delivery)
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status_code = code
    delivery.last_error = error
    delivery.lease_until = None
    delivery.history = [
        *delivery.history,
        {
            "at": now.isoformat(),
            "status_code": code,
            "error": error,
            "ms": int((time.monotonic() - started) * 1000),
        },
    ]
    if code is not None and 200 <= code < 300:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = now
    elif delivery.attempts >= max_attempts():
        delivery.status = WebhookDelivery.Status.FAILED
    else:
        delivery.next_attempt_at = now + delay_after(delivery.attempts)
    delivery.save()
    if delivery.status == WebhookDelivery.Status.PENDING:
        countdown = max((delivery.next_attempt_at - timezone.now()).total_seconds(), 0)
        deliver_webhook.apply_async((delivery.pk,), countdown=countdown)
    return delivery


@shared_task(ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    attempt(delivery_id)


@shared_task(ignore_result=True)
def retry_due_webhooks() -> int:
    """Beat's sweep: due pending deliveries whose task was lost (worker restart) are attempted again."""
    now = timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now),
            status=WebhookDelivery.Status.PENDING,
            # a grace period so the sweep does not race the countdown task that is about to run
            next_attempt_at__lte=now - timedelta(seconds=5),
        ).values_list("pk", flat=True)[:200]
    )
    for pk in due:
        deliver_webhook.delay(pk)
    return len(due)
