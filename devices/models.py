"""The device (Entra device object + what the MDE sensor knows), Entra-style groups, onboarding history and the
per-device credential of the device channel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from console.compact import CodedChoiceField, NarrowForeignKey
from console.interned import (
    InternedJSONField,
    InternedTextField,
    canonical_json,
    store_texts,
    texts_of,
)


class AgentStateField(InternedJSONField):
    """The simulated agent's state: the key of its canonical JSON, the JSON itself once in ``console.StoredText``.

    Devices that received the same policies hold the same state (its Get-MpPreference values, the applied and
    managed setting ids, the fingerprint they were applied from), so a fleet has few distinct states: 19 over
    100,000 bench devices. Packed into each row (devices.statepack, migration 0014 moved away from it) the state
    still took 365 bytes of a 795-byte device row, and the devices table keeps half of each page free; as a key
    it takes 8. The empty state ``{}`` is SQL NULL and stores no text (a new device writes nothing extra).
    """

    description = "The agent state (the column holds the key of its canonical JSON)"

    def key_of(self, value):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{self.name} holds a JSON object, not {type(value).__name__}.")
        return super().key_of(value) if value else None

    def to_python(self, value):
        if isinstance(value, str):  # value_to_string's form (fixtures, dumpdata)
            try:
                value = json.loads(value) if value else {}
            except ValueError as exc:
                raise ValidationError(f"{self.name}: {exc}", code="invalid") from exc
        return value

    def value_to_string(self, obj):
        return canonical_json(self.value_from_object(obj) or {})

    def get_db_prep_save(self, value, connection):
        if not value and not hasattr(value, "resolve_expression"):
            return None
        return super().get_db_prep_save(value, connection)

    def from_db_value(self, value, expression, connection):
        return {} if value is None else super().from_db_value(value, expression, connection)


def state_key(state) -> int | None:
    """The column value of ``state`` (None for the empty state); its text must be stored (``store_states``)."""
    return Device._meta.get_field("agent_state").key_of(state)


def state_of(key: int | None) -> dict:
    """The state a key stands for (``{}`` for None): from the process's text cache, else one query."""
    if key is None:
        return {}
    return json.loads(texts_of([key])[key])


def store_states(states) -> list[int | None]:
    """Store the texts of these states in the current transaction (one INSERT, one SELECT for the distinct ones);
    the column value of each, in order (None for the empty state). Each state is encoded once."""
    texts = [canonical_json(state) if state else None for state in states]
    keys = store_texts(text for text in texts if text is not None)
    return [None if text is None else keys[text] for text in texts]


class OSType(models.TextChoices):
    WINDOWS = "windows", "Windows"
    WINDOWS_SERVER = "windows_server", "Windows Server"
    MACOS = "macos", "macOS"
    LINUX = "linux", "Linux"


# Entra's deviceOSType values (Windows Server split from Windows in May 2023).
ENTRA_OS_TYPE = {
    OSType.WINDOWS: "Windows",
    OSType.WINDOWS_SERVER: "Windows Server",
    OSType.MACOS: "macOS",
    OSType.LINUX: "Linux",
}


class JoinType(models.TextChoices):
    WORKGROUP = "workgroup", "Workgroup (not joined)"
    ENTRA_REGISTERED = "entra_registered", "Microsoft Entra registered"
    ENTRA_JOINED = "entra_joined", "Microsoft Entra joined"
    HYBRID_JOINED = "hybrid_joined", "Microsoft Entra hybrid joined"
    DOMAIN_JOINED = "domain_joined", "Domain joined (on-premises only)"


# Intune's deviceTrustType (assignment filters) for each join state; anything else is "Unknown".
INTUNE_TRUST_TYPE = {
    JoinType.ENTRA_JOINED: "Azure AD joined",
    JoinType.ENTRA_REGISTERED: "Azure AD registered",
    JoinType.HYBRID_JOINED: "Hybrid Azure AD joined",
}
# Intune's operatingSystemSKU from the edition name of a Windows 10/11 client (most specific first).
INTUNE_OS_SKU = (
    ("enterprise multi-session", "ServerRdsh"),
    ("enterprise", "Enterprise"),
    ("pro education", "ProfessionalEducation"),
    ("pro for workstations", "ProfessionalWorkstation"),
    ("pro", "Professional"),
    ("education", "Education"),
    ("home", "Core"),
)

# Entra's deviceTrustType for each join state.
ENTRA_TRUST_TYPE = {
    JoinType.ENTRA_REGISTERED: "Workplace",
    JoinType.ENTRA_JOINED: "AzureAd",
    JoinType.HYBRID_JOINED: "ServerAd",
}


class ManagedBy(models.TextChoices):
    MDE = "mde", "MDE"
    INTUNE = "intune", "Intune"
    CONFIGMGR = "configmgr", "ConfigMgr"
    CO_MANAGED = "co_managed", "Co-managed"
    NONE = "none", "None"


class LicenseSource(models.TextChoices):
    MDE = "mde", "Microsoft Defender for Endpoint"
    SERVERS_ONLY = "servers_only", "Defender for Servers only"


class LanguageMode(models.TextChoices):
    FULL = "FullLanguage", "FullLanguage"
    CONSTRAINED = "ConstrainedLanguage", "ConstrainedLanguage"


class TrustKind(models.TextChoices):
    NONE = "", "None"
    EXISTING = "existing", "Existing registration reused"
    HYBRID = "hybrid", "Hybrid join"
    SYNTHETIC = "synthetic", "Synthetic registration (MDEJoined)"


MDE_JOINED = "MDEJoined"
MDE_MANAGED = "MDEManaged"
MICROSOFT_SENSE = "MicrosoftSense"


class Device(models.Model):
    # Three ids, as in Microsoft Graph (scripts join across them, so they must differ): `device_id` is the Entra
    # deviceId (= managedDevice.azureADDeviceId), `entra_object_id` the Entra device object's id (directoryObject
    # id, used by group members/$ref), `managed_device_id` Intune's managedDevice id.
    device_id = models.UUIDField("Device ID", default=uuid.uuid4, unique=True)
    entra_object_id = models.UUIDField("Object ID", default=uuid.uuid4, unique=True)
    managed_device_id = models.UUIDField("Managed device ID", default=uuid.uuid4, unique=True)
    display_name = models.CharField("Device name", max_length=255)
    os = models.CharField("OS", max_length=20, choices=OSType.choices)
    os_version = models.CharField("OS version", max_length=60, blank=True)
    os_edition = models.CharField(max_length=60, blank=True)
    join_type = models.CharField(max_length=20, choices=JoinType.choices, default=JoinType.WORKGROUP)
    tenant_id = models.UUIDField("Tenant ID of the MDE onboarding", null=True, blank=True)
    # Management facts
    intune_enrolled = models.BooleanField("Enrolled in Intune (MDM)", default=False)
    configmgr_client = models.BooleanField("Configuration Manager client", default=False)
    mde_onboarded = models.BooleanField("Onboarded to Defender for Endpoint", default=True)
    onboarded_via_mdc = models.BooleanField("Onboarded through Microsoft Defender for Cloud", default=False)
    tags = models.CharField(
        max_length=500, blank=True, default="", help_text="Defender device tags, comma separated"
    )
    license_source = models.CharField(max_length=20, choices=LicenseSource.choices, default=LicenseSource.MDE)
    is_non_persistent_vdi = models.BooleanField("Non-persistent VDI / Azure Virtual Desktop", default=False)
    is_server_core = models.BooleanField("Server Core installation", default=False)
    is_domain_controller = models.BooleanField("Domain controller", default=False)
    language_mode = models.CharField(
        "PowerShell language mode", max_length=20, choices=LanguageMode.choices, default=LanguageMode.FULL
    )
    in_sync_scope = models.BooleanField("In Entra Connect sync scope", default=True)
    # Active Directory facts (Group Policy links): the DNS domain and the OU distinguished name.
    ad_domain = models.CharField("AD domain", max_length=255, blank=True, default="")
    ad_ou = models.CharField("AD organizational unit", max_length=500, blank=True, default="")
    tamper_protection = models.BooleanField(default=True)
    # Results of onboarding to security management
    trust = models.CharField(max_length=10, choices=TrustKind.choices, default=TrustKind.NONE, blank=True)
    # Not indexed: Graph's $filter on it compares case-insensitively (UPPER(…)), which a b-tree of the column
    # does not serve; its two indexes (the column's and its LIKE one) cost 36 bytes a device and every check-in.
    management_type = models.CharField("managementType", max_length=30, blank=True, default="")
    system_labels = models.CharField("systemLabels", max_length=200, blank=True, default="")
    managed_by = models.CharField(
        "Managed by", max_length=12, choices=ManagedBy.choices, default=ManagedBy.NONE
    )
    enrollment_status_code = models.IntegerField(null=True, blank=True)  # shown, never searched: no index
    enrollment_status = models.CharField("MDE Enrollment status", max_length=80, blank=True, default="")
    # One of a few dozen texts (why the device is or isn't managed), stored once (console.interned).
    enrollment_message = InternedTextField(null=True, blank=True, default="", empty_text="")
    enrolled_at = models.DateTimeField(null=True, blank=True)
    # When onboarding last changed who manages the device (start/stop of MDE management, or a new status).
    management_changed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Check-ins
    last_checkin_at = models.DateTimeField(null=True, blank=True)
    next_checkin_at = models.DateTimeField(null=True, blank=True)
    checkin_lease_until = models.DateTimeField(null=True, blank=True)
    sync_requested_at = models.DateTimeField(null=True, blank=True)
    # Intune-enrolled devices: when Intune last notified the device of a policy change (push), which moves its next
    # check-in up (devices.scheduling.notify_mdm); a check-in after it answers the notification.
    mdm_notified_at = models.DateTimeField(null=True, blank=True)
    desired_fingerprint = models.CharField(max_length=64, blank=True, default="")
    # Digest of the effective settings last written (reports.ingest writes only when it changes).
    effective_digest = models.CharField(max_length=64, blank=True, default="")
    # The simulated agent's local state, stored once per distinct state (AgentStateField: 8 bytes a row).
    agent_state = AgentStateField(null=True, blank=True, default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name", "id"]
        indexes = [
            # The beat tick claims due devices: a partial index keeps it tiny (only managed devices have a time).
            models.Index(
                fields=["next_checkin_at"], name="device_due_idx", condition=Q(next_checkin_at__isnull=False)
            ),
            models.Index(fields=["managed_by", "os"], name="device_managed_os_idx"),
            # All devices pages by keyset on every sortable column with the id as tiebreaker (console/listing.py):
            # each page is a seek on (column, id), at a million devices as at a hundred. They replace the
            # single-column indexes of display_name, os, managed_by and enrollment_status (same equality use).
            models.Index(fields=["display_name", "id"], name="device_name_seek_idx"),
            models.Index(fields=["managed_by", "id"], name="device_managed_seek_idx"),
            models.Index(fields=["os", "id"], name="device_os_seek_idx"),
            models.Index(fields=["os_version", "id"], name="device_osver_seek_idx"),
            models.Index(fields=["join_type", "id"], name="device_join_seek_idx"),
            models.Index(fields=["enrollment_status", "id"], name="device_enroll_seek_idx"),
            models.Index(fields=["tamper_protection", "id"], name="device_tamper_seek_idx"),
            models.Index(fields=["mde_onboarded", "id"], name="device_onboarded_seek_idx"),
            models.Index(fields=["last_checkin_at", "id"], name="device_checkin_seek_idx"),
        ]
        permissions = [("sync_device", "Can request Policy sync")]

    def __str__(self) -> str:
        return self.display_name

    # Tags and labels are stored as ",A,B," so that a contains-lookup on ",A," is exact on every database.
    @staticmethod
    def pack(values) -> str:
        cleaned = [v.strip() for v in values if v and v.strip()]
        return f",{','.join(dict.fromkeys(cleaned))}," if cleaned else ""

    @property
    def tag_list(self) -> list[str]:
        return [t for t in self.tags.split(",") if t]

    @property
    def label_list(self) -> list[str]:
        return [t for t in self.system_labels.split(",") if t]

    def has_tag(self, tag: str) -> bool:
        return tag.lower() in (t.lower() for t in self.tag_list)

    @property
    def is_mde_managed(self) -> bool:
        return self.managed_by == ManagedBy.MDE and self.management_type == MICROSOFT_SENSE

    @property
    def entra_os_type(self) -> str:
        return ENTRA_OS_TYPE.get(self.os, self.os)

    @property
    def entra_trust_type(self) -> str:
        return ENTRA_TRUST_TYPE.get(self.join_type, "")

    @property
    def operating_system_sku(self) -> str | None:
        if self.os != OSType.WINDOWS:
            return None
        edition = self.os_edition.lower()
        return next((sku for words, sku in INTUNE_OS_SKU if words in edition), None)

    def filter_properties(self) -> dict:
        """The properties Intune's assignment filters see (devices.rules.FILTER_PROPERTIES)."""
        return {
            "deviceName": self.display_name,
            "osVersion": self.os_version or None,
            "deviceTrustType": INTUNE_TRUST_TYPE.get(self.join_type, "Unknown"),
            "operatingSystemSKU": self.operating_system_sku,
        }

    def entra_properties(self) -> dict:
        """The properties Entra's dynamic membership rules see (devices.rules)."""
        return {
            "accountEnabled": True,
            "displayName": self.display_name,
            "deviceId": str(self.device_id),
            "objectId": str(self.entra_object_id),
            "deviceOSType": self.entra_os_type,
            "deviceOSVersion": self.os_version,
            "deviceTrustType": self.entra_trust_type,
            "managementType": self.management_type or None,
            "systemLabels": self.label_list,
            "devicePhysicalIds": [],
            "isRooted": False,
        }


class DeviceCountDelta(models.Model):
    """A signed change of the number of devices with one (managed by, OS, enrollment status), written by the
    database's own triggers on PostgreSQL (devices/tally.py). Insert-only; the count of a key is the sum of its
    rows, folded into one row per key every minute."""

    managed_by = models.CharField(max_length=12)
    os = models.CharField(max_length=20)
    enrollment_status = models.CharField(max_length=80)
    delta = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.managed_by}/{self.os}/{self.enrollment_status}: {self.delta:+d}"


# The codes an onboarding event stores for its outcome (console.compact; never renumber them: rows hold them).
OUTCOME_CODES = {"failed": 1, "info": 2, "ok": 3, "skipped": 4}


class OnboardingEvent(models.Model):
    """One step of the onboarding timeline shown on the device page."""

    class Outcome(models.TextChoices):
        OK = "ok", "Completed"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        INFO = "info", "Information"

    # Three steps a device, a few dozen distinct texts: the step and the message are stored once
    # (console.interned), the outcome as a 2-byte code and the device as a 4-byte id (console.compact), so that
    # a row is 64 bytes, not 96 (migration 0017).
    device = NarrowForeignKey(Device, on_delete=models.CASCADE, related_name="onboarding_events")
    at = models.DateTimeField(auto_now_add=True)
    step = InternedTextField()
    outcome = CodedChoiceField(choices=Outcome.choices, codes=OUTCOME_CODES)
    message = InternedTextField(null=True, blank=True, default="", empty_text="")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.device_id} {self.step} {self.outcome}"


class DeviceCredential(models.Model):
    """The per-device secret of the device channel, issued when the trust is created; stored hashed."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="credentials")
    key_id = models.CharField(max_length=32)  # unique: the constraint below
    secret_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # A constraint rather than unique=True, which on PostgreSQL also builds a LIKE (varchar_pattern_ops) index
        # beside the unique one: the key is only ever matched whole (36 bytes a device at 100,000 devices).
        constraints = [models.UniqueConstraint(fields=["key_id"], name="unique_credential_key_id")]

    def __str__(self) -> str:
        return f"{self.key_id} ({'revoked' if self.revoked_at else 'active'})"


class Group(models.Model):
    """A Microsoft Entra security group: assigned or dynamic; device groups or user groups."""

    class Membership(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        DYNAMIC = "dynamic", "Dynamic device"

    class ObjectKind(models.TextChoices):
        DEVICE = "device", "Devices"
        USER = "user", "Users"

    group_id = models.UUIDField("Object ID", default=uuid.uuid4, unique=True)
    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True)
    membership_type = models.CharField(max_length=10, choices=Membership.choices, default=Membership.ASSIGNED)
    object_kind = models.CharField("Members are", max_length=10, choices=ObjectKind.choices, default="device")
    membership_rule = models.TextField("Dynamic membership rule", blank=True)
    member_count = models.PositiveIntegerField(default=0)
    rule_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    members = models.ManyToManyField(Device, through="GroupMember", related_name="device_groups")
    # Intune's scope tags (console.scopetags); none means the built-in Default tag.
    scope_tags = models.ManyToManyField("console.ScopeTag", related_name="groups", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_dynamic(self) -> bool:
        return self.membership_type == self.Membership.DYNAMIC

    @property
    def targetable(self) -> bool:
        """Only device objects receive MDE security management policy (the seed: targeting users is not supported)."""
        return self.object_kind == self.ObjectKind.DEVICE


class GroupMember(models.Model):
    # No single-column indexes: unique_group_member leads with group, member_device_idx with device. 4-byte ids
    # (console.compact): each of the two b-trees' entries 16 bytes instead of 24, a row 48 bytes instead of 56.
    group = NarrowForeignKey(Group, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    device = NarrowForeignKey(Device, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "device"], name="unique_group_member")]
        indexes = [models.Index(fields=["device", "group"], name="member_device_idx")]

    def __str__(self) -> str:
        return f"{self.group_id}:{self.device_id}"


# ----------------------------------------------------------------------------------------------------------------
# Other management sources of a Windows device (issue 15): Group Policy, Configuration Manager, local admin.
# Tamper Protection is the Device.tamper_protection fact. Who wins is decided by devices.precedence (pure).
# ----------------------------------------------------------------------------------------------------------------


class ConfigSource(models.TextChoices):
    """Defender's "Configured by" values (the strings are devices.precedence's source codes)."""

    INTUNE = "intune", "Intune"
    GROUP_POLICY = "group_policy", "Group Policy"
    CONFIGMGR = "configmgr", "Configuration Manager"
    TAMPER_PROTECTION = "tamper_protection", "Tamper Protection"
    LOCAL_ADMIN = "local_admin", "Local admin"
    DEFAULT = "default", "Default"
    UNKNOWN = "unknown", "Unknown"


class GroupPolicyObject(models.Model):
    """A simulated Active Directory Group Policy object with Defender settings.

    ``settings`` holds flat values keyed by settings-catalog id, in the same form as a policy's desired state
    (AV settings, ASR rules "GUID=action", exclusion lists). ``local_overrides`` lists the catalog ids whose
    "Configure local setting override for …" switch this GPO enables (those switches are GPO-only and not in the
    settings catalog, so they are kept apart). A GPO applies to a device when it is linked explicitly
    (``devices``), to the device's domain (``link_domain``) or to its OU or a parent OU (``link_ou``).
    ``link_order``: 1 is the highest; among GPOs that set the same setting, the lowest link order wins.
    """

    gpo_id = models.UUIDField("GPO ID", default=uuid.uuid4, unique=True)
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="")
    enabled = models.BooleanField("Link enabled", default=True)
    settings = models.JSONField(default=dict, blank=True)
    local_overrides = models.JSONField("Local setting overrides", default=list, blank=True)
    link_domain = models.CharField("Linked to domain", max_length=255, blank=True, default="")
    link_ou = models.CharField("Linked to OU", max_length=500, blank=True, default="")
    link_order = models.PositiveIntegerField(default=1)
    devices = models.ManyToManyField(Device, blank=True, related_name="group_policies")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["link_order", "name"]
        verbose_name = "Group Policy object"

    def __str__(self) -> str:
        return self.name


class ConfigMgrBaseline(models.Model):
    """A simulated Configuration Manager baseline (antimalware policy) deployed to ConfigMgr clients."""

    class Mode(models.TextChoices):
        CO_MANAGEMENT = "co_management", "Co-management"
        STANDALONE = "standalone", "Configuration Manager (standalone)"
        TENANT_ATTACH = "tenant_attach", "Tenant attach"

    baseline_id = models.UUIDField(default=uuid.uuid4, unique=True)
    name = models.CharField(max_length=255, unique=True)
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.STANDALONE)
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(default=dict, blank=True)
    all_clients = models.BooleanField("Deployed to every ConfigMgr client", default=True)
    devices = models.ManyToManyField(Device, blank=True, related_name="configmgr_baselines")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "Configuration Manager baseline"

    def __str__(self) -> str:
        return self.name


class LocalAdminChange(models.Model):
    """A local change on the device (``Set-MpPreference`` / ``Add-MpPreference`` / ``Remove-MpPreference``,
    ``MpCmdRun.exe``, WMI). Replayed in time order they give the device's local preference per setting."""

    class Operation(models.TextChoices):
        SET = "set", "Set-MpPreference"
        ADD = "add", "Add-MpPreference"
        REMOVE = "remove", "Remove-MpPreference"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="local_changes", db_index=False)
    setting_id = models.CharField(max_length=255)
    operation = models.CharField(max_length=10, choices=Operation.choices, default=Operation.SET)
    value = models.JSONField(null=True, blank=True)
    actor = models.CharField(max_length=255, blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["device", "at"], name="localchange_device_at_idx")]

    def __str__(self) -> str:
        return f"{self.device_id} {self.operation} {self.setting_id}"
