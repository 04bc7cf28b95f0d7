from __future__ import annotations

from .audit import _current, actor_from_request

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class ContentSecurityPolicyMiddleware:
    """Nothing but our own origin: no CDN, no inline script."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class AuditContextMiddleware:
    """Makes the signed-in person (and their IP) the actor of any audit record written during the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current.set(actor_from_request(request))
        try:
            return self.get_response(request)
        finally:
            _current.reset(token)
