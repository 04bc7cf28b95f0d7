from __future__ import annotations

from zoneinfo import ZoneInfo

from django.utils import timezone

from .audit import _current, actor_from_request
from .datetimes import activate_locale, reset_locale
from .preferences import of_session

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


class UserPreferencesMiddleware:
    """Dates in the signed-in admin's own time zone and locale for the whole request (console/datetimes.py)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone, locale = of_session(getattr(request, "session", None))
        token = activate_locale(locale)
        try:
            with timezone.override(ZoneInfo(zone)):
                return self.get_response(request)
        finally:
            reset_locale(token)
