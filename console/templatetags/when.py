"""``{{ value|when }}`` and ``{{ value|ago }}``: the console's one date format (console/datetimes.py)."""

from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from console.datetimes import when_html

register = template.Library()


@register.filter
def when(value):
    """The exact local date and time in the admin's locale, in a ``<time>`` element."""
    return mark_safe(when_html(value))


@register.filter
def ago(value):
    """A relative time ("5 minutes ago"), the exact time on hover."""
    return mark_safe(when_html(value, ago=True))
