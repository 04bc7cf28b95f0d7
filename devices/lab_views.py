"""Device lab pages (Global Administrator only; every page says "Simulation"): devices and their facts, local
admin changes, Group Policy objects and their settings and links. The work is done by devices.lab."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from console import audit
from console.models import TenantSettings
from console.text import validate_name
from policies.catalog import display_value

from . import lab
from .models import Device, GroupPolicyObject, LocalAdminChange, OSType

LAB_PERM = "console.use_device_lab"
BREADCRUMBS = [("Device lab (simulation)", "devices:lab")]


# ---- forms ------------------------------------------------------------------------------------------------


class DeviceFactsForm(forms.ModelForm):
    tenant = forms.ChoiceField(
        label="Onboarded to tenant",
        choices=[("own", "This tenant"), (lab.OTHER_TENANT, "Another tenant (cross-tenant)")],
    )

    class Meta:
        model = Device
        fields = [f for f in lab.FACTS if f not in ("tenant_id", "tags")]
        labels = {"is_non_persistent_vdi": "Non-persistent VDI", "ad_domain": "AD domain", "ad_ou": "AD OU"}
        help_texts = {
            "ad_ou": "Distinguished name, e.g. OU=Servers,DC=contoso,DC=com: GPOs linked to it or a parent apply.",
            "license_source": "Defender for Servers only is not supported by security settings management.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["display_name"].validators.append(validate_name)
        device = self.instance
        if device.pk:
            self.fields["tenant"].initial = (
                "own" if device.tenant_id == TenantSettings.load().tenant_id else "other"
            )

    def facts(self) -> dict:
        data = {name: self.cleaned_data[name] for name in self.Meta.fields}
        data["tenant_id"] = self.cleaned_data["tenant"]
        return data


class LocalChangeForm(forms.Form):
    operation = forms.ChoiceField(choices=LocalAdminChange.Operation.choices, label="Command")
    setting = forms.ChoiceField(choices=(), label="Setting")
    value = forms.CharField(
        max_length=2000,
        label="Value",
        help_text="An option by name or value (Audit, Block, 0, 1), a number, or list entries separated by commas.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["setting"].choices = lab.setting_choices()


class GpoForm(forms.Form):
    name = forms.CharField(max_length=255, validators=[validate_name])
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    enabled = forms.BooleanField(required=False, initial=True, label="Link enabled")
    link_domain = forms.CharField(required=False, max_length=255, label="Linked to domain",
                                  help_text="e.g. contoso.com: applies to every device of the domain.")  # fmt: skip
    link_ou = forms.CharField(required=False, max_length=500, label="Linked to OU",
                              help_text="e.g. OU=Servers,DC=contoso,DC=com: applies to the OU and its child OUs.")  # fmt: skip
    link_order = forms.IntegerField(min_value=1, max_value=999, initial=1, label="Link order",
                                    help_text="1 is the strongest among GPOs that set the same setting.")  # fmt: skip
    devices = forms.ModelMultipleChoiceField(queryset=None, required=False, label="Also linked to devices")
    local_overrides = forms.MultipleChoiceField(
        required=False,
        label="Configure local setting override for",
        help_text="For these settings a local admin's preference wins over policy.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["devices"].queryset = Device.objects.filter(
            os__in=[OSType.WINDOWS, OSType.WINDOWS_SERVER]
        ).order_by("display_name")
        self.fields["devices"].widget.attrs["size"] = 8
        self.fields["local_overrides"].choices = [
            c for c in lab.setting_choices() if not c[1].startswith("ASR")
        ]
        self.fields["local_overrides"].widget.attrs["size"] = 6


class GpoSettingForm(forms.Form):
    setting = forms.ChoiceField(choices=(), label="Setting")
    value = forms.CharField(max_length=2000, label="Value", required=False,
                            help_text="Empty removes the setting from the GPO.")  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["setting"].choices = lab.setting_choices()


# ---- pages ------------------------------------------------------------------------------------------------


def _acting(request):
    return audit.acting_as(audit.actor_from_request(request))


@permission_required(LAB_PERM, raise_exception=True)
def lab_home(request):
    devices = (
        Device.objects.annotate(local_count=Count("local_changes", distinct=True))
        .order_by("-created_at")
        .only("pk", "display_name", "os", "join_type", "managed_by", "tamper_protection", "configmgr_client",
              "enrollment_status", "ad_domain", "created_at")[:50]
    )  # fmt: skip
    gpos = GroupPolicyObject.objects.annotate(linked=Count("devices"))
    return render(
        request,
        "devices/lab/home.html",
        {"title": "Device lab", "devices": devices, "gpos": gpos, "breadcrumbs": []},
    )


@permission_required(LAB_PERM, raise_exception=True)
def lab_device_create(request):
    form = DeviceFactsForm(request.POST or None, instance=Device(os=OSType.WINDOWS))
    if request.method == "POST" and form.is_valid():
        try:
            with _acting(request):
                device = lab.create_device(form.facts())
        except lab.LabError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"Simulated device {device.display_name} was created: {device.enrollment_status or device.get_managed_by_display()}.",
            )
            return redirect("devices:lab_device", pk=device.pk)
    return render(
        request,
        "devices/lab/device_form.html",
        {"title": "New simulated device", "form": form, "breadcrumbs": BREADCRUMBS},
        status=400 if form.errors else 200,
    )


@permission_required(LAB_PERM, raise_exception=True)
def lab_device(request, pk: int):
    device = get_object_or_404(Device, pk=pk)
    form = DeviceFactsForm(request.POST or None, instance=device)
    local_form = LocalChangeForm()
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                with _acting(request):
                    lab.update_facts(device, form.facts())
            except lab.LabError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    "Facts saved: onboarding and groups were re-evaluated and the device checks in at the next tick (or select Policy sync on its page).",
                )
                return redirect("devices:lab_device", pk=device.pk)
        status = 400
        device.refresh_from_db()
    return _device_page(request, device, form, local_form, status)


def _device_page(request, device, form, local_form, status=200):
    return render(
        request,
        "devices/lab/device.html",
        {
            "title": device.display_name,
            "device": device,
            "form": form,
            "local_form": local_form,
            "local_changes": device.local_changes.order_by("-at", "-id"),
            "gpos": lab.applied_gpos(device),
            "breadcrumbs": BREADCRUMBS,
        },
        status=status,
    )


@permission_required(LAB_PERM, raise_exception=True)
@require_POST
def lab_local_change_add(request, pk: int):
    device = get_object_or_404(Device, pk=pk)
    local_form = LocalChangeForm(request.POST)
    if local_form.is_valid():
        data = local_form.cleaned_data
        try:
            with _acting(request):
                lab.add_local_change(
                    device, setting_id=data["setting"], operation=data["operation"], value=data["value"]
                )
        except lab.LabError as exc:
            local_form.add_error("value", str(exc))
        else:
            messages.success(
                request, "The local admin change was made on the device; it shows after the next check-in."
            )
            return redirect("devices:lab_device", pk=device.pk)
    return _device_page(request, device, DeviceFactsForm(instance=device), local_form, status=400)


@permission_required(LAB_PERM, raise_exception=True)
@require_POST
def lab_local_change_remove(request, pk: int, change_pk: int):
    change = get_object_or_404(LocalAdminChange, pk=change_pk, device_id=pk)
    with _acting(request):
        lab.remove_local_change(change)
    messages.success(request, "The local admin change was removed.")
    return redirect("devices:lab_device", pk=pk)


@permission_required(LAB_PERM, raise_exception=True)
def lab_gpo_create(request):
    return _gpo_edit(request, None)


@permission_required(LAB_PERM, raise_exception=True)
def lab_gpo(request, pk: int):
    return _gpo_edit(request, get_object_or_404(GroupPolicyObject, pk=pk))


def _gpo_edit(request, gpo: GroupPolicyObject | None):
    form = GpoForm(request.POST or None, initial=_gpo_initial(gpo))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                with _acting(request):
                    gpo = lab.save_gpo(
                        gpo, name=data["name"], description=data["description"], enabled=data["enabled"],
                        link_domain=data["link_domain"], link_ou=data["link_ou"], link_order=data["link_order"],
                        devices=data["devices"], local_overrides=data["local_overrides"],
                    )  # fmt: skip
            except lab.LabError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"Group Policy object {gpo.name} was saved; linked devices check in at the next tick.",
                )
                return redirect("devices:lab_gpo", pk=gpo.pk)
        status = 400
    return _gpo_page(request, gpo, form, GpoSettingForm(), status)


def _gpo_initial(gpo: GroupPolicyObject | None) -> dict:
    if gpo is None:
        return {}
    return {
        "name": gpo.name, "description": gpo.description, "enabled": gpo.enabled, "link_domain": gpo.link_domain,
        "link_ou": gpo.link_ou, "link_order": gpo.link_order, "devices": list(gpo.devices.all()),
        "local_overrides": gpo.local_overrides,
    }  # fmt: skip


def _gpo_page(request, gpo, form, setting_form, status=200):
    settings = []
    if gpo is not None:
        labels = dict(lab.setting_choices())
        for key, value in sorted(gpo.settings.items()):
            try:
                shown = ", ".join(value) if isinstance(value, list) else display_value(key, value)
            except Exception:  # a value the catalog cannot label is shown as it is
                shown = str(value)
            settings.append({"key": key, "label": labels.get(key, key), "value": shown})
    return render(
        request,
        "devices/lab/gpo.html",
        {
            "title": gpo.name if gpo else "New Group Policy object",
            "gpo": gpo,
            "form": form,
            "setting_form": setting_form,
            "settings": settings,
            "breadcrumbs": BREADCRUMBS,
        },
        status=status,
    )


@permission_required(LAB_PERM, raise_exception=True)
@require_POST
def lab_gpo_setting(request, pk: int):
    gpo = get_object_or_404(GroupPolicyObject, pk=pk)
    setting_form = GpoSettingForm(request.POST)
    if setting_form.is_valid():
        data = setting_form.cleaned_data
        try:
            with _acting(request):
                lab.set_gpo_setting(gpo, data["setting"], data["value"] or None)
        except lab.LabError as exc:
            setting_form.add_error("value", str(exc))
        else:
            messages.success(request, "The GPO setting was saved; linked devices check in at the next tick.")
            return redirect("devices:lab_gpo", pk=gpo.pk)
    return _gpo_page(request, gpo, GpoForm(initial=_gpo_initial(gpo)), setting_form, status=400)


@permission_required(LAB_PERM, raise_exception=True)
@require_POST
def lab_gpo_delete(request, pk: int):
    gpo = get_object_or_404(GroupPolicyObject, pk=pk)
    with _acting(request):
        lab.delete_gpo(gpo)
    messages.success(request, f"Group Policy object {gpo.name} was deleted.")
    return redirect("devices:lab")
