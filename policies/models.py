"""Endpoint security policies stored in the Graph settings-catalog shape, their versions and assignments."""

from __future__ import annotations

import uuid

from django.conf import settings as conf
from django.db import models


class PolicyType(models.TextChoices):
    ANTIVIRUS = "antivirus", "Antivirus"
    FIREWALL = "firewall", "Firewall"
    EDR = "edr", "Endpoint detection and response"
    ASR = "asr", "Attack surface reduction"


# URL slug of each policy type (Intune's node names): the policy pages and the report pages link by it.
TYPE_SLUGS = {
    "antivirus": PolicyType.ANTIVIRUS,
    "firewall": PolicyType.FIREWALL,
    "endpoint-detection-and-response": PolicyType.EDR,
    "attack-surface-reduction": PolicyType.ASR,
}
SLUG_OF_TYPE = {value: slug for slug, value in TYPE_SLUGS.items()}


class PolicyPlatform(models.TextChoices):
    WINDOWS = "windows", "Windows 10, Windows 11, and Windows Server"
    MACOS = "macos", "macOS"
    LINUX = "linux", "Linux"


# Graph's `platforms` enum for each platform.
GRAPH_PLATFORM = {"windows": "windows10", "macos": "macOS", "linux": "linux"}


class AssignmentFilter(models.Model):
    """An Intune assignment filter. MDE-managed devices ignore filters (the seed); Intune-enrolled ones honour them."""

    filter_id = models.UUIDField(default=uuid.uuid4, unique=True)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    platform = models.CharField(max_length=10, choices=PolicyPlatform.choices, default=PolicyPlatform.WINDOWS)
    rule = models.TextField(help_text='For example (device.osVersion -startsWith "10.0.22")')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Policy(models.Model):
    policy_id = models.UUIDField("ID", default=uuid.uuid4, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    policy_type = models.CharField(
        max_length=12, choices=PolicyType.choices
    )  # policy_type_name_idx leads with it
    profile = models.CharField(max_length=80)
    platform = models.CharField(max_length=10, choices=PolicyPlatform.choices, default=PolicyPlatform.WINDOWS)
    technologies = models.CharField(max_length=60, default="mdm,microsoftSense")
    template_id = models.CharField(max_length=60)
    template_family = models.CharField(max_length=60)
    # `settings` is the Graph settingsCatalog array (the source of truth, served verbatim by the API);
    # `values` is the same content flattened for the engine, written together by policies.services.
    settings = models.JSONField(default=list, blank=True)
    values = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)
    # Intune's scope tags (console.scopetags); none means the built-in Default tag.
    scope_tags = models.ManyToManyField("console.ScopeTag", related_name="policies", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        conf.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"
        # Names need not be unique (Graph and Intune allow duplicates; the wizard warns): indexed for that check.
        indexes = [models.Index(fields=["policy_type", "name"], name="policy_type_name_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def setting_count(self) -> int:
        return len(self.settings)


class PolicyVersion(models.Model):
    """Every save is a new version: a full snapshot (the export document) to diff and restore."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions", db_index=False)
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="unique_policy_version")]

    def __str__(self) -> str:
        return f"{self.policy_id} v{self.number}"


class PolicyAssignment(models.Model):
    class Intent(models.TextChoices):
        INCLUDE = "include", "Included"
        EXCLUDE = "exclude", "Excluded"

    class FilterMode(models.TextChoices):
        INCLUDE = "include", "Include filtered devices in assignment"
        EXCLUDE = "exclude", "Exclude filtered devices in assignment"

    assignment_id = models.UUIDField(default=uuid.uuid4, unique=True)
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    group = models.ForeignKey("devices.Group", on_delete=models.CASCADE, related_name="policy_assignments")
    intent = models.CharField(max_length=10, choices=Intent.choices, default=Intent.INCLUDE)
    filter = models.ForeignKey(AssignmentFilter, null=True, blank=True, on_delete=models.SET_NULL)
    filter_mode = models.CharField(max_length=10, choices=FilterMode.choices, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["policy", "group"], name="unique_policy_group")]

    def __str__(self) -> str:
        return f"{self.policy_id} {self.intent} {self.group_id}"


class PolicyDraft(models.Model):
    """The wizard's state, saved at every step so a reload or a second tab loses nothing."""

    draft_id = models.UUIDField(default=uuid.uuid4, unique=True)
    owner = models.ForeignKey(conf.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.CASCADE, related_name="drafts")
    data = models.JSONField(default=dict)
    step = models.CharField(max_length=20, default="basics")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Draft {self.draft_id}"
