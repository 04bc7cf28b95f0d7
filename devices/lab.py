"""The device lab (Global Administrator only, a simulation): make devices and situations the real world makes.

Create simulated devices, change their facts (OS, join type, VDI / Server Core / domain controller, PowerShell
language mode, licence, tenant, ConfigMgr client, Tamper Protection, AD domain and OU), author Group Policy
objects from the settings catalog and link them, add or remove local admin changes. Each change does what the
real world would make happen, through the functions that already do it:

* a fact change re-evaluates onboarding and group membership (``devices.services.reevaluate_device``: the four
  onboarding steps, the timeline, the credential, management_changed, dynamic groups, Pending marking);
* every change that alters what a device enforces makes the device **due for a check-in** now (its next
  check-in moves to now; beat claims it within seconds), so its effective settings, reports and drift follow.
  Policy sync on the device page gets there at once.

Every change is audited (source "Device lab (simulation)").
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from console import audit
from console.models import TenantSettings
from policies.catalog import SettingDef, get_catalog
from policies.validation import SettingValidationError, parse_value

from . import services
from .models import Device, GroupPolicyObject, JoinType, LanguageMode, LicenseSource, LocalAdminChange, OSType
from .precedence import EXCLUSION_SETTINGS
from .sources import gpo_applies

SOURCE_LAB = "Device lab (simulation)"
OTHER_TENANT = "other"

#: The facts the lab changes, in the order the form shows them.
FACTS = (
    "display_name", "os", "os_version", "os_edition", "join_type", "is_non_persistent_vdi", "is_server_core",
    "is_domain_controller", "language_mode", "license_source", "tenant_id", "intune_enrolled", "configmgr_client",
    "mde_onboarded", "in_sync_scope", "tamper_protection", "ad_domain", "ad_ou", "tags",
)  # fmt: skip

_ASR_PREFIX = "device_vendor_msft_policy_config_defender_attacksurfacereductionrules_"


class LabError(ValueError):
    """Bad lab input; the message says what to fix, and nothing was changed."""


# ---- which catalog settings a GPO or a local admin can set ------------------------------------------------


def source_settings() -> list[SettingDef]:
    """Defender Antivirus settings, exclusions and ASR rules of the catalog (what GPOs and Set-MpPreference set)."""
    catalog = get_catalog()
    found: dict[str, SettingDef] = {}
    for slug in ("microsoft-defender-antivirus", "microsoft-defender-antivirus-exclusions"):
        for setting in catalog.profile(slug).settings:
            if setting.is_value_key and not setting.hidden and not setting.is_group:
                found.setdefault(setting.id, setting)
    for setting in catalog.profile("attack-surface-reduction-rules").settings:
        if setting.asr_guid:
            found.setdefault(setting.id, setting)
    return sorted(found.values(), key=lambda s: (s.asr_guid is not None, s.display_name.lower()))


def setting_choices() -> list[tuple[str, str]]:
    return [(s.id, ("ASR rule: " if s.asr_guid else "") + s.display_name) for s in source_settings()]


def _short(label: str) -> str:
    return label.split(".")[0].strip().lower()


def parse_setting_value(setting_id: str, raw: Any) -> Any:
    """A value typed by a person: an option by its label ("Audit", "Not allowed") or value ("0", "2"), a number,
    or a list separated by commas or new lines; validated by policies.validation like the wizard's values."""
    allowed = {s.id: s for s in source_settings()}
    setting = allowed.get(setting_id)
    if setting is None:
        raise LabError(
            f"{setting_id!r} is not a Defender Antivirus setting, exclusion or ASR rule of the catalog."
        )
    text = raw.strip() if isinstance(raw, str) else raw
    if text in ("", None, []):
        raise LabError(f"Enter a value for {setting.display_name}.")
    try:
        if setting.options and isinstance(text, str):
            wanted = text.lower()
            for option in setting.options:
                value_text = str(option.value).lower()
                if wanted in (
                    option.label.lower(),
                    _short(option.label),
                    value_text,
                    value_text.split("=")[-1],
                ):
                    return parse_value(setting, option.value)
            return parse_value(setting, text)
        if setting.type.endswith("collection") and isinstance(text, str):
            return parse_value(setting, [part.strip() for part in re.split(r"[,\n]", text) if part.strip()])
        return parse_value(setting, text)
    except SettingValidationError as exc:
        raise LabError(exc.message) from None


# ---- devices --------------------------------------------------------------------------------------------


def _clean_facts(facts: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(facts) - set(FACTS))
    if unknown:
        raise LabError(f"Unknown device fact {unknown[0]!r}; the lab changes: {', '.join(FACTS)}.")
    clean = dict(facts)
    checks = {
        "os": OSType.values, "join_type": JoinType.values, "language_mode": LanguageMode.values,
        "license_source": LicenseSource.values,
    }  # fmt: skip
    for name, allowed in checks.items():
        if name in clean and clean[name] not in allowed:
            raise LabError(f"{name} must be one of: {', '.join(allowed)}.")
    if "display_name" in clean:
        clean["display_name"] = str(clean["display_name"]).strip()
        if not clean["display_name"]:
            raise LabError("Enter a device name.")
    if clean.get("tenant_id") == OTHER_TENANT:
        # Onboarded to another tenant's Defender (cross-tenant is not supported: onboarding says so)
        clean["tenant_id"] = _other_tenant_id()
    elif clean.get("tenant_id") in ("", "own", None) and "tenant_id" in clean:
        clean["tenant_id"] = TenantSettings.load().tenant_id
    if "tags" in clean and isinstance(clean["tags"], list | tuple):
        clean["tags"] = Device.pack(list(clean["tags"]))
    return clean


def _other_tenant_id():
    return uuid.uuid5(
        uuid.NAMESPACE_URL, f"https://lab.invalid/other-tenant/{TenantSettings.load().tenant_id}"
    )


def fact_snapshot(device: Device) -> dict[str, Any]:
    return audit.snapshot(device, list(FACTS))


def mark_for_checkin(device_ids: Iterable[int]) -> int:
    """Due now: the scheduler claims them at its next tick (devices without a schedule are not managed)."""
    ids = list(set(device_ids))
    if not ids:
        return 0
    return Device.objects.filter(pk__in=ids, next_checkin_at__isnull=False).update(
        next_checkin_at=timezone.now()
    )


def create_device(facts: dict[str, Any]) -> Device:
    clean = _clean_facts(facts)
    clean.setdefault("tenant_id", TenantSettings.load().tenant_id)
    for required in ("display_name", "os"):
        if not clean.get(required):
            raise LabError(f"Enter the device's {required.replace('_', ' ')}.")
    with transaction.atomic():
        device = Device.objects.create(**clean)
        audit.record("lab.device.create", device, after=fact_snapshot(device) | {"source_system": SOURCE_LAB})
        services.reevaluate_device(device, source=SOURCE_LAB)
        mark_for_checkin([device.pk])
    device.refresh_from_db()
    return device


def update_facts(device: Device, facts: dict[str, Any]) -> Device:
    """Change facts; onboarding, groups and the next check-in follow. Nothing happens when nothing changed."""
    clean = _clean_facts(facts)
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        before = fact_snapshot(locked)
        for name, value in clean.items():
            setattr(locked, name, value)
        after = fact_snapshot(locked)
        b, a = audit.changed(before, after)
        if not a:
            return locked
        locked.save()
        audit.record("lab.device.facts", locked, before=b, after=a | {"source_system": SOURCE_LAB})
        services.reevaluate_device(locked, source=SOURCE_LAB)
        mark_for_checkin([locked.pk])
    device.refresh_from_db()
    return device


def add_local_change(
    device: Device, *, setting_id: str, operation: str, value: Any, actor_name: str = ""
) -> LocalAdminChange:
    """A local admin's Set-/Add-/Remove-MpPreference on the device, now."""
    if operation not in LocalAdminChange.Operation.values:
        raise LabError(f"Operation must be one of: {', '.join(LocalAdminChange.Operation.values)}.")
    parsed = parse_setting_value(setting_id, value)
    if operation in ("add", "remove") and setting_id not in EXCLUSION_SETTINGS:
        raise LabError(
            "Add-MpPreference and Remove-MpPreference change exclusion lists only; use Set-MpPreference."
        )
    with transaction.atomic():
        change = LocalAdminChange.objects.create(
            device=device, setting_id=setting_id, operation=operation, value=parsed,
            actor=actor_name or "Local administrator", at=timezone.now(),
        )  # fmt: skip
        audit.record(
            "lab.local_change.add", device,
            after={"setting": setting_id, "operation": operation, "value": parsed, "source_system": SOURCE_LAB},
        )  # fmt: skip
        mark_for_checkin([device.pk])
    return change


def remove_local_change(change: LocalAdminChange) -> None:
    device = change.device
    with transaction.atomic():
        before = {"setting": change.setting_id, "operation": change.operation, "value": change.value}
        change.delete()
        audit.record("lab.local_change.remove", device, before=before, after={"source_system": SOURCE_LAB})
        mark_for_checkin([device.pk])


# ---- Group Policy objects -------------------------------------------------------------------------------


def _applied_to(gpo: GroupPolicyObject) -> set[int]:
    if not gpo.pk:
        return set()
    linked = copy.copy(gpo)
    linked.enabled = True  # the devices it is linked to, whether the link is on or off now
    explicit = set(gpo.devices.values_list("pk", flat=True))
    found = set(explicit)
    candidates = Device.objects.filter(os__in=[OSType.WINDOWS, OSType.WINDOWS_SERVER])
    if gpo.link_domain:
        candidates_q = candidates.filter(ad_domain__iexact=gpo.link_domain)
    elif gpo.link_ou:
        candidates_q = candidates.exclude(ad_ou="")
    else:
        candidates_q = candidates.none()
    for device in candidates_q.only("pk", "ad_domain", "ad_ou", "os"):
        if gpo_applies(linked, device, device.pk in explicit) is not None:
            found.add(device.pk)
    return found


GPO_FIELDS = [
    "name",
    "description",
    "enabled",
    "settings",
    "local_overrides",
    "link_domain",
    "link_ou",
    "link_order",
]


def _gpo_snapshot(gpo: GroupPolicyObject) -> dict[str, Any]:
    data = audit.snapshot(gpo, GPO_FIELDS)
    data["devices"] = sorted(gpo.devices.values_list("display_name", flat=True)) if gpo.pk else []
    return data


def save_gpo(
    gpo: GroupPolicyObject | None,
    *,
    name: str,
    description: str = "",
    enabled: bool = True,
    link_domain: str = "",
    link_ou: str = "",
    link_order: int = 1,
    devices: Iterable[Device] = (),
    local_overrides: Iterable[str] = (),
) -> GroupPolicyObject:
    """Creates or edits a GPO's name and links (its settings are edited one by one with :func:`set_gpo_setting`)."""
    name = (name or "").strip()
    if not name:
        raise LabError("Enter a name for the Group Policy object.")
    if link_order < 1:
        raise LabError("Link order starts at 1 (the strongest).")
    creating = gpo is None
    gpo = gpo or GroupPolicyObject()
    if GroupPolicyObject.objects.filter(name__iexact=name).exclude(pk=gpo.pk).exists():
        raise LabError(f"A Group Policy object named {name!r} already exists.")
    allowed = {s.id for s in source_settings()}
    overrides = sorted(set(local_overrides))
    bad = [o for o in overrides if o not in allowed]
    if bad:
        raise LabError(f"{bad[0]!r} is not a setting a local override can apply to.")
    with transaction.atomic():
        before = _gpo_snapshot(gpo)
        was = _applied_to(gpo)
        gpo.name, gpo.description, gpo.enabled = name, description.strip(), enabled
        gpo.link_domain, gpo.link_ou, gpo.link_order = link_domain.strip(), link_ou.strip(), link_order
        gpo.local_overrides = overrides
        gpo.save()
        gpo.devices.set(list(devices))
        after = _gpo_snapshot(gpo)
        if creating:
            audit.record("lab.gpo.create", gpo, after=after | {"source_system": SOURCE_LAB})
        else:
            b, a = audit.changed(before, after)
            if a:
                audit.record("lab.gpo.update", gpo, before=b, after=a | {"source_system": SOURCE_LAB})
        mark_for_checkin(was | _applied_to(gpo))
    return gpo


def set_gpo_setting(gpo: GroupPolicyObject, setting_id: str, value: Any) -> GroupPolicyObject:
    """Sets (or with ``value=None`` removes) one setting of a GPO, validated against the catalog."""
    parsed = None if value is None else parse_setting_value(setting_id, value)
    with transaction.atomic():
        locked = GroupPolicyObject.objects.select_for_update().get(pk=gpo.pk)
        before = {setting_id: locked.settings.get(setting_id)}
        settings = dict(locked.settings)
        if parsed is None:
            settings.pop(setting_id, None)
        else:
            settings[setting_id] = parsed
        locked.settings = settings
        locked.save(update_fields=["settings", "updated_at"])
        audit.record(
            "lab.gpo.setting", locked, before=before, after={setting_id: parsed, "source_system": SOURCE_LAB}
        )
        mark_for_checkin(_applied_to(locked))
    return locked


def delete_gpo(gpo: GroupPolicyObject) -> None:
    with transaction.atomic():
        was = _applied_to(gpo)
        audit.record("lab.gpo.delete", gpo, before=_gpo_snapshot(gpo), after={"source_system": SOURCE_LAB})
        gpo.delete()
        mark_for_checkin(was)


def applied_gpos(device: Device) -> list[GroupPolicyObject]:
    explicit = set(device.group_policies.values_list("pk", flat=True))
    return [
        g for g in GroupPolicyObject.objects.all() if gpo_applies(g, device, g.pk in explicit) is not None
    ]
