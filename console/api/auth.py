"""Bearer-token authentication, role permissions and Intune's published throttling limits for the API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import authentication, exceptions, permissions, throttling

from console import security
from console.tokens import check_token, token_permissions


class GraphTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        if security.token_guessing_blocked(request):
            raise exceptions.Throttled(
                wait=security.TOKEN_FAILURE_WINDOW,
                detail="Too many invalid access tokens from this address; try again later.",
            )
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Use an Authorization: Bearer <token> header.")
        token = check_token(raw.strip())
        if token is None:
            parts = raw.strip().split("_", 2)
            security.record_bad_token(request, parts[1] if len(parts) == 3 else "(malformed)")
            raise exceptions.AuthenticationFailed("Access token is invalid, revoked or expired.")
        return token.owner, token

    def authenticate_header(self, request):
        return 'Bearer realm="mde-console"'


class HasRolePermission(permissions.BasePermission):
    """The token's role must hold the view's permission for this method (the same checks as the UI).

    A view declares `required_perms = {"GET": "policies.view_policy", "POST": "policies.add_policy", ...}`.
    """

    message = "The token's role does not have permission for this operation."

    def has_permission(self, request, view):
        token = request.auth
        if token is None:
            return False
        perms = getattr(view, "required_perms", {})
        needed = perms.get(request.method)
        if needed is None and request.method == "HEAD":
            needed = perms.get("GET")  # HEAD is a GET without the body
        if needed is None:
            return False  # a method the view does not declare is never allowed
        granted = getattr(request, "_token_perms", None)
        if granted is None:
            granted = request._token_perms = token_permissions(token)
        return needed in granted


class _TenantThrottle(throttling.SimpleRateThrottle):
    """One bucket for the whole tenant, as Intune counts: per tenant, not per token.

    Counted with the cache's atomic add/incr in fixed windows of the rate's period, not with DRF's history list
    (a get, then a set: two processes that read the same history both let their request through). With the shared
    Redis cache that production requires, every web process and machine counts in the same bucket.
    """

    methods: tuple[str, ...] = ()
    wait_seconds: float | None = None

    def get_cache_key(self, request, view):
        if request.method not in self.methods:
            return None
        return f"graph-throttle-{self.scope}"

    def get_rate(self):
        return settings.GRAPH_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view):
        key = self.get_cache_key(request, view)
        if self.rate is None or key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        count = _count(self.cache, f"{key}-{window}", self.duration)
        if count <= self.num_requests:
            return True
        self.wait_seconds = max((window + 1) * self.duration - now, 0.001)
        return False

    def wait(self):
        return self.wait_seconds


def _count(cache, key: str, period: int) -> int:
    """Add one to the counter ``key`` (created for ``period`` seconds) and return it: atomic in Redis and locmem."""
    cache.add(key, 0, timeout=period + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, timeout=period + 1)
        return cache.incr(key)


class TenantReadThrottle(_TenantThrottle):
    scope = "read"
    methods = ("GET", "HEAD")


class TenantWriteThrottle(_TenantThrottle):
    scope = "write"
    methods = ("POST", "PATCH", "PUT", "DELETE")
