"""My preferences: the time zone and locale every date of the console is shown in, for the signed-in admin."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from .datetimes import DEFAULT_LOCALE, LOCALES, exact, time_zones
from .models import UserPreference


class PreferenceForm(forms.ModelForm):
    time_zone = forms.ChoiceField(label="Time zone", choices=[(z, z) for z in time_zones()])
    locale = forms.ChoiceField(label="Date and time format", choices=LOCALES)

    class Meta:
        model = UserPreference
        fields = ["time_zone", "locale"]


SESSION_KEY = "console_date_preferences"


def remember(session, pref: UserPreference | None) -> None:
    """Keep the admin's time zone and locale in their session: every request reads them with no query."""
    session[SESSION_KEY] = [pref.time_zone, pref.locale] if pref else ["UTC", DEFAULT_LOCALE]


def remember_on_login(sender, request, user, **kwargs) -> None:
    remember(request.session, UserPreference.objects.filter(user_id=user.pk).first())


def of_session(session) -> tuple[str, str]:
    """(time zone, locale) of the signed-in admin; UTC and en-US until they choose."""
    value = session.get(SESSION_KEY) if session is not None else None
    if not (isinstance(value, list) and len(value) == 2):
        return "UTC", DEFAULT_LOCALE
    zone, locale = value
    return (zone if zone in ZONES else "UTC"), locale


ZONES = frozenset(time_zones())


@require_http_methods(["GET", "POST"])
def preferences(request):
    """Anyone signed in sets their own; it applies to every page from the next request on."""
    pref = UserPreference.objects.filter(user=request.user).first() or UserPreference(user=request.user)
    form = PreferenceForm(request.POST or None, instance=pref)
    if request.method == "POST" and form.is_valid():
        remember(request.session, form.save())
        messages.success(request, "Your time zone and date format were saved.")
        return redirect("preferences")
    sample = exact(timezone.now(), zone=pref.time_zone, locale=pref.locale)
    return render(
        request, "console/preferences.html", {"form": form, "title": "My preferences", "sample": sample}
    )
