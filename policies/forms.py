"""Forms of the Endpoint security pages (the settings and assignments editors read their posts in wizard.py)."""

from __future__ import annotations

from django import forms

from console import scopetags, untrusted_json
from console.models import ScopeTag
from console.text import validate_description, validate_name
from policies.catalog import get_catalog
from policies.models import PolicyPlatform
from policies.services import DESCRIPTION_MAX, NAME_MAX

IMPORT_MAX_BYTES = 2 * 1024 * 1024


class BasicsForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX,
        required=True,
        validators=[validate_name],
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 60}),
    )
    description = forms.CharField(
        max_length=DESCRIPTION_MAX,
        required=False,
        validators=[validate_description],
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    scope_tags = forms.ModelMultipleChoiceField(
        queryset=ScopeTag.objects.all(),
        required=False,
        label="Scope tags",
        help_text="Admins whose role assignment has one of these tags see this policy. None selected: Default.",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].error_messages["required"] = "Enter a name for the policy."
        # Intune offers only the admin's own scope tags (everything for someone who sees everything).
        self.fields["scope_tags"].queryset = scopetags.choosable(user)


class CreatePolicyForm(forms.Form):
    """Create a profile: Platform, then Profile (the profiles of this policy type)."""

    platform = forms.ChoiceField(choices=PolicyPlatform.choices, initial=PolicyPlatform.WINDOWS)
    profile = forms.ChoiceField(choices=())

    def __init__(self, policy_type: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy_type = policy_type
        self.profiles = [p for p in get_catalog().profiles.values() if p.policy_type == policy_type]
        platform = self.data.get("platform") if self.is_bound else self.initial.get("platform")
        platform = platform or PolicyPlatform.WINDOWS
        available = [p for p in self.profiles if platform in p.platforms] or self.profiles
        self.fields["profile"].choices = [("", "Select a profile")] + [(p.slug, p.label) for p in available]
        platforms = {pl for p in self.profiles for pl in p.platforms}
        self.fields["platform"].choices = [
            (v, label) for v, label in PolicyPlatform.choices if v in platforms
        ]

    def clean_profile(self):
        slug = self.cleaned_data["profile"]
        for profile in self.profiles:
            if profile.slug == slug:
                return profile
        raise forms.ValidationError("Select a profile of this policy type.")


class DuplicateForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX, validators=[validate_name], widget=forms.TextInput(attrs={"size": 60})
    )
    description = forms.CharField(
        max_length=DESCRIPTION_MAX,
        required=False,
        validators=[validate_description],
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Policy file (JSON)",
        help_text="A configurationPolicy document, as Export downloads it or Microsoft Graph returns it.",
    )
    name = forms.CharField(
        max_length=NAME_MAX,
        required=False,
        label="Name (optional)",
        validators=[validate_name],
        help_text="Leave empty to use the name in the file.",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    with_assignments = forms.BooleanField(
        required=False,
        initial=True,
        label="Import assignments",
        help_text="Clear this to import only the basics and settings (for example from another tenant).",
    )

    def clean_file(self):
        """The uploaded document, decoded by the one parser of untrusted JSON (a form error when refused)."""
        upload = self.cleaned_data["file"]
        try:
            return untrusted_json.loads(
                upload.read(IMPORT_MAX_BYTES + 1), max_bytes=IMPORT_MAX_BYTES, what="The file"
            )
        except untrusted_json.UntrustedJSONError as exc:
            raise forms.ValidationError(exc.message) from None
