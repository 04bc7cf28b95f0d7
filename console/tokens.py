"""Create, check and revoke Graph API tokens (`mdec_<prefix>_<secret>`, stored as a SHA-256 hash)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.contrib.auth.models import Group
from django.db.models import Q
from django.utils import timezone

from . import audit
from .models import ApiToken
from .roles import ROLE_RULES

PREFIX = "mdec"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(*, name: str, owner, role: str, days: int | None = 90) -> tuple[ApiToken, str]:
    """Returns the token row and the full secret (shown once)."""
    name = (name or "").strip()
    if not name:
        raise ValueError("Enter a name for the token.")
    group = (
        Group.objects.filter(name=role).filter(Q(definition__isnull=False) | Q(name__in=ROLE_RULES)).first()
    )
    if group is None:
        known = Group.objects.filter(Q(definition__isnull=False) | Q(name__in=ROLE_RULES)).order_by("name")
        raise ValueError(f"Unknown role {role!r}; choose one of: {', '.join(g.name for g in known)}.")
    if days is not None and not 1 <= days <= 730:
        raise ValueError("A token expires after 1 to 730 days.")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name[:100],
        owner=owner,
        role=group,
        prefix=prefix,
        token_hash=_hash(secret),
        expires_at=timezone.now() + timedelta(days=days) if days else None,
    )
    audit.record("apitoken.create", token, after={"name": token.name, "role": role, "prefix": prefix})
    return token, f"{PREFIX}_{prefix}_{secret}"


def revoke_token(token: ApiToken) -> None:
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        audit.record("apitoken.revoke", token, before={"revoked": False}, after={"revoked": True})


def check_token(raw: str) -> ApiToken | None:
    """The active token for a bearer string, or None (malformed, unknown, revoked or expired)."""
    parts = (raw or "").split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(raw) > 200:
        return None
    token = ApiToken.objects.select_related("owner", "role").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.token_hash, _hash(parts[2])) or not token.is_active:
        return None
    if not token.owner.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # at most once a minute
    return token


def token_permissions(token: ApiToken) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in token.role.permissions.values_list("content_type__app_label", "codename")
    }
