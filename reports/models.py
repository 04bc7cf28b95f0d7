"""Status rows and aggregates, written by reports.ingest (check-ins) and reports.pending (policy changes).

- DevicePolicyStatus: one row per device and policy that targets it, rolled up worst-status-wins.
- DeviceSettingStatus: one row per device, policy and setting key the policy configures (a setting configured by
  two policies has two rows, one per policy, so each policy's report shows it; a conflict row names the others).
- CheckinRecord: the device's check-in history (Policy syncs, and check-ins that changed something).
- PolicyStatusCount / PolicySettingStatusCount: counts kept up to date by deltas in the same transaction as the
  rows, so the policy pages and dashboards read a few small rows instead of counting millions.
- PolicyGeneration: a token that changes whenever anything a check-in resolves against changes (policies,
  assignments, filters, the tenant), so check-in workers can cache the policy set per process safely.
"""

from __future__ import annotations

import uuid

from django.db import models

from console.compact import CodedChoiceField, NarrowForeignKey
from console.interned import InternedJSONField, InternedTextField, text_key
from console.models import StoredText


class Status(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    ERROR = "error", "Error"
    CONFLICT = "conflict", "Conflict"
    NOT_APPLICABLE = "not_applicable", "Not applicable"
    PENDING = "pending", "Pending"


STATUSES: tuple[str, ...] = tuple(Status.values)
# The codes a setting status row stores for its status (console.compact; never renumber them: rows hold them).
STATUS_CODES: dict[str, int] = {
    Status.CONFLICT: 1,
    Status.ERROR: 2,
    Status.NOT_APPLICABLE: 3,
    Status.PENDING: 4,
    Status.SUCCEEDED: 5,
}


class Channel(models.TextChoices):
    MDE = "mde", "Microsoft Defender for Endpoint"
    INTUNE = "intune", "Microsoft Intune"


CHANNEL_CODES: dict[str, int] = {Channel.INTUNE: 1, Channel.MDE: 2}  # a policy status row's (console.compact)


def _text_relation(column: str, null: bool = False) -> models.ForeignObject:
    """The stored text of an interned column, to sort or match by text (``<relation>__text``); no column. A
    nullable column's relation is ``null`` so that a join through it is an outer join (no text, still a row)."""
    return models.ForeignObject(
        StoredText,
        on_delete=models.DO_NOTHING,
        from_fields=[column],
        to_fields=["key"],
        related_name="+",
        null=null,
    )


class DevicePolicyStatus(models.Model):
    # 4-byte ids (console.compact.NarrowForeignKey) and 2-byte counts (a policy configures at most a few hundred
    # settings): with them a row is 88 bytes, not 104, and the (device, policy) and (policy, name, device)
    # b-trees' entries 16 and 32 bytes, not 24 and 40 (migration 0017). No database-level foreign keys, as on
    # the setting status rows below and for the same reasons (migration 0018).
    device = NarrowForeignKey(
        "devices.Device",
        on_delete=models.CASCADE,
        related_name="policy_statuses",
        db_index=False,
        db_constraint=False,
    )
    policy = NarrowForeignKey(
        "policies.Policy",
        on_delete=models.CASCADE,
        related_name="device_statuses",
        db_index=False,
        db_constraint=False,
    )
    # 2-byte codes; Python sees the texts (migration 0016 also stores the columns in size order).
    status = CodedChoiceField(choices=Status.choices, codes=STATUS_CODES)
    channel = CodedChoiceField(choices=Channel.choices, codes=CHANNEL_CODES, default=Channel.MDE)
    succeeded_count = models.PositiveSmallIntegerField(default=0)
    error_count = models.PositiveSmallIntegerField(default=0)
    conflict_count = models.PositiveSmallIntegerField(default=0)
    not_applicable_count = models.PositiveSmallIntegerField(default=0)
    pending_count = models.PositiveSmallIntegerField(default=0)
    # A few texts over every row ("Waiting for the device to check in and report.", 46 bytes on average): stored
    # once (console.interned), 8 bytes here; "" is NULL and reads as "" (migration 0013).
    message = InternedTextField(null=True, blank=True, default="", empty_text="")
    message_text = _text_relation("message", null=True)
    last_reported_at = models.DateTimeField(null=True, blank=True)
    # The device's name, copied here so that View report's pages are read in order from one index: sorting by
    # the device table's name meant walking every device (a small policy's devices can all sort last; 580,377
    # probes for 25 rows at 1M). Written with the row (reports.ingest, reports.pending); a rename saved through
    # the model is copied to the rows (reports.ingest.on_device_saved), one done by QuerySet.update() is not.
    device_name = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "policy"], name="unique_device_policy_status")
        ]
        # (device, policy) above serves "the policies of a device"; these "the devices of a policy", by name,
        # by status then name (a status filter or the Status column's sort, and the counts by status), and by
        # last report time. Within a policy the device is unique: it is the pages' tiebreaker (4 bytes, where
        # the row's 8-byte id made each entry 8 bytes longer).
        indexes = [
            models.Index(fields=["policy", "device_name", "device"], name="dps_policy_name_idx"),
            models.Index(
                fields=["policy", "status", "device_name", "device"], name="dps_policy_status_name_idx"
            ),
            # View report sorted by Last report time (newest first by a backward scan). No tiebreaker: a batch of
            # check-ins reports its devices at one time, so PostgreSQL stores each (policy, time) once with the
            # list of its rows (deduplication: ~7 bytes a row instead of 36), and sorts the page's few equal times
            # by device (an incremental sort).
            models.Index(fields=["policy", "last_reported_at"], name="dps_policy_reported_idx"),
        ]
        verbose_name = "device policy status"
        verbose_name_plural = "device policy statuses"

    def __str__(self) -> str:
        return f"{self.device_id}/{self.policy_id}: {self.status}"

    @property
    def setting_total(self) -> int:
        return (
            self.succeeded_count
            + self.error_count
            + self.conflict_count
            + self.not_applicable_count
            + self.pending_count
        )


# A status message's key is its text's key (console.interned.text_key: the first 64 bits of its MD5).
message_key = text_key


class DeviceSettingStatus(models.Model):
    # The biggest table (devices x settings): no database-level foreign keys, because their per-row checks at
    # commit were a third of a check-in's database time (on the policy status and effective rows too: without
    # them a pass-1 check-in went from 1.58 to 1.33-1.40 ms in-process, under a profiler, at 100,000 devices;
    # reports 0018). Integrity is kept by the code instead: deletions cascade through the ORM, a device's rows
    # are removed (and counted out) before the device goes (reports.pending.on_device_deleted), and a policy's
    # deletion locks the policy row first, so no check-in can write rows for it meanwhile
    # (reports.pending.on_policy_deleting + ingest.live_policy_ids).
    # 4-byte ids (console.compact.NarrowForeignKey): with them a row is 64 bytes, not 72.
    device = NarrowForeignKey(
        "devices.Device",
        on_delete=models.CASCADE,
        related_name="setting_statuses",
        db_index=False,
        db_constraint=False,
    )
    policy = NarrowForeignKey(
        "policies.Policy",
        on_delete=models.CASCADE,
        related_name="setting_statuses",
        db_index=False,
        db_constraint=False,
    )
    # The setting key and the value are stored once (console.interned: 8 bytes each instead of ~67 and ~52);
    # Python sees the text and the value. Sort or match by text through ``setting_key_text__text``.
    setting_key = InternedTextField()
    setting_key_text = _text_relation("setting_key")
    value = InternedJSONField(null=True, blank=True)
    # A 2-byte code; Python sees the text (migration 0016 also stores the columns in size order: 64-byte rows).
    status = CodedChoiceField(choices=Status.choices, codes=STATUS_CODES)
    error_code = models.IntegerField(null=True, blank=True)
    # The message's text lives once in StoredText (8 bytes a row here instead of ~75); read it as ``message``
    # (select_related("message_ref") for many rows).
    message_ref = models.ForeignKey(
        StoredText,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        db_column="message_key",
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    conflict_policy_ids = models.JSONField(default=list, blank=True)
    # The row's identity is (device, policy, setting key): Django's key for the row. On PostgreSQL no b-tree
    # enforces it (migration 0015): a device's rows are found through ``dss_device_policy_idx``, which PostgreSQL
    # deduplicates to one posting list a device and policy, and a device's rows are unique because their one
    # writer holds the device's row lock while it compares and writes (reports.ingest, "Who writes status rows").
    pk = models.CompositePrimaryKey("device", "policy", "setting_key")

    class Meta:
        indexes = [
            models.Index(fields=["device", "policy"], name="dss_device_policy_idx"),
            models.Index(fields=["policy", "setting_key", "status"], name="dss_policy_setting_status_idx"),
        ]
        verbose_name = "device setting status"
        verbose_name_plural = "device setting statuses"

    def __str__(self) -> str:
        return f"{self.device_id}/{self.policy_id}/{self.setting_key}: {self.status}"

    @property
    def message(self) -> str:
        return self.message_ref.text if self.message_ref_id is not None else ""

    @message.setter
    def message(self, text: str) -> None:
        """For single rows written through the ORM (check-ins write through reports.ingest)."""
        if text:
            StoredText.objects.intern([text])
        self.message_ref_id = message_key(text)

    @property
    def error_code_hex(self) -> str:
        return "" if self.error_code is None else f"0x{self.error_code & 0xFFFFFFFF:08X}"


class CheckinRecord(models.Model):
    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled check-in"
        SYNC = "sync", "Policy sync"
        HTTP = "http", "Device channel"

    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="checkin_records", db_index=False
    )
    at = models.DateTimeField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.MDE)
    duration_ms = models.PositiveIntegerField(default=0)
    policies_changed = models.PositiveIntegerField(default=0)
    settings_changed = models.PositiveIntegerField(default=0)
    # Worst status over the device's policies after this check-in ("" when no policy targets the device).
    result = models.CharField(max_length=16, blank=True, default="")
    message = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["device", "-at"], name="checkin_device_at_idx")]

    def __str__(self) -> str:
        return f"{self.device_id} {self.kind} @ {self.at:%Y-%m-%d %H:%M:%S}"


class PolicyStatusCount(models.Model):
    policy = models.ForeignKey(
        "policies.Policy", on_delete=models.CASCADE, related_name="status_counts", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "status"], name="unique_policy_status_count")
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} {self.status}: {self.count}"


class PolicySettingStatusCount(models.Model):
    policy = models.ForeignKey(
        "policies.Policy", on_delete=models.CASCADE, related_name="setting_status_counts", db_index=False
    )
    setting_key = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices)
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "setting_key", "status"], name="unique_policy_setting_status_count"
            )
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} {self.setting_key} {self.status}: {self.count}"


def new_token() -> str:
    return uuid.uuid4().hex


class PolicyGeneration(models.Model):
    """A singleton (pk=1) whose token is replaced whenever the inputs of check-in resolution change.

    A random token rather than a counter: a rolled-back transaction can never make an old cache look current.
    """

    token = models.CharField(max_length=32, default=new_token)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Policy generation {self.token}"

    @classmethod
    def bump(cls) -> None:
        from django.utils import timezone

        if not cls.objects.filter(pk=1).update(token=new_token(), changed_at=timezone.now()):
            cls.objects.update_or_create(pk=1, defaults={"token": new_token()})


class CachedReport(models.Model):
    """A Graph cachedReportConfiguration and its snapshot: the report is computed once by a Celery task
    (status inProgress -> completed, or failed with the reason), then getCachedReport pages, sorts, searches and
    groups the stored rows until ``expires_at`` (an hour after the snapshot). ``rows`` holds every column of the
    report for the rows the configuration's filter matched, in ``columns`` order."""

    class State(models.TextChoices):
        IN_PROGRESS = "inProgress", "In progress"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=200, unique=True)  # the id, lower-cased: Graph ids are case-insensitive
    config_id = models.CharField(max_length=200)
    report_name = models.CharField(max_length=100)
    filter = models.TextField(blank=True)
    select = models.JSONField(default=list)
    order_by = models.JSONField(default=list)
    metadata = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=State.choices, default=State.IN_PROGRESS)
    error = models.TextField(blank=True)
    columns = models.JSONField(default=list)  # [[name, PropertyType], …]: every column of the report
    rows = models.JSONField(default=list)
    generation = models.PositiveIntegerField(default=1)  # a re-created id makes an older task's result stale
    # The device groups of its creator's role-assignment scope (null: all devices): the snapshot holds only
    # their devices, and only a person with the same scope reads it.
    scope_groups = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.config_id


# ----------------------------------------------------------------------------------------------------------------
# Effective settings (issue 15): what each Windows device really enforces, who won, and every change of it.
# Written by reports.ingest from the check-in's effective report; only what changed is written.
# ----------------------------------------------------------------------------------------------------------------


class Intent(models.TextChoices):
    MATCHES = "matches", "Matches intent"
    DIFFERS = "differs", "Does not match intent"
    NONE = "none", "No intent"


# The codes an effective setting row stores for its intent (console.compact; never renumber them).
INTENT_CODES: dict[str, int] = {Intent.DIFFERS: 1, Intent.MATCHES: 2, Intent.NONE: 3}


class DeviceEffectiveSetting(models.Model):
    """One effective entry of a device: an AV setting, an ASR rule, or one exclusion entry (``entry``)."""

    # No database-level foreign key, as on the setting status rows and for the same reasons: a device's entries
    # are removed with its status rows (reports.ingest.remove_devices, before the device goes), and a check-in
    # writes them only for devices it holds locked (migration 0018).
    device = models.ForeignKey(
        "devices.Device",
        on_delete=models.CASCADE,
        related_name="effective_settings",
        db_index=False,
        db_constraint=False,
    )
    setting_key = InternedTextField()  # stored once (console.interned); sort by setting_key_text__text
    setting_key_text = _text_relation("setting_key")
    entry = models.CharField(max_length=500, blank=True, default="")
    # The value in effect and the policies' intended value: a few dozen distinct values over every entry, stored
    # once as the setting status rows' values are (console.interned: 8 bytes each instead of ~21; migration 0014).
    value = InternedJSONField(null=True, blank=True)
    configured_by = models.CharField(max_length=20)
    other_attempts = models.JSONField(default=list, blank=True)
    intended_value = InternedJSONField(null=True, blank=True)
    # A 2-byte code; Python sees the text (migration 0016 also stores the columns in size order: 80-byte rows).
    intent = CodedChoiceField(choices=Intent.choices, codes=INTENT_CODES, default=Intent.NONE)
    changed_at = models.DateTimeField()
    # Identified by (device, setting key, entry), kept unique and found by device as the setting status rows are
    # (migrations 0012 and 0015).
    pk = models.CompositePrimaryKey("device", "setting_key", "entry")

    class Meta:
        indexes = [
            models.Index(fields=["device"], name="des_device_idx"),
            models.Index(
                fields=["setting_key", "entry", "intent", "configured_by"], name="des_setting_intent_idx"
            ),
            # "Overridden by …" on the policy reports starts from the (few) entries another source wins against
            # the policies' intent (the query filters with the same condition, so the planner uses this index).
            models.Index(
                fields=["setting_key", "device"],
                name="des_overridden_idx",
                condition=models.Q(intent="differs") & ~models.Q(configured_by="intune"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.setting_key}/{self.entry}: {self.value} ({self.configured_by})"


# The EffectiveSettingCount row that counts the Windows devices reporting effective settings at all.
REPORTING_COUNTER = ("", "", "none", "reporting")


class EffectiveSettingCount(models.Model):
    """Devices per (setting, entry, intent, winning source), moved by deltas in the same transaction as the rows."""

    setting_key = models.CharField(max_length=255)
    entry = models.CharField(max_length=500, blank=True, default="")
    intent = models.CharField(max_length=8, choices=Intent.choices)
    configured_by = models.CharField(max_length=20)
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["setting_key", "entry", "intent", "configured_by"], name="unique_effective_count"
            )
        ]

    def __str__(self) -> str:
        return f"{self.setting_key}/{self.entry} {self.intent} {self.configured_by}: {self.count}"


class DriftEvent(models.Model):
    """A change of a device's effective value (or of the source that configures it)."""

    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="drift_events", db_index=False
    )
    setting_key = models.CharField(max_length=255)
    entry = models.CharField(max_length=500, blank=True, default="")
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    old_source = models.CharField(max_length=20, blank=True, default="")
    source = models.CharField(max_length=20)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["device", "-at"], name="drift_device_at_idx"),
            models.Index(fields=["-at"], name="drift_at_idx"),
            models.Index(fields=["setting_key", "-at"], name="drift_setting_at_idx"),
            models.Index(fields=["source", "-at"], name="drift_source_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} {self.setting_key} {self.old_value} -> {self.new_value} ({self.source})"
