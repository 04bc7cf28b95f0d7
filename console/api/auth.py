"""Bearer-token authentication, role permissions and Intune's published throttling limits for the API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import authentication, exceptions, permissions, throttling

from console.tokens import check_token, token_permissions


class GraphTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Use an Authorization: Bearer <token> header.")
        token = check_token(raw.strip())
        if token is None:
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
    """One bucket for the whole tenant, as Intune counts: per tenant, not per token."""

    methods: tuple[str, ...] = ()

    def get_cache_key(self, request, view):
        if request.method not in self.methods:
            return None
        return f"graph-throttle-{self.scope}"

    def get_rate(self):
        return settings.GRAPH_THROTTLE_RATES[self.scope]


class TenantReadThrottle(_TenantThrottle):
    scope = "read"
    methods = ("GET", "HEAD")


class TenantWriteThrottle(_TenantThrottle):
    scope = "write"
    methods = ("POST", "PATCH", "PUT", "DELETE")
