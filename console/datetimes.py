"""One date format for the whole console, in the signed-in admin's locale and time zone.

Every timestamp a page shows goes through :func:`exact` (the ``when`` template filter) or :func:`relative` (the
``ago`` filter, where Intune shows relative times: last check-in, last report) - never ``|date`` with a format
of its own. The format is the locale's short date with a four-digit year and its medium time, as the Intune
admin center prints dates (en-US ``12/2/2026, 3:53:13 PM``; en-GB ``02/12/2026, 15:53:13``); Babel supplies the
patterns. A relative time carries the exact time on hover (``title``) and the ISO instant (``datetime``).

The admin's choice lives in :class:`console.models.UserPreference`; :class:`console.middleware.
UserPreferencesMiddleware` activates it for each request (the time zone through Django, the locale here).
"""

from __future__ import annotations

import contextvars
from datetime import date, datetime
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale
from babel.dates import format_date, format_time, format_timedelta
from django.utils import timezone
from django.utils.html import format_html

DEFAULT_LOCALE = "en_US"
# The locales an admin can choose (the admin center's own languages, as their date conventions differ).
LOCALES = (
    ("en_US", "English (United States)"),
    ("en_GB", "English (United Kingdom)"),
    ("de_DE", "Deutsch (Deutschland)"),
    ("fr_FR", "Français (France)"),
    ("nl_NL", "Nederlands (Nederland)"),
    ("es_ES", "Español (España)"),
    ("ja_JP", "日本語 (日本)"),
)
_locale: contextvars.ContextVar[str] = contextvars.ContextVar("console_locale", default=DEFAULT_LOCALE)


def time_zones() -> list[str]:
    return sorted(available_timezones() - {"localtime", "Factory"})


def activate_locale(name: str) -> contextvars.Token:
    return _locale.set(name if name in dict(LOCALES) else DEFAULT_LOCALE)


def reset_locale(token: contextvars.Token) -> None:
    _locale.reset(token)


def _date_pattern(locale: Locale) -> str:
    """The locale's short date with a four-digit year (en-US M/d/yy -> M/d/y)."""
    pattern = locale.date_formats["short"].pattern
    return pattern.replace("yyyy", "y").replace("yy", "y")


def exact(value: datetime | date | None, *, zone: str | None = None, locale: str | None = None) -> str:
    """The one format: local date and time in the admin's locale ("" for no value)."""
    if value is None or value == "":
        return ""
    loc = Locale.parse(locale or _locale.get())
    if isinstance(value, datetime):
        tz = ZoneInfo(zone) if zone else timezone.get_current_timezone()
        local = timezone.localtime(value, tz) if timezone.is_aware(value) else value
        day = _babel_date(local.date(), loc)
        return f"{day}, {format_time(local.time(), 'medium', locale=loc)}"
    return _babel_date(value, loc)


def _babel_date(day: date, loc: Locale) -> str:
    return format_date(day, _date_pattern(loc), locale=loc)


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """ "3 minutes ago" / "in 1 hour" in the admin's locale ("" for no value)."""
    if value is None:
        return ""
    delta = value - (now or timezone.now())
    return format_timedelta(delta, add_direction=True, locale=_locale.get(), threshold=1.0)


def when_html(value, *, ago: bool = False) -> str:
    """``<time>`` with the exact time (or a relative one, the exact one on hover) and the ISO instant."""
    if value is None or value == "":
        return ""
    text = exact(value)  # once: Babel's formatting is most of a 50-row report's rendering
    shown = relative(value) if ago and isinstance(value, datetime) else text
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), text, shown)
