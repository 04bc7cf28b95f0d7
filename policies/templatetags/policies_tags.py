from __future__ import annotations

from django import template

from policies import services

register = template.Library()


@register.filter
def default_text(setting) -> str:
    """The catalog default of a setting, as people read it ("" when the catalog has none)."""
    default = getattr(setting, "default", None)
    if default in (None, "", []) or setting.type == "group_collection":
        return ""
    return services.value_text(setting, default)
