"""The sign-in pages: password sign-in (unless OIDC_LOCAL_PASSWORDS is off) and "Sign in with <provider>".

Every way a sign-in can end is said on the sign-in page in words a person can act on - refused for lack of a role,
the provider unreachable, a tampered or stale answer - and is in the audit log (console.sso).
"""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import SuspiciousOperation
from django.shortcuts import render
from django.utils.decorators import method_decorator
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from . import sso, text

logger = logging.getLogger(__name__)


def login_page(request, message: str, status: int):
    """The sign-in page with a message in its error banner."""
    context = {"form": AuthenticationForm(request), "sso_error": message, **sso.login_context()}
    return render(request, "registration/login.html", context, status=status)


def _unavailable(exc: Exception):
    logger.warning("single sign-on: the provider is unavailable: %s", exc)
    return (
        f"{sso.provider_name()} could not be reached to sign you in: {exc}. Try again in a minute; if it keeps "
        "happening, ask an administrator to check OIDC_ISSUER."
    )


def _refused_by_provider(exc: requests.HTTPError):
    """The provider answered the console's own request (code for tokens, userinfo) with an error: configuration."""
    status = exc.response.status_code if exc.response is not None else "an error"
    logger.warning("single sign-on: the provider refused the console: %s", exc)
    return (
        f"{sso.provider_name()} refused the console's request to finish your sign-in (HTTP {status}). Ask an "
        "administrator to check OIDC_CLIENT_ID and OIDC_CLIENT_SECRET against the application registered there."
    )


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    """Django's sign-in page with "Sign in with <provider>" and the password form only while it is allowed."""

    redirect_authenticated_user = True

    def get(self, request, *args, **kwargs):
        sso.audit_settings_change()
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        if not settings.OIDC_LOCAL_PASSWORDS:
            return login_page(
                request,
                f"Password sign-in is turned off for this console. Use “Sign in with {sso.provider_name()}”.",
                status=403,
            )
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        sso.audit_sign_in(self.request, form.get_user(), method="password")
        return response

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **sso.login_context()}


class _StartView(OIDCAuthenticationRequestView):
    get_settings = staticmethod(sso.setting)


@login_not_required
def sso_start(request):
    """Sends the browser to the provider's sign-in page (state, nonce and PKCE kept in the session)."""
    if not sso.enabled():
        return login_page(request, "Single sign-on is not configured for this console.", status=404)
    if request.method != "GET":
        return login_page(request, "Start single sign-on from the sign-in page.", status=405)
    try:
        return _StartView.as_view()(request)
    except sso.ProviderUnavailable as exc:
        return login_page(request, _unavailable(exc), status=502)


class _CallbackView(OIDCAuthenticationCallbackView):
    """mozilla-django-oidc's callback, ending in the sign-in page with the reason whenever it does not sign in."""

    get_settings = staticmethod(sso.setting)

    def get(self, request):
        try:
            return super().get(request)
        except sso.SignInRefused as exc:
            sso.audit_refusal(request, str(exc))
            return login_page(request, str(exc), status=403)
        except requests.HTTPError as exc:
            return login_page(request, _refused_by_provider(exc), status=502)
        except (sso.ProviderUnavailable, requests.RequestException) as exc:
            return login_page(request, _unavailable(exc), status=502)
        except SuspiciousOperation as exc:
            logger.warning("single sign-on: refused an answer from the provider: %s", exc)
            sso.audit_refusal(request, f"untrusted answer: {exc}")
            return login_page(
                request,
                f"The answer from {sso.provider_name()} could not be trusted ({exc}). Start again from this page.",
                status=400,
            )

    def login_failure(self):
        error = text.strip_unsafe(
            str(self.request.GET.get("error_description") or self.request.GET.get("error") or "")
        )[:200]
        reason = error or "the sign-in was not completed or has expired"
        sso.audit_refusal(self.request, reason)
        return login_page(
            self.request,
            f"Sign-in with {sso.provider_name()} did not complete: {reason}. Start again from this page.",
            status=401,
        )

    def login_success(self):
        response = super().login_success()
        sso.audit_sign_in(self.request, self.user, method=f"sso ({sso.provider_name()})")
        return response


@login_not_required
def sso_callback(request):
    """Where the provider sends the browser back with a code (or an error)."""
    if not sso.enabled():
        return login_page(request, "Single sign-on is not configured for this console.", status=404)
    if request.method != "GET":
        return login_page(request, "Start single sign-on from the sign-in page.", status=405)
    return _CallbackView.as_view()(request)
