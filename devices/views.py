"""Pages of the devices app: All devices, a device, Groups, and the tenant switches on both consoles' sides."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, ProtectedError, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console import audit, scopetags
from console.listing import CsvColumn, ObjectListView, keyset_per_page, keyset_table
from console.models import Job, Platform, TenantSettings
from reports import effective as effective_reads

from . import bulk, checkins, mdatp, membership, services, tally
from .agent import effective_defaults
from .channel import stored_state
from .filtersets import DeviceFilterSet, GroupFilterSet
from .forms import (
    ConnectorForm,
    DeviceTagsForm,
    EnforcementScopeForm,
    GroupForm,
    ValidateRuleForm,
    parse_ids,
)
from .models import ConfigSource, Device, DeviceCredential, Group, GroupMember, JoinType, ManagedBy, OSType
from .onboarding import LEFT_SCOPE, PLATFORM_OF_OS
from .scope import ALL_DEVICES, scope_group_ids, scoped, visible_groups
from .selection import SelectionError, read_selection
from .tables import MAX_PER_PAGE, DeviceTable, GroupTable, MemberTable

MANAGE_TENANT = "console.manage_tenant"
# Device fields no list or search needs (the agent's local state can be large).
HEAVY_FIELDS = ("agent_state", "desired_fingerprint")


# ---------------------------------------------------------------------------------------------- devices


def bad_request(request, reason: str):
    """A forged or malformed form: the console's 400 page with the reason; nothing was changed."""
    return render(request, "devices/bad_request.html", {"reason": reason, "title": "Bad request"}, status=400)


class DeviceListView(ObjectListView):
    permission_required = "devices.view_device"
    queryset = Device.objects.defer(*HEAVY_FIELDS)
    filterset_class = DeviceFilterSet
    table_class = DeviceTable
    template_name = "devices/device_list.html"
    partial_template_name = "devices/partials/device_table.html"
    title = "All devices"
    breadcrumbs = [("Devices", None)]
    per_page = 25
    keyset = True  # 1,000,000 devices: page 40,000 costs what page 1 costs (console/listing.py)
    max_per_page = MAX_PER_PAGE
    export_filename = "all-devices.csv"
    # PostgreSQL writes the CSV (COPY), no Device instances (console/listing.py): ≥ 50,000 rows/s
    export_values = [
        CsvColumn("Device name", "display_name"),
        CsvColumn("Device ID", "device_id", "str"),
        CsvColumn("Managed by", "managed_by", "choice", tuple(ManagedBy.choices)),
        CsvColumn("OS", "os", "choice", tuple(OSType.choices)),
        CsvColumn("OS version", "os_version"),
        CsvColumn("Join type", "join_type", "choice", tuple(JoinType.choices)),
        CsvColumn("managementType", "management_type"),
        CsvColumn("Labels", "system_labels", "packed"),
        CsvColumn("MDE Enrollment status", "enrollment_status"),
        CsvColumn("Enrollment status code", "enrollment_status_code", "str"),
        CsvColumn("Tags", "tags", "packed"),
        CsvColumn("Tamper Protection", "tamper_protection", "on_off"),
        CsvColumn("Onboarded to MDE", "mde_onboarded", "yes_no"),
        CsvColumn("Last check-in", "last_checkin_at", "iso"),
    ]

    def get_queryset(self):
        return scoped(super().get_queryset(), self.request.user)

    def kept_total(self, filterset) -> int | None:
        """The fleet's total, or narrowed by OS, Managed by or enrollment status, from the counts PostgreSQL keeps
        (``devices.tally``: a few dozen rows) rather than a COUNT of up to a million index entries: 60-85 ms at a
        million devices, and 150-190 ms right after a check-in round, before vacuum has caught up with the
        visibility map (``bench_pages --cold``). Exact either way. A scoped viewer, a search or any other filter is
        counted as before (``console.listing.list_total``)."""
        if not tally.kept() or scope_group_ids(self.request.user) is not ALL_DEVICES:
            return None
        wanted: dict[int, str] = {}
        if filterset.is_bound:
            if not filterset.is_valid():
                return None
            for name, value in filterset.form.cleaned_data.items():
                if value in (None, ""):
                    continue
                if name not in tally.KEY:
                    return None
                wanted[tally.KEY.index(name)] = value
        return sum(
            n for key, n in tally.fleet_counts().items() if all(key[i] == v for i, v in wanted.items())
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["partial_template"] = self.partial_template_name
        ctx["can_delete"] = self.request.user.has_perm("devices.delete_device")
        return ctx


# Bulk actions of All devices: action -> (permission, label). Policy sync posts to checkins:bulk_sync.
BULK_ACTIONS = {"delete": ("devices.delete_device", "Delete")}


@require_POST
def device_bulk(request):
    """Bulk delete: a confirmation page, then at once for a few devices or as a Job (see devices.bulk)."""
    action = request.POST.get("action", "")
    if action not in BULK_ACTIONS:
        return bad_request(request, "Unknown bulk action.")
    perm, label = BULK_ACTIONS[action]
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"You do not have permission to {label.lower()} devices.")
    try:
        selection = read_selection(request.POST, scope=scope_group_ids(request.user))
    except SelectionError as exc:
        return bad_request(request, str(exc))
    back = _safe_next(request, reverse("devices:list"))
    if not selection.is_filter and not selection.ids:
        messages.warning(request, "Select at least one device first.")
        return redirect(back)
    devices = selection.devices().defer(*HEAVY_FIELDS).order_by("display_name")
    count = devices.count()
    if count == 0:
        messages.error(
            request,
            "No device matches the filter any more."
            if selection.is_filter
            else "None of the selected devices exists any more.",
        )
        return redirect(back)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "devices/device_bulk_confirm.html",
            {
                "action": action,
                "label": label,
                "devices": devices[:50],
                "count": count,
                "selection": selection.hidden_fields(),
                "by_filter": selection.is_filter,
                "next": back,
                "title": f"{label} {count:,} device{'s' if count != 1 else ''}",
                "breadcrumbs": [("Devices", "devices:list")],
            },
        )
    if not bulk.runs_inline(selection):
        job = bulk.start(request.user, bulk.DELETE_JOB, selection, back=back)
        return redirect("devices:bulk_job", pk=job.pk)
    deleted = services.delete_devices(devices.values_list("pk", flat=True))  # the selection within scope
    messages.success(
        request,
        f"Deleted {deleted} device{'s' if deleted != 1 else ''}. Each was offboarded from security settings "
        "management in Microsoft Defender for Endpoint.",
    )
    return redirect(back)


@require_GET
@permission_required("devices.view_device", raise_exception=True)
def bulk_job(request, pk: int):
    """The progress of a bulk Policy sync or delete (the job partial polls /jobs/<pk>/ until it ends)."""
    job = get_object_or_404(Job, pk=pk, kind__in=list(bulk.LABELS))
    back = (job.params or {}).get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("devices:list")
    label = bulk.LABELS[job.kind]
    return render(
        request,
        "devices/bulk_job.html",
        {
            "job": job,
            "label": label,
            "back": back,
            "title": f"{label}: {job.total:,} device{'s' if job.total != 1 else ''}",
            "breadcrumbs": [("Devices", "devices:list")],
        },
    )


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


@require_GET
@permission_required("devices.view_device", raise_exception=True)
def device_detail(request, pk: int):
    device = get_object_or_404(scoped(Device.objects.defer("agent_state"), request.user), pk=pk)
    tenant = TenantSettings.load()
    return render(request, "devices/device_detail.html", _device_context(request, device, tenant))


def _device_context(request, device: Device, tenant: TenantSettings, tags_form=None) -> dict:
    platform = PLATFORM_OF_OS.get(device.os)
    enabled, scope = tenant.platform_scope(platform) if platform else (False, "")
    groups = (
        Group.objects.filter(memberships__device=device)
        .order_by("name")
        .only("pk", "name", "membership_type", "object_kind")
    )
    credential = DeviceCredential.objects.filter(device=device).order_by("-created_at").first()
    events = list(device.onboarding_events.order_by("-at", "-id")[:60])
    return {
        "device": device,
        "title": device.display_name,
        "breadcrumbs": [("Devices", "devices:list")],
        "entra": device.entra_properties(),
        "groups": groups,
        "events": events,
        "credential": credential,
        "platform_label": dict(Platform.choices).get(platform, device.get_os_display()),
        "platform_enabled": enabled,
        "platform_scope": scope,
        "can_change": request.user.has_perm("devices.change_device"),
        "can_delete": request.user.has_perm("devices.delete_device"),
        "tags_form": tags_form or DeviceTagsForm.for_device(device),
        "job": services.latest_job(),
        "left_scope": LEFT_SCOPE,
        "has_effective": device.os in EFFECTIVE_OS,
        "has_effective_tab": device.os in EFFECTIVE_OS or device.os in MDATP_OS,
        "drift": effective_reads.device_drift(device) if device.os in EFFECTIVE_OS else [],
    }


EFFECTIVE_OS = (OSType.WINDOWS, OSType.WINDOWS_SERVER)
MDATP_OS = (OSType.LINUX, OSType.MACOS)
# devices.mdatp's sources in the tab's "Configured by" vocabulary (security settings management is this console).
MDATP_SOURCES = {
    mdatp.SOURCE_MANAGED: ConfigSource.INTUNE,
    mdatp.SOURCE_LOCAL: ConfigSource.LOCAL_ADMIN,
    mdatp.SOURCE_DEFAULT: ConfigSource.DEFAULT,
    f"{mdatp.SOURCE_MANAGED} + {mdatp.SOURCE_LOCAL}": ConfigSource.INTUNE,
}


def _mdatp_text(value) -> str:
    if value is None:
        return "Not configured"
    if isinstance(value, list):
        if not value:
            return "None"
        items = [
            ", ".join(f"{k}: {v}" for k, v in e.items()) if isinstance(e, dict) else str(e) for e in value
        ]
        return f"{len(items)} entr{'y' if len(items) == 1 else 'ies'}: " + "; ".join(items)
    return json.dumps(value) if isinstance(value, bool) else str(value)


def mdatp_entries(
    device: Device, *, source: str = "", mismatches: bool = False, kind: str = "", hide_defaults: bool = False
) -> list[effective_reads.DeviceEntry]:
    """Linux / macOS: what is effective per managed key, computed at page time from the stored agent state by
    the function the agent's managed file view uses (devices.checkins.mdatp_effective -> devices.mdatp.effective:
    managed over local ``mdatp config``, exclusion and threat type merge policies, defaults). A local value that
    the managed one beats is listed as an other attempt; local list entries a merge policy drops likewise."""
    stored = stored_state(device)
    if not stored:
        return []
    platform = "linux" if device.os == OSType.LINUX else "macos"
    state, _, rows = checkins.mdatp_effective(platform, stored)
    out = []
    for row in rows:
        code = MDATP_SOURCES.get(row.source, ConfigSource.UNKNOWN)
        row_kind = "exclusion" if row.path.endswith("exclusions") else "av"
        attempts = []
        local = state.local.get(row.path)
        overruled = code == ConfigSource.INTUNE and local is not None and local != row.value
        if overruled and not isinstance(row.value, list):
            attempts.append({"source": "Local admin", "value": _mdatp_text(local), "name": "mdatp config"})
        if row.source.endswith(f"+ {mdatp.SOURCE_LOCAL}"):
            attempts.append({"source": "Local admin", "value": "entries merged", "name": "mdatp config"})
        if row.note:
            attempts.append({"source": "Local admin", "value": row.note, "name": "mdatp config"})
        intent = "matches" if code == ConfigSource.INTUNE else "none"
        if source and code != source:
            continue
        if hide_defaults and code == ConfigSource.DEFAULT:
            continue
        if mismatches or (kind and kind != row_kind):
            continue  # managed values always win on macOS / Linux: nothing differs from intent
        out.append(
            effective_reads.DeviceEntry(
                row.path,
                "",
                row.name,
                row_kind,
                _mdatp_text(row.value),
                code,
                effective_reads.source_label(code),
                _mdatp_text(row.value) if intent == "matches" else "",
                intent,
                attempts,
                None,
            )
        )
    return out


EFFECTIVE_KINDS = (
    ("", "All types"),
    ("asr", "ASR rules"),
    ("av", "Antivirus settings"),
    ("exclusion", "Exclusions"),
)


@require_GET
@permission_required("devices.view_device", raise_exception=True)
def device_effective(request, pk: int):
    """Device › Effective settings (Windows): what the device enforces, who configured it, other attempts."""
    device = get_object_or_404(scoped(Device.objects.defer("agent_state"), request.user), pk=pk)
    source = request.GET.get("source", "")
    kind = request.GET.get("kind", "")
    errors = []
    if source and source not in ConfigSource.values:
        errors.append(f"There is no source “{source[:40]}”: showing every source.")
        source = ""
    if kind not in dict(EFFECTIVE_KINDS):
        errors.append(f"There is no type “{kind[:40]}”: showing every type.")
        kind = ""
    mismatches = request.GET.get("mismatches") == "1"
    hide_defaults = request.GET.get("hide_defaults") == "1"
    windows = device.os in EFFECTIVE_OS
    if windows:
        entries = effective_reads.device_entries(
            device,
            source=source,
            mismatches=mismatches,
            kind=kind,
            defaults=effective_defaults(),
            hide_defaults=hide_defaults,
        )
    elif device.os in MDATP_OS:
        entries = mdatp_entries(
            device, source=source, mismatches=mismatches, kind=kind, hide_defaults=hide_defaults
        )
    else:
        entries = []
    return render(
        request,
        "devices/device_effective.html",
        {
            "device": device,
            "title": f"Effective settings · {device.display_name}",
            "breadcrumbs": [("Devices", "devices:list")],
            "entries": entries,
            "sources": ConfigSource.choices,
            "kinds": EFFECTIVE_KINDS,
            "source": source,
            "kind": kind,
            "mismatches": mismatches,
            "hide_defaults": hide_defaults,
            "filter_errors": errors,
            "reported": bool(device.effective_digest) if windows else bool(device.last_checkin_at),
            "windows": windows,
            "mdatp": device.os in MDATP_OS,
        },
    )


@require_GET
@permission_required("devices.view_device", raise_exception=True)
def device_status(request, pk: int):
    """The device's management region; the device page polls it while a re-evaluation runs."""
    device = get_object_or_404(scoped(Device.objects.defer("agent_state"), request.user), pk=pk)
    return render(
        request,
        "devices/partials/device_status.html",
        {"device": device, "job": services.latest_job(), "left_scope": LEFT_SCOPE},
    )


@require_http_methods(["GET", "POST"])
@permission_required("devices.change_device", raise_exception=True)
def device_tags(request, pk: int):
    """Defender-side device tags (e.g. MDE-Management for pilot mode); saving re-evaluates the device."""
    device = get_object_or_404(scoped(Device.objects.defer("agent_state"), request.user), pk=pk)
    form = DeviceTagsForm.for_device(device, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        was = device.get_managed_by_display()
        applied = services.set_tags(device, form.tags())
        if applied is None:
            messages.info(request, "The device tags did not change.")
        else:
            now = device.get_managed_by_display()
            change = f" Managed by: {was} → {now}." if was != now else ""
            messages.success(request, f"Device tags saved and the device re-evaluated.{change}")
        return redirect("devices:detail", pk=device.pk)
    return render(
        request,
        "devices/device_tags.html",
        {"device": device, "form": form, "title": f"Device tags · {device.display_name}",
         "breadcrumbs": [("Devices", "devices:list")]},
    )  # fmt: skip


@require_http_methods(["GET", "POST"])
@permission_required("devices.delete_device", raise_exception=True)
def device_delete(request, pk: int):
    device = get_object_or_404(scoped(Device.objects.defer("agent_state"), request.user), pk=pk)
    if request.method == "POST":
        name = device.display_name
        services.delete_device(device)
        messages.success(
            request,
            f"Deleted {name}. It was offboarded from security settings management in Microsoft Defender for "
            "Endpoint, its credential revoked and its group memberships removed.",
        )
        return redirect("devices:list")
    return render(
        request,
        "devices/device_delete.html",
        {
            "device": device,
            "title": f"Delete {device.display_name}",
            "breadcrumbs": [("Devices", "devices:list")],
            "group_count": GroupMember.objects.filter(device=device).count(),
        },
    )


# ------------------------------------------------------------------------------------ tenant switches

READ_ONLY_REASON = (
    "Most initial provisioning flows are typically completed by an Administrator of both services (such as a "
    "Global Administrator). Individuals who are delegated the Endpoint Security Manager role might not have the "
    "necessary permissions to enable this feature. Ask a Global Administrator to change these settings."
)


def _switch_page(
    request, *, form_class, template: str, title: str, source: str, fields: list[str], extra: dict
):
    tenant = TenantSettings.load()
    can_manage = request.user.has_perm(MANAGE_TENANT)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied(READ_ONLY_REASON)
        form = form_class(request.POST, instance=TenantSettings.load())
        if form.is_valid():
            job = services.update_tenant(tenant, form.cleaned_data, fields, request.user, source=source)
            if job is None:
                messages.info(request, "Nothing changed.")
            else:
                messages.success(
                    request, "Saved. Every device is being re-evaluated; the progress is shown below."
                )
            return redirect(request.path)
    else:
        form = form_class(instance=tenant, read_only=not can_manage)
    ctx = {
        "form": form,
        "tenant": tenant,
        "can_manage": can_manage,
        "read_only_reason": READ_ONLY_REASON,
        "job": services.latest_job(),
        "title": title,
        **extra,
    }
    ctx.update(_scope_summary())
    return render(request, template, ctx)


@require_http_methods(["GET", "POST"])
@permission_required("console.view_tenantsettings", raise_exception=True)
def enforcement_scope(request):
    return _switch_page(
        request,
        form_class=EnforcementScopeForm,
        template="devices/enforcement_scope.html",
        title="Configuration Management",
        source=services.SOURCE_ENFORCEMENT_SCOPE,
        fields=services.DEFENDER_FIELDS,
        extra={"breadcrumbs": [("Settings", None), ("Endpoints", None)]},
    )


@require_http_methods(["GET", "POST"])
@permission_required("console.view_tenantsettings", raise_exception=True)
def mde_connector(request):
    return _switch_page(
        request,
        form_class=ConnectorForm,
        template="devices/mde_connector.html",
        title="Microsoft Defender for Endpoint",
        source=services.SOURCE_INTUNE_CONNECTOR,
        fields=services.INTUNE_FIELDS,
        extra={
            "breadcrumbs": [
                ("Endpoint security", "policies:overview" if _has_url("policies:overview") else None)
            ]
        },
    )


def rule_marker(text: str, position: int | None) -> dict | None:
    """The rule split around the offending character, to show where the error is."""
    if position is None:
        return None
    position = max(0, min(position, len(text)))
    return {
        "before": text[:position],
        "at": text[position : position + 1] or " ",
        "after": text[position + 1 :],
    }


def _has_url(name: str) -> bool:
    from django.urls import NoReverseMatch

    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


def _scope_summary() -> dict:
    """Per platform: devices managed by MDE, not enrolled or failing, and the latest changes (one grouped query)."""
    rows = {
        r["os"]: r
        for r in Device.objects.order_by()
        .values("os")
        .annotate(
            total=Count("id"),
            mde=Count("id", filter=Q(managed_by=ManagedBy.MDE)),
            issues=Count("id", filter=~Q(enrollment_status__in=["", "Success"])),
        )
    }
    tenant = TenantSettings.load()
    platforms = []
    for os_value, platform in PLATFORM_OF_OS.items():
        enabled, scope = tenant.platform_scope(platform)
        row = rows.get(os_value, {})
        platforms.append(
            {
                "platform": platform,
                "label": dict(Platform.choices)[platform],
                "enabled": enabled,
                "scope": "On tagged devices" if scope == "tagged" else "All devices",
                "total": row.get("total", 0),
                "mde": row.get("mde", 0),
                "issues": row.get("issues", 0),
                "os": os_value,
            }
        )
    recent = (
        Device.objects.filter(management_changed_at__isnull=False)
        .defer(*HEAVY_FIELDS)
        .order_by("-management_changed_at", "-id")[:8]
    )
    return {"platforms": platforms, "recent": recent}


@require_GET
@permission_required("console.view_tenantsettings", raise_exception=True)
def scope_status(request):
    ctx = {"job": services.latest_job(), **_scope_summary()}
    return render(request, "devices/partials/scope_status.html", ctx)


@require_POST
@permission_required(MANAGE_TENANT, raise_exception=True)
def reevaluate(request):
    with transaction.atomic():
        services.start_reevaluation(request.user, source=services.SOURCE_ENFORCEMENT_SCOPE)
        audit.record("devices.reevaluate", object_type="Device", object_repr="All devices")
    messages.success(request, "Re-evaluating every device; the progress is shown below.")
    return redirect(_safe_next(request, reverse("devices:enforcement_scope")))


# ----------------------------------------------------------------------------------------------- groups


class GroupListView(ObjectListView):
    permission_required = "devices.view_group"
    queryset = Group.objects.all()

    def get_queryset(self):
        return visible_groups(self.request.user)  # scope tags (console.scopetags)

    filterset_class = GroupFilterSet
    table_class = GroupTable
    template_name = "devices/group_list.html"
    title = "Groups"
    breadcrumbs = [("Groups", None)]
    per_page = 50
    export_filename = "groups.csv"
    export_columns = [
        ("Name", lambda g: g.name),
        ("Object ID", lambda g: str(g.group_id)),
        ("Members are", lambda g: g.get_object_kind_display()),
        ("Membership type", lambda g: g.get_membership_type_display()),
        ("Members", lambda g: g.member_count),
        ("Dynamic membership rule", lambda g: g.membership_rule),
    ]


def _to_validate(request):
    """The form's "Validate rules" button: test the rule being edited (nothing is saved)."""
    from urllib.parse import urlencode

    rule = request.POST.get("membership_rule", "")[:3100]
    return redirect(f"{reverse('devices:group_validate')}?{urlencode({'rule': rule})}")


def _rule_error_marker(form: GroupForm) -> dict | None:
    for error in form.errors.as_data().get("membership_rule", []):
        if error.code == "rule_syntax":
            return rule_marker(form.data.get("membership_rule", "").strip(), error.params["position"])
    return None


@require_http_methods(["GET", "POST"])
@permission_required("devices.add_group", raise_exception=True)
def group_create(request):
    if request.method == "POST" and request.POST.get("validate"):
        return _to_validate(request)
    if request.method == "POST":
        form = GroupForm(request.POST, user=request.user, with_tags=True)
        if form.is_valid():
            try:
                group = services.create_group(
                    form.save(commit=False), scope_tags=form.cleaned_data["scope_tags"]
                )
            except scopetags.ScopeTagError as exc:
                form.add_error("scope_tags", str(exc))
                return _group_form(request, form, title="New Group")
            messages.success(request, f"Group {group.name} created with {group.member_count} members.")
            return redirect("devices:group_detail", pk=group.pk)
    else:
        initial = {
            "membership_type": request.GET.get("membership_type", Group.Membership.ASSIGNED),
            "object_kind": Group.ObjectKind.DEVICE,
            "membership_rule": request.GET.get("membership_rule", "")[:3100],
        }
        if initial["membership_type"] not in Group.Membership.values:
            initial["membership_type"] = Group.Membership.ASSIGNED
        form = GroupForm(initial=initial, user=request.user, with_tags=True)
    return _group_form(request, form, title="New Group")


def _group_form(request, form, *, title: str, group=None):
    return render(
        request,
        "devices/group_form.html",
        {
            "form": form,
            "group": group,
            "title": title,
            "breadcrumbs": [("Groups", "devices:group_list")],
            "marker": _rule_error_marker(form) if form.is_bound else None,
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required("devices.change_group", raise_exception=True)
def group_edit(request, pk: int):
    group = get_object_or_404(visible_groups(request.user), pk=pk)
    if request.method == "POST" and request.POST.get("validate"):
        return _to_validate(request)
    if request.method == "POST":
        form = GroupForm(request.POST, instance=group, user=request.user, with_tags=True)
        if form.is_valid():
            try:
                group = services.update_group(
                    form.save(commit=False), scope_tags=form.cleaned_data["scope_tags"]
                )
            except scopetags.ScopeTagError as exc:
                form.add_error("scope_tags", str(exc))
            else:
                messages.success(request, f"Group {group.name} saved.")
                return redirect("devices:group_detail", pk=group.pk)
    else:
        form = GroupForm(instance=group, user=request.user, with_tags=True)
    return _group_form(request, form, title=f"Edit {group.name}", group=group)


@require_http_methods(["GET", "POST"])
@permission_required("devices.delete_group", raise_exception=True)
def group_delete(request, pk: int):
    group = get_object_or_404(visible_groups(request.user), pk=pk)
    if request.method == "POST":
        name = group.name
        try:
            services.delete_group(group)
        except ProtectedError:
            messages.error(request, f"{name} is used by policy assignments. Remove it from them first.")
            return redirect("devices:group_detail", pk=pk)
        messages.success(request, f"Group {name} deleted.")
        return redirect("devices:group_list")
    return render(
        request,
        "devices/group_delete.html",
        {"group": group, "title": f"Delete {group.name}", "breadcrumbs": [("Groups", "devices:group_list")]},
    )


SEARCH_LIMIT = 20


def _member_candidates(group: Group, q: str):
    q = (q or "").strip()[:100]
    if not q:
        return []
    return list(
        Device.objects.filter(display_name__icontains=q)
        .exclude(memberships__group=group)
        .defer(*HEAVY_FIELDS)
        .order_by("display_name")[:SEARCH_LIMIT]
    )


def _group_context(request, group: Group) -> dict:
    members = Device.objects.filter(memberships__group=group).defer(*HEAVY_FIELDS)
    can_edit = request.user.has_perm("devices.change_group")
    # keyset paged like All devices (the largest group may hold most of a million devices); the total is the
    # group's kept member count, not a COUNT over the join
    table = keyset_table(
        request,
        MemberTable,
        members,
        per_page=keyset_per_page(request, 25, MAX_PER_PAGE),
        total=group.member_count,
        group=group,
        can_edit=can_edit,
    )
    q = request.GET.get("q", "")
    return {
        "group": group,
        "table": table,
        "title": group.name,
        "breadcrumbs": [("Groups", "devices:group_list")],
        "can_edit": can_edit,
        "can_delete": request.user.has_perm("devices.delete_group"),
        "q": q[:100],
        "candidates": _member_candidates(group, q)
        if can_edit and group.targetable and not group.is_dynamic
        else [],
        "searched": bool(q.strip()),
    }


@require_GET
@permission_required("devices.view_group", raise_exception=True)
def group_detail(request, pk: int):
    group = get_object_or_404(visible_groups(request.user), pk=pk)
    return render(request, "devices/group_detail.html", _group_context(request, group))


@require_GET
@permission_required("devices.view_group", raise_exception=True)
def group_member_search(request, pk: int):
    group = get_object_or_404(visible_groups(request.user), pk=pk)
    ctx = _group_context(request, group)
    return render(request, "devices/partials/member_search.html", ctx)


def _members_change(request, pk: int, add: bool):
    if not request.user.has_perm("devices.change_group"):
        raise PermissionDenied("You do not have permission to change group members.")
    group = get_object_or_404(visible_groups(request.user), pk=pk)
    ids = parse_ids(request.POST.getlist("device"), limit=1000)
    if ids is None:
        return bad_request(request, "The device selection is not a list of device ids.")
    back = reverse("devices:group_detail", args=[group.pk])
    q = request.POST.get("q", "").strip()[:100]
    if q:
        from urllib.parse import urlencode

        back += "?" + urlencode({"q": q})
    if not ids:
        messages.warning(request, "Select at least one device.")
        return redirect(back)
    try:
        changed = services.add_group_members(group, ids) if add else services.remove_group_members(group, ids)
    except membership.MembershipError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    verb = "Added" if add else "Removed"
    messages.success(request, f"{verb} {len(changed)} device{'s' if len(changed) != 1 else ''}.")
    return redirect(back)


@require_POST
def group_member_add(request, pk: int):
    return _members_change(request, pk, add=True)


@require_POST
def group_member_remove(request, pk: int):
    return _members_change(request, pk, add=False)


@require_GET
@permission_required("devices.view_group", raise_exception=True)
def group_validate(request):
    """Entra's "Validate Rules": test a rule against chosen devices before saving it (changes nothing)."""
    data = request.GET.copy()
    if "rule" not in data and "membership_rule" in data:
        data["rule"] = data["membership_rule"]
    # Forged or stale ids are dropped (and counted) rather than failing the whole page.
    raw_ids = [int(v) for v in data.getlist("device")[:100] if v.isdigit() and len(v) <= 18]
    chosen = list(Device.objects.filter(pk__in=raw_ids).defer(*HEAVY_FIELDS).order_by("display_name"))
    data.setlist("device", [str(d.pk) for d in chosen])
    q = (data.get("q") or "").strip()[:100]
    found = (
        list(
            Device.objects.filter(display_name__icontains=q)
            .exclude(pk__in=[d.pk for d in chosen])
            .defer(*HEAVY_FIELDS)
            .order_by("display_name")[:SEARCH_LIMIT]
        )
        if q
        else []
    )
    form = ValidateRuleForm(
        data if "rule" in data else None,
        device_choices=[(d.pk, d.display_name) for d in chosen + found],
    )
    results = None
    error_position = None
    if form.is_bound:
        if form.is_valid():
            selected = [d for d in chosen if d.pk in set(form.cleaned_data["device"])]
            results = services.evaluate_rule(form.cleaned_data["rule"], selected)
        else:
            for error in form.errors.as_data().get("rule", []):
                if error.code == "rule_syntax":
                    error_position = error.params["position"]
    rule_text = data.get("rule", "")
    return render(
        request,
        "devices/group_validate.html",
        {
            "form": form,
            "chosen": chosen,
            "found": found,
            "q": q,
            "results": results,
            "rule_text": rule_text,
            "error_position": error_position,
            "marker": rule_marker(rule_text, error_position),
            "unknown_ids": len(set(raw_ids) - {d.pk for d in chosen})
            + (len(request.GET.getlist("device")) - len(raw_ids)),
            "title": "Validate rules",
            "breadcrumbs": [("Groups", "devices:group_list")],
            "can_create": request.user.has_perm("devices.add_group"),
        },
    )
