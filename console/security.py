"""Sign-in and API-token brute-force protection, and the client address both of them (and the audit log) use.

Sign-in: django-axes counts failures in the database (shared by every web process) and locks out an account,
and separately a client address, after AXES_FAILURE_LIMIT failures for AXES_COOLOFF_TIME. The correct password
is refused while locked. Every failed and every locked-out attempt is in the audit log with its address; a Global
Administrator unlocks in Tenant administration › Sign-in lockouts (console.views.lockouts).

API tokens: a client address that sends TOKEN_FAILURE_LIMIT bad bearer tokens within TOKEN_FAILURE_WINDOW seconds
gets 429 for the rest of the window, whatever token it sends (so it learns nothing more). Counted in the shared
cache (Redis in production, see CACHE_URL).
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render

from . import audit, sso, text
from .models import AuditEvent

TOKEN_FAILURE_LIMIT = 10
TOKEN_FAILURE_WINDOW = 300  # seconds


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind a TLS proxy (BEHIND_PROXY) the address the proxy appended last
    to X-Forwarded-For (earlier entries are whatever the client claimed and cannot be trusted)."""
    if getattr(settings, "BEHIND_PROXY", False):
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1][:45]
    return request.META.get("REMOTE_ADDR") or None


def _typed_username(credentials: dict | None) -> str:
    """The username as typed, made safe for the audit log (an attacker chooses it)."""
    raw = str((credentials or {}).get("username") or "")[:150]
    return text.strip_unsafe(raw) or "(empty)"


def audit_failed_login(sender, credentials=None, request=None, **kwargs) -> None:
    """django's user_login_failed (also sent for attempts axes refuses while locked out): one audit record each."""
    if request is None:
        return
    locked = bool(getattr(request, "axes_locked_out", False))
    username = _typed_username(credentials)
    audit.record(
        "login.locked_out" if locked else "login.failed",
        object_type="User",
        object_id=username,
        object_repr=username,
        after={"locked_out": locked, "path": request.path[:200]},
        actor=audit.Actor(name="Anonymous", source=AuditEvent.Source.UI, ip=client_ip(request)),
    )


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, with a message that says what happened and what to do (HTTP 429)."""
    from django.contrib.auth.forms import AuthenticationForm

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        f"Too many failed sign-ins for this account or from your address: sign-in is locked for {minutes} "
        "minutes. Try again later, or ask a Global Administrator to unlock it in Tenant administration › "
        "Sign-in lockouts."
    )
    form = AuthenticationForm(request, initial={"username": _typed_username(credentials)})
    context = {"form": form, "locked_out": message, **sso.login_context()}
    return render(request, "registration/login.html", context, status=429)


# ---------------------------------------------------------------------------------------------- API tokens


def _token_key(ip: str | None) -> str:
    return f"api-token-failures-{ip or 'unknown'}"


def token_guessing_blocked(request) -> bool:
    """True while this address has used up its bad-token allowance."""
    return (cache.get(_token_key(client_ip(request))) or 0) >= TOKEN_FAILURE_LIMIT


def record_bad_token(request, prefix: str) -> None:
    """Count a bad bearer token from this address (atomically, shared cache) and audit it."""
    key = _token_key(client_ip(request))
    cache.add(key, 0, timeout=TOKEN_FAILURE_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.add(key, 1, timeout=TOKEN_FAILURE_WINDOW)
        count = 1
    blocked = count >= TOKEN_FAILURE_LIMIT
    audit.record(
        "api.token_blocked" if blocked else "api.token_rejected",
        object_type="API token",
        object_id=text.strip_unsafe(prefix)[:40],
        object_repr=f"Bad bearer token {count} of {TOKEN_FAILURE_LIMIT} from this address",
        after={"failures": count, "blocked_for_seconds": TOKEN_FAILURE_WINDOW if blocked else 0},
        actor=audit.Actor(name="Anonymous", source=AuditEvent.Source.API, ip=client_ip(request)),
    )
