from __future__ import annotations

from django import forms
from django.apps import apps
from django.contrib.auth import get_user_model

from . import scopetags
from .models import AdminGroup, ScopeTag
from .rbac import ACTION_KEYS, roles
from .text import validate_name


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[validate_name],
        help_text="What the token is for, e.g. Terraform pipeline.",
    )
    role = forms.ChoiceField(choices=(), help_text="The token can do what this role can.")
    days = forms.IntegerField(min_value=1, max_value=730, initial=90, label="Expires after (days)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices()


def _role_choices():
    return [(g.name, g.name) for g in roles()]


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150, label="User name", validators=[validate_name])
    first_name = forms.CharField(max_length=150, required=False, label="First name")
    last_name = forms.CharField(max_length=150, required=False, label="Last name")
    email = forms.EmailField(required=False)
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        label="Initial password",
        help_text="Leave empty to get a one-time invitation link instead (shown once).",
    )


class RoleForm(forms.Form):
    name = forms.CharField(max_length=150, validators=[validate_name])
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    copy_of = forms.ChoiceField(required=False, label="Start from", help_text="Copy a role's permissions.")
    permissions = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["permissions"].choices = [(k, k) for k in ACTION_KEYS]
        self.fields["copy_of"].choices = [("", "Empty role"), *_role_choices()]
        if editing:
            del self.fields["name"]
            del self.fields["copy_of"]


class AssignmentForm(forms.Form):
    name = forms.CharField(max_length=128, validators=[validate_name])
    members = forms.ModelMultipleChoiceField(
        queryset=None, required=False, help_text="Users who get this role."
    )
    member_groups = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        label="Admin groups",
        help_text="Groups of users who get this role while they are members (at least one user or group).",
    )
    scope_groups = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        label="Scope (groups)",
        help_text="Devices the members can see and manage. None selected: all devices.",
    )
    scope_tags = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        label="Scope tags",
        help_text="Members see the policies and groups that carry one of these tags. None selected: Default.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["members"].queryset = get_user_model().objects.order_by("username")
        self.fields["member_groups"].queryset = AdminGroup.objects.order_by("name")
        # devices.Group through the app registry: console sits below devices and does not import it
        self.fields["scope_groups"].queryset = apps.get_model("devices", "Group").objects.filter(
            object_kind="device"
        )
        self.fields["scope_tags"].queryset = scopetags.tags()


class ScopeTagForm(forms.Form):
    name = forms.CharField(max_length=128, validators=[validate_name])
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ScopeTagsField(forms.ModelMultipleChoiceField):
    """The Scope tags field of a policy's Basics or a group's form: the person's own tags to choose from."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Scope tags")
        kwargs.setdefault(
            "help_text", "Who sees this object: admins whose role assignment has one of these tags."
        )
        super().__init__(queryset=ScopeTag.objects.all(), **kwargs)


class AdminGroupForm(forms.Form):
    name = forms.CharField(max_length=128, validators=[validate_name])
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    members = forms.ModelMultipleChoiceField(queryset=None, required=False, help_text="Users in the group.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["members"].queryset = get_user_model().objects.order_by("username")


class WebhookForm(forms.Form):
    """Tenant administration › Webhook. The secret is write-only: empty keeps the saved one."""

    enabled = forms.BooleanField(required=False, label="Send events to this webhook")
    url = forms.CharField(
        max_length=500,
        required=False,
        label="Payload URL",
        help_text="The SOC endpoint that receives a signed JSON POST per event, e.g. https://soc.contoso.com/hook.",
    )
    secret = forms.CharField(
        max_length=200,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="Secret",
        help_text="At least 16 characters. Leave empty to keep the saved secret.",
    )
    generate_secret = forms.BooleanField(
        required=False, label="Generate a new secret (shown once after saving)"
    )
    events = forms.ChoiceField(label="Events", choices=())
    extra_protected = forms.MultipleChoiceField(
        required=False,
        label="Also protected in this tenant",
        help_text="Drift of these settings is sent too, beside the Tamper Protection-protected settings and the "
        "ASR rules that always count as protected.",
    )

    def __init__(self, *args, setting_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        from .models import WebhookEndpoint

        self.fields["events"].choices = WebhookEndpoint.Events.choices
        self.fields["extra_protected"].choices = list(setting_choices)
        self.fields["extra_protected"].widget.attrs["size"] = 8
