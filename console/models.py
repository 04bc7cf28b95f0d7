"""Tenant-wide state owned by the console: the switches, the audit log, jobs people wait on, service health."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, models

from .interned import text_key


class Platform(models.TextChoices):
    """Enforcement-scope platforms of the Defender portal (Settings › Endpoints › Configuration Management)."""

    WINDOWS_CLIENT = "windows_client", "Windows Client"
    WINDOWS_SERVER = "windows_server", "Windows Server"
    MACOS = "macos", "macOS"
    LINUX = "linux", "Linux"


class Scope(models.TextChoices):
    ALL = "all", "All devices"
    TAGGED = "tagged", "On tagged devices"


MDE_MANAGEMENT_TAG = "MDE-Management"


class TenantSettings(models.Model):
    """The one tenant: Defender-side enforcement scope and Intune-side connection switch.

    A singleton (pk=1). Only a Global Administrator changes it; every change re-evaluates all devices.
    """

    tenant_id = models.UUIDField(default=uuid.uuid4)
    tenant_name = models.CharField(max_length=200, default="Contoso")

    # Microsoft 365 Defender portal › Settings › Endpoints › Configuration Management › Enforcement Scope
    windows_client_enabled = models.BooleanField(default=False)
    windows_client_scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    windows_server_enabled = models.BooleanField(default=False)
    windows_server_scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    macos_enabled = models.BooleanField(default=False)
    macos_scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    linux_enabled = models.BooleanField(default=False)
    linux_scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    mdc_devices_enabled = models.BooleanField(
        "Manage devices onboarded through Microsoft Defender for Cloud", default=False
    )
    configmgr_manages_security = models.BooleanField(
        "Manage Security settings using Configuration Manager", default=True
    )

    # Microsoft Intune admin center › Endpoint security › Microsoft Defender for Endpoint
    allow_mde_enforcement = models.BooleanField(
        "Allow Microsoft Defender for Endpoint to enforce Endpoint Security Configurations", default=False
    )

    # Directory facts the onboarding flow needs (hybrid join prerequisites).
    entra_connect_sync_configured = models.BooleanField(
        "Microsoft Entra Connect sync configured", default=True
    )

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant settings"
        verbose_name_plural = "tenant settings"
        permissions = [("manage_tenant", "Can change tenant-wide switches")]

    def __str__(self) -> str:
        return f"Tenant {self.tenant_name}"

    @classmethod
    def load(cls) -> TenantSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    def platform_scope(self, platform: str) -> tuple[bool, str]:
        return getattr(self, f"{platform}_enabled"), getattr(self, f"{platform}_scope")


class AuditEvent(models.Model):
    """Who changed what, when, from where: people, API clients and the system itself."""

    class Source(models.TextChoices):
        UI = "ui", "Admin center"
        API = "api", "Graph API"
        SYSTEM = "system", "System"
        DEVICE = "device", "Device channel"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SYSTEM)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(
        max_length=80, blank=True
    )  # the (object_type, object_id) index leads with it
    object_id = models.CharField(max_length=80, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]
        permissions = [("export_auditevent", "Can export audit logs")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.object_repr}"


class Job(models.Model):
    """A background task a person waits for; its progress lives here, not in a Celery result backend."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=60, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class ServiceHeartbeat(models.Model):
    """The last time a background process proved it is alive (console.heartbeats writes them).

    One row per worker ("worker:<nodename>", stamped by the worker itself), one for beat ("beat", stamped by
    its scheduler), and "worker" from the scheduled heartbeat task (a round trip beat → broker → worker).
    """

    name = models.CharField(max_length=255, unique=True)
    last_seen = models.DateTimeField()
    hostname = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen:%H:%M:%S}"


class ServiceCounter(models.Model):
    """A durable counter for /metrics (check-ins, rejected reports): every web process reports the same total.

    Incremented with F() by console.counters.incr, once per batch, so concurrent workers never lose a count.
    """

    name = models.CharField(max_length=60, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class ApiToken(models.Model):
    """A Graph API token: bound to a role (the same permission checks as the UI), stored hashed.

    The secret is shown once, when it is created; the prefix identifies it in lists and audit logs.
    """

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    role = models.ForeignKey("auth.Group", on_delete=models.PROTECT, related_name="+")
    prefix = models.CharField(max_length=12, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("manage_apitoken", "Can create and revoke API tokens")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        from django.utils import timezone

        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class SingleSignOnIdentity(models.Model):
    """The link between a console user and their account at the OpenID Connect provider (console.sso).

    Matched by (issuer, subject) - the one identifier a provider promises never to reuse or change - so a user
    whose email changes at the provider is still the same console user.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class UserPreference(models.Model):
    """How one admin reads dates: their time zone and locale (console/datetimes.py). Absent means UTC, en-US."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    time_zone = models.CharField(max_length=64, default="UTC")
    locale = models.CharField(max_length=10, default="en_US")

    def __str__(self) -> str:
        return f"{self.user} · {self.time_zone} · {self.locale}"


class RoleDefinition(models.Model):
    """What Intune adds to a role beyond its permissions: a description and whether it is built in.

    The permissions themselves stay on the Django group (``auth.Group``), so every check in the console and the API
    is Django's own ``has_perm`` (one decision point); custom roles are groups with a definition not built in.
    """

    group = models.OneToOneField("auth.Group", on_delete=models.CASCADE, related_name="definition")
    description = models.CharField(max_length=500, blank=True)
    is_builtin = models.BooleanField(default=False)
    role_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    class Meta:
        ordering = ["-is_builtin", "group__name"]

    def __str__(self) -> str:
        return self.group.name


class ScopeTag(models.Model):
    """Intune's scope tag (distributed IT): policies, device groups and role assignments carry tags, and a person
    sees only the objects that share a tag with their role assignment (console.scopetags decides).

    The built-in "Default" tag is Graph id "0" and stands for every untagged object; other tags are their pk.
    """

    DEFAULT_NAME = "Default"

    name = models.CharField(max_length=128, unique=True)
    description = models.CharField(max_length=500, blank=True)
    is_builtin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_builtin", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def graph_id(self) -> str:
        return "0" if self.is_builtin else str(self.pk)


class AdminGroup(models.Model):
    """An Entra security group whose members are users ("Security, user members"), distinct from device groups:
    a role assignment's members may be such groups, and their users hold the role while they are members."""

    group_id = models.UUIDField("Object ID", default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=128, unique=True)
    description = models.CharField(max_length=500, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="admin_groups", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoleAssignmentQuerySet(models.QuerySet):
    def held_by(self, user) -> models.QuerySet:
        """The assignments ``user`` is a member of, directly or through an admin group."""
        return self.filter(
            models.Q(pk__in=RoleAssignment.members.through.objects.filter(user=user).values("roleassignment"))
            | models.Q(
                pk__in=RoleAssignment.member_groups.through.objects.filter(admingroup__members=user).values(
                    "roleassignment"
                )
            )
        )


class RoleAssignment(models.Model):
    """Intune's role assignment: a role, its members and its scope (all devices, or selected device groups).

    With no scope group the assignment covers all devices. Members get the role's permissions through the
    console's authentication backend (console.backends), so disabling or removing them takes effect at once.
    """

    assignment_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=128)
    description = models.CharField(max_length=500, blank=True)
    role = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="role_assignments")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="role_assignments", blank=True)
    member_groups = models.ManyToManyField(AdminGroup, related_name="role_assignments", blank=True)
    scope_groups = models.ManyToManyField("devices.Group", related_name="role_assignments", blank=True)
    # No tag: the Default tag, as in Intune (an assignment always has at least one scope tag).
    scope_tags = models.ManyToManyField(ScopeTag, related_name="role_assignments", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RoleAssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="unique_role_assignment_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def all_devices(self) -> bool:
        return not self.scope_groups.exists()


class WebhookEndpoint(models.Model):
    """The tenant's optional outgoing webhook (Tenant administration › Webhook): a SOC is told about drift.

    A singleton (pk=1). The body is JSON signed with HMAC-SHA256 over "<timestamp>.<body>" with the secret
    (console/webhooks.py); the secret is kept to sign and never shown again after it is saved.
    """

    class Events(models.TextChoices):
        PROTECTED = "protected", "Drift of protected settings only"
        ALL = "all", "Every drift event"

    url = models.URLField("Payload URL", max_length=500, blank=True)
    secret = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=False)
    events = models.CharField(max_length=10, choices=Events.choices, default=Events.PROTECTED)
    # Per-tenant additions to the protected settings (setting definition ids of the catalog), one per line.
    extra_protected = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "webhook"
        permissions = [("use_device_lab", "Can use the device lab (simulated devices, GPOs, local changes)")]

    def __str__(self) -> str:
        return self.url or "Webhook (not configured)"

    @classmethod
    def load(cls) -> WebhookEndpoint:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class WebhookDelivery(models.Model):
    """One event to deliver, persisted before any attempt: a worker restart loses no delivery.

    Attempts are claimed with a short lease (an atomic UPDATE), so two workers never post the same delivery at
    once and a worker killed mid-attempt leaves a row that the sweep picks up again after the lease.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=60)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # [{"at": iso, "status_code": int|None, "error": str, "ms": int}, ...] one entry per attempt
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} → {self.url} ({self.status})"

    @property
    def attempt_log(self) -> list[dict]:
        """The attempts with their times as datetimes (for the one date filter)."""
        from datetime import datetime

        return [{**h, "at": datetime.fromisoformat(h["at"])} for h in self.history]


class StoredTextManager(models.Manager):
    def intern(self, texts: Iterable[str]) -> dict[str, int]:
        """Make sure every (non-empty) text has its row; returns text -> key. One INSERT and one SELECT.

        Rows are inserted in key order, so two check-ins interning the same new texts wait for each other
        instead of deadlocking. A different text already stored under a key (two texts whose MD5s share 64
        bits) raises instead of reporting the wrong message.
        """
        keys = {text: text_key(text) for text in set(texts) if text}
        if not keys:
            return {}
        ordered = sorted(keys.items(), key=lambda item: item[1])
        table = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            for start in range(0, len(ordered), 1000):
                chunk = ordered[start : start + 1000]
                values = ", ".join(["(%s, %s)"] * len(chunk))
                cursor.execute(
                    f"INSERT INTO {table} (key, text) VALUES {values} ON CONFLICT (key) DO NOTHING",
                    [param for text, key in chunk for param in (key, text)],
                )
        stored = dict(self.filter(key__in=list(keys.values())).values_list("key", "text"))
        for text, key in keys.items():
            if stored.get(key) != text:
                raise ValueError(
                    f"Stored text key {key} already stands for another text: {stored.get(key)!r}"
                )
        return keys


class StoredText(models.Model):
    """A text stored once, under a key derived from it (``console.interned.text_key``): status messages, setting
    keys and setting values (their canonical JSON), the devices' enrollment and onboarding messages. A fleet
    reports a few thousand distinct texts over tens of millions of rows ("Applied: ./Vendor/MSFT/Firewall/…",
    ``device_vendor_msft_policy_config_defender_…``); the rows hold the 8-byte key (``message_ref``, and the
    columns of ``console.interned``). Rows are only ever added.

    Created by reports (migration 0007, as StatusMessage) and moved here with its table (console 0011) when the
    devices' messages were interned too: the lowest layer owns it."""

    key = models.BigIntegerField(primary_key=True)
    text = models.TextField()

    objects = StoredTextManager()

    def __str__(self) -> str:
        return self.text
