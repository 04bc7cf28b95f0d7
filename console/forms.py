from __future__ import annotations

from django import forms

from .roles import ROLE_RULES
from .text import validate_name


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[validate_name],
        help_text="What the token is for, e.g. Terraform pipeline.",
    )
    role = forms.ChoiceField(
        choices=[(r, r) for r in ROLE_RULES], help_text="The token can do what this role can."
    )
    days = forms.IntegerField(min_value=1, max_value=730, initial=90, label="Expires after (days)")
