"""The per-device credential of the device channel (the *.dm.microsoft.com role).

Issued when the trust with Entra is created, revoked when the device is deleted or leaves scope. The secret is
shown once (to the simulated agent) and stored as a SHA-256 hash; lookups use the key id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.utils import timezone

from .models import Device, DeviceCredential


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(device: Device) -> str:
    """Revokes any active credential and returns a new bearer token `<key_id>.<secret>`."""
    revoke(device)
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    DeviceCredential.objects.create(device=device, key_id=key_id, secret_hash=_hash(secret))
    return f"{key_id}.{secret}"


def issue_many(device_ids: list[int]) -> dict[int, str]:
    """``issue`` for many devices at once (a benchmark's agents): two statements, not two per device."""
    now = timezone.now()
    DeviceCredential.objects.filter(device_id__in=device_ids, revoked_at__isnull=True).update(revoked_at=now)
    tokens: dict[int, str] = {}
    rows = []
    for pk in device_ids:
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        tokens[pk] = f"{key_id}.{secret}"
        rows.append(DeviceCredential(device_id=pk, key_id=key_id, secret_hash=_hash(secret)))
    DeviceCredential.objects.bulk_create(rows, batch_size=2000)
    return tokens


def revoke(device: Device) -> int:
    return DeviceCredential.objects.filter(device=device, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def split(token: str | None) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed bearer token, or None."""
    key_id, _, secret = (token or "").partition(".")
    if not key_id or not secret or len(token) > 200:
        return None
    return key_id, secret


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(secret_hash, _hash(secret))


def authenticate(token: str) -> Device | None:
    """The device a bearer token belongs to, or None for a malformed, unknown or revoked token."""
    parts = split(token)
    if parts is None:
        return None
    key_id, secret = parts
    cred = (
        DeviceCredential.objects.select_related("device")
        .filter(key_id=key_id, revoked_at__isnull=True)
        .first()
    )
    if cred is None or not matches(secret, cred.secret_hash):
        return None
    return cred.device
