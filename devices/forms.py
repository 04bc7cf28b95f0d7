from __future__ import annotations

import re

from django import forms

from console import scopetags
from console.models import Platform, Scope, TenantSettings
from console.text import validate_description, validate_name

from .models import Device, Group
from .onboarding import PILOT_TAG
from .rules import MAX_RULE_LENGTH
from .services import DEFENDER_FIELDS, INTUNE_FIELDS, validate_rule

TAG_RE = re.compile(r"^[\w .@#&()/+-]{1,64}$")
MAX_TAGS = 25
MAX_VALIDATE_DEVICES = 20
GROUP_DESCRIPTION_MAX = 1024  # Entra ID's limit for a group's description


class EnforcementScopeForm(forms.ModelForm):
    class Meta:
        model = TenantSettings
        fields = DEFENDER_FIELDS
        widgets = {
            f"{platform}_scope": forms.RadioSelect(choices=Scope.choices)
            for platform in ("windows_client", "windows_server", "macos", "linux")
        }

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("windows_client", "windows_server", "macos", "linux"):
            self.fields[f"{name}_scope"].choices = Scope.choices
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def platform_rows(self) -> list[dict]:
        return [
            {"key": key, "label": label, "enabled": self[f"{key}_enabled"], "scope": self[f"{key}_scope"]}
            for key, label in Platform.choices
        ]


class ConnectorForm(forms.ModelForm):
    class Meta:
        model = TenantSettings
        fields = INTUNE_FIELDS

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if read_only:
            for field in self.fields.values():
                field.disabled = True


class DeviceTagsForm(forms.Form):
    mde_management = forms.BooleanField(
        label=PILOT_TAG,
        required=False,
        help_text="Devices of a platform in pilot mode (On tagged devices) are managed only with this tag.",
    )
    other_tags = forms.CharField(
        label="Other tags",
        required=False,
        max_length=500,
        help_text="Comma separated, up to 64 characters each.",
        widget=forms.TextInput(attrs={"size": 40}),
    )

    @classmethod
    def for_device(cls, device: Device, data=None) -> DeviceTagsForm:
        initial = {
            "mde_management": device.has_tag(PILOT_TAG),
            "other_tags": ", ".join(t for t in device.tag_list if t.lower() != PILOT_TAG.lower()),
        }
        return cls(data=data, initial=initial)

    def clean_other_tags(self) -> list[str]:
        tags = [t.strip() for t in self.cleaned_data["other_tags"].split(",") if t.strip()]
        bad = [t for t in tags if not TAG_RE.match(t)]
        if bad:
            raise forms.ValidationError(
                f"Not a valid tag: {bad[0][:70]!r}. Use letters, digits, spaces and . @ # & ( ) / + - _ "
                "(at most 64 characters)."
            )
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(f"At most {MAX_TAGS} tags per device.")
        return [t for t in tags if t.lower() != PILOT_TAG.lower()]

    def tags(self) -> list[str]:
        tags = list(self.cleaned_data["other_tags"])
        if self.cleaned_data["mde_management"]:
            tags.insert(0, PILOT_TAG)
        return tags


class GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ["name", "description", "object_kind", "membership_type", "membership_rule"]
        labels = {"name": "Group name", "membership_type": "Membership type", "object_kind": "Members are"}
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "membership_rule": forms.Textarea(
                attrs={"rows": 3, "class": "mono", "maxlength": MAX_RULE_LENGTH, "spellcheck": "false"}
            ),
            "membership_type": forms.RadioSelect,
            "object_kind": forms.RadioSelect,
        }
        help_texts = {
            "membership_rule": 'Entra rule syntax, e.g. (device.managementType -eq "MicrosoftSense").',
            "object_kind": "Only device objects are targetable for MDE security management.",
        }

    def __init__(self, *args, user=None, with_tags: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].max_length = 256
        if with_tags:
            # The console's form (the Graph API has no scope tags on groups): the person's own tags to choose.
            self.fields["scope_tags"] = forms.ModelMultipleChoiceField(
                queryset=scopetags.choosable(user),
                required=False,
                label="Scope tags",
                initial=(
                    list(self.instance.scope_tags.values_list("pk", flat=True))
                    or [scopetags.default_tag().pk]
                    if self.instance.pk
                    else scopetags.initial_for(user)
                ),
                help_text="Admins whose role assignment has one of these tags see this group. None: Default.",
            )
        if self.instance.pk:
            # Entra does not change a group's object type after creation.
            self.fields["object_kind"].disabled = True

    def clean_name(self) -> str:
        validate_name(self.cleaned_data["name"])
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a group name.")
        return name

    def clean_description(self) -> str:
        """Entra's limit (1,024 characters) and no control or bidi-override characters."""
        description = self.cleaned_data["description"]
        validate_description(description)
        if len(description) > GROUP_DESCRIPTION_MAX:
            raise forms.ValidationError(
                f"The description can be at most {GROUP_DESCRIPTION_MAX} characters (it has {len(description)})."
            )
        return description

    def clean(self):
        data = super().clean()
        kind = data.get("object_kind")
        membership = data.get("membership_type")
        rule = data.get("membership_rule", "")
        if membership == Group.Membership.DYNAMIC:
            if kind == Group.ObjectKind.USER:
                self.add_error(
                    "membership_type",
                    "Dynamic rules here are device rules. User groups are assigned and are not targetable for "
                    "MDE security management (device objects only).",
                )
            try:
                data["membership_rule"] = validate_rule(rule)
            except forms.ValidationError as exc:
                self.add_error("membership_rule", exc)
        elif membership == Group.Membership.ASSIGNED:
            data["membership_rule"] = ""
        return data


class ValidateRuleForm(forms.Form):
    rule = forms.CharField(
        label="Rule syntax",
        max_length=MAX_RULE_LENGTH + 1,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
    )
    q = forms.CharField(label="Search devices", required=False, max_length=100)
    device = forms.TypedMultipleChoiceField(label="Devices", required=False, coerce=int, choices=())

    def __init__(self, *args, device_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["device"].choices = list(device_choices)

    def clean_rule(self) -> str:
        return validate_rule(self.cleaned_data["rule"])

    def clean_device(self) -> list[int]:
        ids = list(dict.fromkeys(self.cleaned_data["device"]))
        if len(ids) > MAX_VALIDATE_DEVICES:
            raise forms.ValidationError(f"Validate against at most {MAX_VALIDATE_DEVICES} devices at a time.")
        return ids


def parse_ids(values: list[str], limit: int = 10_000) -> list[int] | None:
    """Integer ids from a POST list, or None when any is not one (a forged form)."""
    ids: list[int] = []
    if len(values) > limit:
        return None
    for value in values:
        if not value.isdigit() or len(value) > 18:
            return None
        ids.append(int(value))
    return list(dict.fromkeys(ids))
