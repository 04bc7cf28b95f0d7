"""Onboarding to security management for Microsoft Defender for Endpoint, as the seed describes it.

`evaluate(device, tenant)` is the pure decision (no database): it walks the seed's four steps for one device and
says who manages it, with which Entra trust, labels and MDE enrollment status. `apply(device, outcome)` writes
that decision in one transaction, with the timeline, the device credential, the check-in schedule, the signal
and the audit record. Both are idempotent: the same facts give the same outcome, and applying an outcome the
device already has changes nothing.

The four steps (seed, "Environment" and "Architecture"):

1. The device is surveyed for an existing Intune presence (an MDM enrollment). A device enrolled in Intune is
   Managed by Intune (Co-managed with a Configuration Manager client) and does not process this channel.
2. Devices without an Intune presence enable the Security Management feature: the tenant must allow it on both
   sides (Defender Enforcement Scope for the platform, pilot tag, Defender for Cloud switch, Configuration
   Manager authority; Intune's "Allow Microsoft Defender for Endpoint to enforce Endpoint Security
   Configurations") and the device must be a supported kind (not non-persistent VDI, Server Core, a domain
   controller, PowerShell ConstrainedLanguage, or licensed only through Defender for Servers).
3. A trust with Microsoft Entra ID is created if none exists: an existing registration is reused; a
   domain-joined device completes a hybrid join (Entra Connect sync configured, device in sync scope); any other
   device gets a synthetic registration and the MDEJoined label. Cross-tenant is not supported.
4. The device is managed: Managed by MDE, managementType MicrosoftSense, label MDEManaged.

Every unsupported case ends in an enrollment status of the error-code table (reference §c) and a message that
says what to change. The reference gives no meaning per code inside the "General error" range (5-7, 9, 11-12,
26-33), so all unsupported device kinds use its first code and say the cause in the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kept free of Django imports at module level so that evaluate() runs anywhere (tests, the demo, a shell).
MDE_JOINED = "MDEJoined"
MDE_MANAGED = "MDEManaged"
MICROSOFT_SENSE = "MicrosoftSense"
MDM = "MDM"
INTUNE_CHANNEL = (
    "intune",
    "co_managed",
)  # Managed by values whose policy comes through the Intune enrollment
PILOT_TAG = "MDE-Management"
# Trusts this onboarding flow creates itself (an existing registration is "existing"): both earn MDEJoined.
JOINED_BY_THIS_SCENARIO = ("synthetic", "hybrid")

# Enrollment statuses of the reference's error-code table (HKLM\SOFTWARE\Microsoft\SenseCM\EnrollmentStatus).
SUCCESS = "Success"
GENERAL_ERROR = "General error"
INTUNE_CONFIGURATION_ISSUE = "Microsoft Intune Configuration issue"
HYBRID_JOIN_FAILURE = "General Hybrid join failure"
TENANT_MISMATCH = "Tenant mismatch"
ENTRA_CONNECT_MISCONFIGURATION = "Microsoft Entra Connect misconfiguration"
NOT_ENROLLED = "Device is not enrolled and has never been enrolled"
MANAGED_BY_SCCM = "Device is managed by SCCM Agent"
# Not a code of the reference's table (code 2 says "never been enrolled"): a device that was enrolled and then
# fell out of the Enforcement Scope (platform off, pilot tag removed, Defender for Cloud switch off).
LEFT_SCOPE = "Left the enforcement scope"

CODE_NOT_ENROLLED = 2
CODE_SCCM = 4
CODE_GENERAL_ERROR = 5
CODE_INTUNE_CONFIGURATION = 8
CODE_HYBRID_JOIN_FAILURE = 10
CODE_TENANT_MISMATCH = 15
CODE_ENTRA_CONNECT = 36

#: (status, codes of the reference table), in the order the filters show them.
ENROLLMENT_STATUSES: tuple[tuple[str, str], ...] = (
    (SUCCESS, "Success"),
    (NOT_ENROLLED, "2"),
    (MANAGED_BY_SCCM, "4"),
    (INTUNE_CONFIGURATION_ISSUE, "8, 44"),
    (TENANT_MISMATCH, "15"),
    (ENTRA_CONNECT_MISCONFIGURATION, "36, 37"),
    (HYBRID_JOIN_FAILURE, "10, 42"),
    (GENERAL_ERROR, "5-7, 9, 11-12, 26-33"),
    (LEFT_SCOPE, ""),
)

# Platforms of the Enforcement Scope per device OS (console.models.Platform values).
PLATFORM_OF_OS = {
    "windows": "windows_client",
    "windows_server": "windows_server",
    "macos": "macos",
    "linux": "linux",
}
PLATFORM_LABEL = {
    "windows_client": "Windows Client",
    "windows_server": "Windows Server",
    "macos": "macOS",
    "linux": "Linux",
}

# Step names of the onboarding timeline.
STEP_SURVEY = "Survey for an Intune presence"
STEP_ENABLE = "Enable security management"
STEP_TRUST = "Create trust with Microsoft Entra ID"
STEP_MANAGED = "Managed by Microsoft Defender for Endpoint"
STEP_STOPPED = "Security management stopped"

SCOPE_PATH = "Microsoft 365 Defender › Settings › Endpoints › Configuration Management › Enforcement Scope"
INTUNE_SWITCH_PATH = "Microsoft Intune admin center › Endpoint security › Microsoft Defender for Endpoint"

# The persisted fields an outcome decides (and the only ones apply() compares).
STATE_FIELDS = (
    "managed_by",
    "management_type",
    "trust",
    "join_type",
    "system_labels",
    "enrollment_status_code",
    "enrollment_status",
    "enrollment_message",
)


@dataclass(frozen=True)
class Step:
    name: str
    outcome: str  # "ok" | "failed" | "skipped" | "info" (OnboardingEvent.Outcome)
    message: str


@dataclass(frozen=True)
class Outcome:
    """What onboarding decided for one device."""

    reason: str  # machine-readable: "managed", "intune_enrolled", "platform_off", "configmgr", ...
    managed: bool
    managed_by: str  # devices.models.ManagedBy value
    management_type: str
    trust: str  # devices.models.TrustKind value
    join_type: str
    labels: tuple[str, ...]
    code: int | None
    status: str
    message: str
    steps: tuple[Step, ...] = field(default=())

    def state(self) -> dict[str, Any]:
        """The device fields this outcome sets, in their stored form."""
        cleaned = [label for label in self.labels if label]
        return {
            "managed_by": self.managed_by,
            "management_type": self.management_type,
            "trust": self.trust,
            "join_type": self.join_type,
            "system_labels": f",{','.join(dict.fromkeys(cleaned))}," if cleaned else "",
            "enrollment_status_code": self.code,
            "enrollment_status": self.status,
            "enrollment_message": self.message,
        }


def device_state(device) -> dict[str, Any]:
    return {name: getattr(device, name) for name in STATE_FIELDS}


def differs(device, outcome: Outcome) -> bool:
    return device_state(device) != outcome.state()


def _has_tag(device, tag: str) -> bool:
    return tag.lower() in (t.strip().lower() for t in (device.tags or "").split(",") if t.strip())


def _labels(device, *, joined_here: bool, managed: bool) -> tuple[str, ...]:
    """MDEJoined marks devices "joined to the directory as part of this scenario" (seed): a synthetic
    registration or a hybrid join the flow completed. It stays once given; MDEManaged only while managed."""
    current = [label for label in (device.system_labels or "").split(",") if label]
    keep = [label for label in current if label not in (MDE_JOINED, MDE_MANAGED)]
    if joined_here or MDE_JOINED in current:
        keep.append(MDE_JOINED)
    if managed:
        keep.append(MDE_MANAGED)
    return tuple(keep)


def evaluate(device, tenant) -> Outcome:
    """The onboarding decision for `device` under `tenant` (duck-typed: a Device and a TenantSettings, saved or
    not). Reads attributes only; no database access."""
    steps: list[Step] = []
    trust = device.trust or ""
    join_type = device.join_type

    def unmanaged(
        reason: str,
        code: int | None,
        status: str,
        message: str,
        step: str | None,
        step_outcome: str = "failed",
    ) -> Outcome:
        if code == CODE_NOT_ENROLLED and device.enrolled_at is not None:
            code, status = None, LEFT_SCOPE
            message = (
                "Security management for MDE stopped: the device was enrolled and has left the Enforcement "
                f"Scope. {message}"
            )
        if step is not None:
            steps.append(Step(step, step_outcome, message))
        owner = "configmgr" if device.configmgr_client else "none"
        return Outcome(
            reason=reason,
            managed=False,
            managed_by=owner,
            management_type="",
            trust=trust,
            join_type=join_type,
            labels=_labels(device, joined_here=False, managed=False),
            code=code,
            status=status,
            message=message,
            steps=tuple(steps),
        )

    # 1. Survey for an Intune presence. An enrolled device is Intune's, onboarded to Defender or not.
    if device.intune_enrolled:
        return _intune(device, trust, join_type)
    if not device.mde_onboarded:
        return unmanaged(
            "not_onboarded",
            None,
            "",
            "The device is not onboarded to Microsoft Defender for Endpoint. Onboard it with this tenant's "
            "onboarding package; security management starts after onboarding.",
            STEP_SURVEY,
            "skipped",
        )
    steps.append(Step(STEP_SURVEY, "ok", "No Microsoft Intune (MDM) enrollment found on the device."))

    # 2. Enable security management: the tenant's switches, then the device's own limits.
    platform = PLATFORM_OF_OS.get(device.os)
    label = PLATFORM_LABEL.get(platform or "", device.os)
    if platform is None:
        return unmanaged(
            "platform_unsupported",
            CODE_NOT_ENROLLED,
            NOT_ENROLLED,
            f"{label} is not a platform of security management for MDE.",
            STEP_ENABLE,
        )
    enabled = bool(getattr(tenant, f"{platform}_enabled"))
    scope = getattr(tenant, f"{platform}_scope")
    if not enabled:
        return unmanaged(
            "platform_off",
            CODE_NOT_ENROLLED,
            NOT_ENROLLED,
            f"{label} is not enabled for security settings management. Turn on {label} in {SCOPE_PATH}.",
            STEP_ENABLE,
        )
    if scope == "tagged" and not _has_tag(device, PILOT_TAG):
        return unmanaged(
            "pilot_untagged",
            CODE_NOT_ENROLLED,
            NOT_ENROLLED,
            f"{label} is in pilot mode (On tagged devices) and this device is not tagged {PILOT_TAG}. Add the "
            f"{PILOT_TAG} tag to the device in the Defender portal (Device tags; dynamic tags are not honoured) "
            f"or set the {label} scope to All devices.",
            STEP_ENABLE,
        )
    if device.onboarded_via_mdc and not tenant.mdc_devices_enabled:
        return unmanaged(
            "mdc_off",
            CODE_NOT_ENROLLED,
            NOT_ENROLLED,
            "The device was onboarded through Microsoft Defender for Cloud, and security settings management "
            f"is off for those devices. Turn on 'Manage devices onboarded through Microsoft Defender for Cloud' "
            f"in {SCOPE_PATH}.",
            STEP_ENABLE,
        )
    if device.license_source == "servers_only":
        return unmanaged(
            "servers_only_license",
            CODE_GENERAL_ERROR,
            GENERAL_ERROR,
            "The device has Defender for Endpoint only through Microsoft Defender for Servers (Microsoft "
            "Defender for Cloud); security management for MDE is not available with that licence. Activate at "
            "least one Microsoft Defender for Endpoint (user) subscription licence in the tenant.",
            STEP_ENABLE,
        )
    if not tenant.allow_mde_enforcement:
        return unmanaged(
            "intune_switch_off",
            CODE_INTUNE_CONFIGURATION,
            INTUNE_CONFIGURATION_ISSUE,
            "Intune does not allow Microsoft Defender for Endpoint to enforce endpoint security. In "
            f"{INTUNE_SWITCH_PATH}, set 'Allow Microsoft Defender for Endpoint to enforce Endpoint Security "
            "Configurations' to On.",
            STEP_ENABLE,
        )
    if device.configmgr_client and tenant.configmgr_manages_security:
        return unmanaged(
            "configmgr",
            CODE_SCCM,
            MANAGED_BY_SCCM,
            "The device runs the Configuration Manager client and 'Manage Security settings using "
            "Configuration Manager' is On, so Configuration Manager keeps its security settings. To manage it "
            f"with MDE instead, turn that toggle Off in {SCOPE_PATH}.",
            STEP_ENABLE,
        )
    unsupported = _unsupported_kind(device)
    if unsupported is not None:
        reason, message = unsupported
        return unmanaged(reason, CODE_GENERAL_ERROR, GENERAL_ERROR, message, STEP_ENABLE)
    scope_text = "All devices" if scope != "tagged" else f"On tagged devices, tagged {PILOT_TAG}"
    steps.append(Step(STEP_ENABLE, "ok", f"{label} is in the Enforcement Scope ({scope_text})."))

    # 3. Create or reuse the trust with Microsoft Entra ID.
    tenant_id = str(tenant.tenant_id)
    if device.tenant_id is not None and str(device.tenant_id) != tenant_id:
        return unmanaged(
            "tenant_mismatch",
            CODE_TENANT_MISMATCH,
            TENANT_MISMATCH,
            f"The device is onboarded to Defender for Endpoint of tenant {device.tenant_id}, but this tenant is "
            f"{tenant_id}; devices must register in the Microsoft Entra ID of the tenant that hosts Defender for "
            "Endpoint (cross-tenant is not supported). Onboard it with this tenant's package and point the "
            "Service Connection Point at this tenant.",
            STEP_TRUST,
        )
    synthetic = False
    if trust:
        trust_message = "The device's existing trust with Microsoft Entra ID is used."
    elif join_type in ("entra_joined", "hybrid_joined", "entra_registered"):
        trust = "existing"
        names = {
            "entra_joined": "Microsoft Entra joined",
            "hybrid_joined": "Microsoft Entra hybrid joined",
            "entra_registered": "Microsoft Entra registered",
        }
        trust_message = f"Existing {names[join_type]} registration reused."
    elif join_type == "domain_joined":
        if not tenant.entra_connect_sync_configured:
            return unmanaged(
                "entra_connect_not_configured",
                CODE_ENTRA_CONNECT,
                ENTRA_CONNECT_MISCONFIGURATION,
                "The device is domain joined and needs a Microsoft Entra hybrid join, but Microsoft Entra Connect "
                "sync (or federation) is not configured for this tenant. Configure Entra Connect sync for hybrid "
                "join to the tenant that hosts Defender for Endpoint.",
                STEP_TRUST,
            )
        if not device.in_sync_scope:
            return unmanaged(
                "not_in_sync_scope",
                CODE_HYBRID_JOIN_FAILURE,
                HYBRID_JOIN_FAILURE,
                "The hybrid join failed: the device's computer object is not in Microsoft Entra Connect sync "
                "scope. Add its organizational unit (or group) to the sync scope and let Entra Connect sync.",
                STEP_TRUST,
            )
        trust, join_type = "hybrid", "hybrid_joined"
        trust_message = (
            "Domain-joined device completed a Microsoft Entra hybrid join through Entra Connect sync."
        )
    else:
        trust, synthetic = "synthetic", True
        trust_message = (
            "No registration found: a synthetic device identity was created in Microsoft Entra ID (label "
            f"{MDE_JOINED})."
        )
    steps.append(Step(STEP_TRUST, "ok", trust_message))

    # 4. Managed.
    message = (
        f"Managed by MDE: managementType {MICROSOFT_SENSE}, label {MDE_MANAGED}. The device checks in with Intune "
        "every 90 minutes to retrieve endpoint security policy."
    )
    steps.append(Step(STEP_MANAGED, "ok", message))
    return Outcome(
        reason="managed",
        managed=True,
        managed_by="mde",
        management_type=MICROSOFT_SENSE,
        trust=trust,
        join_type=join_type,
        labels=_labels(device, joined_here=synthetic or trust in JOINED_BY_THIS_SCENARIO, managed=True),
        code=None,
        status=SUCCESS,
        message=message,
        steps=tuple(steps),
    )


def _intune(device, trust: str, join_type: str) -> Outcome:
    owner = "co_managed" if device.configmgr_client else "intune"
    who = "Intune and Configuration Manager (co-managed)" if device.configmgr_client else "Intune"
    message = (
        f"The device is enrolled in Microsoft Intune (MDM) and managed by {who}. It receives endpoint security "
        "policy through Intune and does not process security management for MDE."
    )
    return Outcome(
        reason="intune_enrolled",
        managed=False,
        managed_by=owner,
        management_type=MDM,
        trust=trust,
        join_type=join_type,
        labels=_labels(device, joined_here=False, managed=False),
        code=None,
        status="",
        message=message,
        steps=(Step(STEP_SURVEY, "info", message),),
    )


def _unsupported_kind(device) -> tuple[str, str] | None:
    """The seed's devices that security management for MDE does not support."""
    if device.is_non_persistent_vdi:
        return (
            "non_persistent_vdi",
            "Security management for MDE does not work on non-persistent desktops such as VDI clients or Azure "
            "Virtual Desktop. Manage this desktop's security settings through its image or Group Policy.",
        )
    if device.is_server_core:
        return (
            "server_core",
            "Server Core installations are not supported by security management for MDE (platform "
            "limitations). Manage this server with Group Policy or Configuration Manager.",
        )
    if device.is_domain_controller:
        return (
            "domain_controller",
            "Domain controllers are not supported: they cannot complete a hybrid join to Microsoft Entra ID, "
            "and security management needs that trust. Manage domain controllers with Group Policy.",
        )
    if device.language_mode == "ConstrainedLanguage":
        return (
            "constrained_language",
            "PowerShell runs in ConstrainedLanguage mode on this device, and security management for MDE does "
            "not work in that mode. Set the PowerShell LanguageMode to FullLanguage for the MDE components.",
        )
    return None


@dataclass(frozen=True)
class Applied:
    changed: bool
    started: bool = False  # management started with this change
    stopped: bool = False  # management stopped with this change
    credential: str | None = None  # the bearer token issued to the device when management started


# What apply() writes to a device row: the decision and the schedule it implies.
WRITTEN_FIELDS = (
    *STATE_FIELDS,
    "management_changed_at",
    "enrolled_at",
    "next_checkin_at",
    "checkin_lease_until",
    "sync_requested_at",
    "updated_at",
)


def apply(device, outcome: Outcome, *, source: str = "", recompute_membership: bool = True) -> Applied:
    """Write `outcome` to `device` in one transaction. Re-applying the same outcome changes nothing.

    Management starting issues a device credential and schedules the first check-in; management ending revokes
    the credential, clears the schedule and removes MDEManaged. Sends management_changed on either, appends the
    onboarding timeline and writes an audit record (with `source`, the console side the change came from).
    """
    from django.db import transaction
    from django.utils import timezone

    from console import audit  # reason: onboarding stays importable without Django; evaluate() runs anywhere
    from console.interned import stored_first  # reason: as above

    from . import credentials, membership, scheduling
    from .models import Device, OnboardingEvent
    from .signals import management_changed

    with transaction.atomic():
        locked = Device.objects.select_for_update().filter(pk=device.pk).first()
        if locked is None:  # deleted meanwhile: nothing to write
            return Applied(changed=False)
        if not differs(locked, outcome):
            _copy_state(locked, device)
            return Applied(changed=False)
        was_managed = locked.is_mde_managed
        before = device_state(locked) | {"next_checkin_at": _iso(locked.next_checkin_at)}
        now = timezone.now()
        for name, value in outcome.state().items():
            setattr(locked, name, value)
        locked.management_changed_at = now
        started = outcome.managed and not was_managed
        stopped = was_managed and not outcome.managed
        token = None
        if started:
            token = credentials.issue(locked)
            locked.enrolled_at = now
            locked.next_checkin_at = scheduling.first_checkin_at(now)
        else:
            if stopped:
                credentials.revoke(locked)
            if outcome.managed_by in INTUNE_CHANNEL:
                # Intune-enrolled devices take the same policy through Intune on their own cadence.
                if locked.next_checkin_at is None:
                    locked.next_checkin_at = scheduling.first_for(locked, "intune", now)
            elif not outcome.managed:
                locked.next_checkin_at = None
                locked.checkin_lease_until = None
                locked.sync_requested_at = None
        events = [
            OnboardingEvent(device=locked, step=step.name, outcome=step.outcome, message=step.message)
            for step in outcome.steps
        ]
        if stopped:
            events.append(
                OnboardingEvent(
                    device=locked,
                    step=STEP_STOPPED,
                    outcome="info",
                    message=f"Defender for Endpoint stopped managing security settings: {MDE_MANAGED} removed, "
                    "the device credential revoked, policies no longer delivered. "
                    + (f"Source: {source}." if source else ""),
                )
            )
        # The messages and steps are stored once (console.interned): the rows' texts in one statement, not one a row.
        texts = [text for event in events for text in (event.message, event.step)]
        with stored_first([locked.enrollment_message, *texts]):
            locked.save(update_fields=list(WRITTEN_FIELDS))
            OnboardingEvent.objects.bulk_create(events)
        after = device_state(locked) | {"next_checkin_at": _iso(locked.next_checkin_at)}
        old, new = audit.changed(before, after)
        if source:
            new["source_system"] = source
        action = (
            "device.management.started"
            if started
            else "device.management.stopped"
            if stopped
            else "device.onboarding.status"
        )
        audit.record(action, locked, before=old, after=new)
        if started or stopped:
            management_changed.send(sender=Device, device=locked, managed=outcome.managed, credential=token)
        if recompute_membership:
            membership.recompute_devices([locked])
        _copy_state(locked, device)
    return Applied(changed=True, started=started, stopped=stopped, credential=token)


def _copy_state(source, target) -> None:
    if source is target:
        return
    for name in WRITTEN_FIELDS:
        setattr(target, name, getattr(source, name))


def _iso(value):
    return value.isoformat() if value is not None else None
