"""Template filters of the status pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def num(value) -> str:
    """A count with thousands separators (1,234), without the locale machinery of humanize's intcomma, which
    costs ~0.1 ms a call: the overview shows a few hundred numbers."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)
