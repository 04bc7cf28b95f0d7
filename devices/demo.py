"""Demo fleet: a realistic mix of devices that covers every onboarding case, plus Entra groups.

Fast at 100,000 devices: devices are built and evaluated in memory (onboarding.evaluate is pure), written with
bulk_create in batches, and their timeline rows, credentials and group memberships are bulk-created too; no query
runs per device.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, timedelta

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone

from console.compact import CodedChoiceField
from console.interned import InternedTextField, store_texts
from console.models import TenantSettings

from . import onboarding
from .models import (
    Device,
    DeviceCredential,
    Group,
    GroupMember,
    GroupPolicyObject,
    JoinType,
    LanguageMode,
    LicenseSource,
    LocalAdminChange,
    ManagedBy,
    OnboardingEvent,
    OSType,
    store_states,
)
from .rules import parse_rule
from .scheduling import first_checkin_at

WIN10 = [("10.0.19045.4291", "Windows 10 Enterprise 22H2"), ("10.0.19045.4412", "Windows 10 Pro 22H2")]
WIN11 = [
    ("10.0.22631.3447", "Windows 11 Enterprise 23H2"),
    ("10.0.22631.3593", "Windows 11 Pro 23H2"),
    ("10.0.26100.1742", "Windows 11 Enterprise 24H2"),
]
WIN11_MULTI = [("10.0.22631.3447", "Windows 11 Enterprise multi-session 23H2")]
SERVERS = [
    ("10.0.14393.6897", "Windows Server 2016 Datacenter"),
    ("10.0.17763.5696", "Windows Server 2019 Standard"),
    ("10.0.17763.5696", "Windows Server 2019 Datacenter"),
    ("10.0.20348.2402", "Windows Server 2022 Datacenter"),
    ("10.0.20348.2402", "Windows Server 2022 Standard"),
]
MACOS = [
    ("14.4.1", "macOS Sonoma"),
    ("13.6.6", "macOS Ventura"),
    ("12.7.4", "macOS Monterey"),
    ("11.7.10", "macOS Big Sur"),
]
LINUX = [
    ("22.04", "Ubuntu 22.04 LTS"),
    ("20.04", "Ubuntu 20.04 LTS"),
    ("9.3", "Red Hat Enterprise Linux 9.3"),
    ("8.9", "Red Hat Enterprise Linux 8.9"),
    ("12", "Debian 12"),
    ("15.5", "SUSE Linux Enterprise Server 15 SP5"),
    ("2", "Amazon Linux 2"),
]
SERVER_ROLES = ["SQL", "WEB", "APP", "FS", "EXCH", "RDS", "PRINT", "BKP", "HV", "CA", "IIS", "SCCM"]
LINUX_ROLES = ["web", "db", "k8s-node", "build", "cache", "proxy", "etl"]
FIRST_NAMES = ["alex", "maria", "chen", "fatima", "john", "priya", "lukas", "sofia", "kenji", "amara", "oliver",
               "noor", "diego", "hanna", "ravi", "elena", "tom", "yara", "ivan", "grace"]  # fmt: skip

DEMO_GROUPS = [
    # (name, description, membership, kind, rule)
    ("All MDE managed devices", "Devices managed by security management for Microsoft Defender for Endpoint.",
     "dynamic", "device", '(device.managementType -eq "MicrosoftSense")'),
    ("Windows Servers", "Every Windows Server device object.", "dynamic", "device",
     '(device.deviceOSType -eq "Windows Server")'),
    ("Windows 11 workstations", "Windows 11 clients (build 22000 and later).", "dynamic", "device",
     '(device.deviceOSType -eq "Windows") -and (device.deviceOSVersion -startsWith "10.0.2")'),
    ("macOS and Linux", "Non-Windows devices onboarded to Defender for Endpoint.", "dynamic", "device",
     '(device.deviceOSType -in ["macOS", "Linux"])'),
    ("MDE-joined devices (legacy labels)", "Devices carrying the MDEJoined or MDEManaged system label.",
     "dynamic", "device", '(device.systemLabels -contains "MDEJoined") or (device.systemLabels -contains "MDEManaged")'),
    ("MDE pilot - Servers", "Servers in the Windows Server pilot (tagged MDE-Management).", "assigned", "device", ""),
    ("MDE pilot - Workstations", "First workstations to receive MDE security policies.", "assigned", "device", ""),
    ("SQL Servers", "Database servers owned by the data platform team.", "assigned", "device", ""),
    ("Security Operations", "SOC analysts (a user group: not targetable for MDE security management).",
     "assigned", "user", ""),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------- fast writes


def _converter(field, now):
    """How one field's Python value becomes its database value, without Django's per-value preparation (the
    bottleneck of bulk_create at this size); plain types pass through untouched."""
    if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
        fixed = field.get_db_prep_save(now, connection)
        return lambda value: fixed
    native = connection.vendor == "postgresql"
    if isinstance(field, models.UUIDField):
        return (lambda v: v) if native else (lambda v: None if v is None else v.hex)
    if isinstance(field, models.DateTimeField):
        if native:
            return lambda v: v
        return lambda v: None if v is None else str(v.astimezone(UTC).replace(tzinfo=None))
    if isinstance(field, models.JSONField):
        return lambda v: None if v is None else json.dumps(v)
    if isinstance(field, InternedTextField):  # the key; the caller stores the texts first (store_texts)
        return field.get_prep_value
    if isinstance(field, CodedChoiceField):  # the choice's code
        return field.code_of
    if isinstance(field, models.DateField):
        return lambda v: None if v is None else field.get_db_prep_save(v, connection)
    return lambda value: value


def db_value(model, field_name: str, value):
    return _converter(model._meta.get_field(field_name), timezone.now())(value)


def model_rows(model, objs, *, with_pk: bool = False) -> tuple[list[str], Iterator[tuple]]:
    """Columns and database-ready rows of model instances (auto_now fields get the current time)."""
    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    convert = [(f.attname, _converter(f, now)) for f in fields]
    rows = (tuple(conv(getattr(obj, attname)) for attname, conv in convert) for obj in objs)
    return [f.column for f in fields], rows


def fast_insert(model, columns: list[str], rows: Iterable[tuple]) -> None:
    """Insert database-ready rows in one pass: COPY on PostgreSQL, executemany on SQLite. No signals, no model
    instances, no returned ids."""
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 5000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def _clear() -> None:
    """Remove the previous demo fleet quickly: children first with set-based deletes, then the devices."""
    with transaction.atomic():
        Group.objects.all().delete()
        if not Device.objects.exists():
            return
        for rel in Device._meta.related_objects:
            if rel.many_to_many or rel.field.model is Device:
                continue
            child = rel.related_model._base_manager.filter(**{f"{rel.field.name}__isnull": False})
            if rel.on_delete is models.SET_NULL:
                child.update(**{rel.field.name: None})
            else:
                child.delete()  # CASCADE children (and their own children) go with set-based deletes
        Device.objects.all()._raw_delete(Device.objects.db)


class _Names:
    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()

    def next(self, prefix: str, width: int = 4) -> str:
        self.counters[prefix] += 1
        return f"{prefix}{self.counters[prefix]:0{width}d}"

    def claim(self, name: str) -> None:
        """A hand-picked name (SRV-SQL-01): later generated names of its prefix continue after it."""
        prefix = name.rstrip("0123456789")
        number = name[len(prefix) :]
        if number:
            self.counters[prefix] = max(self.counters[prefix], int(number))


def _device(rng: random.Random, names: _Names, own_tenant, kind: str, **facts) -> Device:
    """One device of `kind` ("client", "server", "macos", "linux") with realistic random facts, then overrides."""
    base: dict = {"tenant_id": own_tenant, "tamper_protection": rng.random() < 0.93}
    if kind == "client":
        vdi = facts.get("is_non_persistent_vdi", rng.random() < 0.02)
        version, edition = rng.choice(WIN11_MULTI if vdi else (WIN11 if rng.random() < 0.6 else WIN10))
        prefix = "CONTOSO-VDI-" if vdi else ("CONTOSO-LT-" if rng.random() < 0.45 else "CONTOSO-WS-")
        base |= {
            "display_name": names.next(prefix),
            "os": OSType.WINDOWS,
            "os_version": version,
            "os_edition": edition,
        }
        base["join_type"] = rng.choices(
            [JoinType.ENTRA_JOINED, JoinType.HYBRID_JOINED, JoinType.DOMAIN_JOINED, JoinType.ENTRA_REGISTERED,
             JoinType.WORKGROUP],
            weights=[35, 25, 20, 5, 15],
        )[0]  # fmt: skip
        base["intune_enrolled"] = base["join_type"] in (JoinType.ENTRA_JOINED, JoinType.HYBRID_JOINED) and (
            rng.random() < 0.4
        )
        base["configmgr_client"] = base["join_type"] in (JoinType.DOMAIN_JOINED, JoinType.HYBRID_JOINED) and (
            rng.random() < 0.3
        )
        base["in_sync_scope"] = rng.random() < 0.9
        base["language_mode"] = LanguageMode.CONSTRAINED if rng.random() < 0.02 else LanguageMode.FULL
        base["is_non_persistent_vdi"] = vdi
        base["mde_onboarded"] = rng.random() > 0.02
    elif kind == "server":
        version, edition = rng.choice(SERVERS)
        role = rng.choice(SERVER_ROLES)
        base |= {"display_name": names.next(f"SRV-{role}-", 2), "os": OSType.WINDOWS_SERVER, "os_version": version,
                 "os_edition": edition}  # fmt: skip
        base["join_type"] = rng.choices(
            [JoinType.DOMAIN_JOINED, JoinType.HYBRID_JOINED, JoinType.WORKGROUP], weights=[65, 15, 20]
        )[0]
        base["configmgr_client"] = base["join_type"] != JoinType.WORKGROUP and rng.random() < 0.25
        base["in_sync_scope"] = rng.random() < 0.85
        base["is_server_core"] = rng.random() < 0.07
        base["is_domain_controller"] = False
        base["onboarded_via_mdc"] = rng.random() < 0.15
        base["license_source"] = (
            LicenseSource.SERVERS_ONLY
            if base["onboarded_via_mdc"] and rng.random() < 0.5
            else LicenseSource.MDE
        )
        base["tags"] = Device.pack(["MDE-Management"] if rng.random() < 0.4 else [])
    elif kind == "macos":
        version, edition = rng.choice(MACOS)
        base |= {"display_name": names.next(f"mac-{rng.choice(FIRST_NAMES)}-", 3), "os": OSType.MACOS,
                 "os_version": version, "os_edition": edition}  # fmt: skip
        base["join_type"] = JoinType.ENTRA_REGISTERED if rng.random() < 0.4 else JoinType.WORKGROUP
        base["intune_enrolled"] = base["join_type"] == JoinType.ENTRA_REGISTERED and rng.random() < 0.6
        base["tamper_protection"] = False
    else:
        version, edition = rng.choice(LINUX)
        base |= {"display_name": names.next(f"lnx-{rng.choice(LINUX_ROLES)}-", 2), "os": OSType.LINUX,
                 "os_version": version, "os_edition": edition, "join_type": JoinType.WORKGROUP,
                 "tamper_protection": False}  # fmt: skip
    if "display_name" in facts:
        names.claim(facts["display_name"])
    base.update(facts)
    return Device(**base)


def _coverage(rng: random.Random, names: _Names, tenant) -> list[Device]:
    """One device for every case of the onboarding flow, with names an admin recognises."""
    tid = tenant.tenant_id
    c = [
        ("client", {"display_name": "CONTOSO-WS-0001", "join_type": JoinType.ENTRA_JOINED}),  # existing trust
        ("client", {"join_type": JoinType.HYBRID_JOINED, "configmgr_client": False}),  # existing hybrid
        ("client", {"join_type": JoinType.DOMAIN_JOINED, "in_sync_scope": True}),  # hybrid join
        ("client", {"join_type": JoinType.DOMAIN_JOINED, "in_sync_scope": False}),  # 10
        ("client", {"join_type": JoinType.WORKGROUP}),  # synthetic + MDEJoined
        ("client", {"join_type": JoinType.ENTRA_JOINED, "intune_enrolled": True}),  # Intune
        ("client", {"join_type": JoinType.HYBRID_JOINED, "intune_enrolled": True, "configmgr_client": True}),
        ("client", {"join_type": JoinType.DOMAIN_JOINED, "configmgr_client": True}),  # ConfigMgr
        ("client", {"is_non_persistent_vdi": True, "join_type": JoinType.HYBRID_JOINED}),  # VDI
        ("client", {"language_mode": LanguageMode.CONSTRAINED, "join_type": JoinType.ENTRA_JOINED}),
        ("client", {"tenant_id": uuid.UUID("8f2c3a1e-5b7d-4e0a-9c61-2d4b8e7f1a03"), "join_type": JoinType.WORKGROUP}),
        ("client", {"mde_onboarded": False, "join_type": JoinType.ENTRA_JOINED}),
        ("server", {"display_name": "SRV-SQL-01", "join_type": JoinType.DOMAIN_JOINED, "in_sync_scope": True,
                    "tags": Device.pack(["MDE-Management"]), "os_version": "10.0.20348.2402",
                    "os_edition": "Windows Server 2022 Datacenter"}),
        ("server", {"display_name": "SRV-WEB-01", "join_type": JoinType.DOMAIN_JOINED, "tags": ""}),  # pilot, untagged
        ("server", {"display_name": "SRV-APP-01", "join_type": JoinType.HYBRID_JOINED, "tags": "",
                    "configmgr_client": False, "os_version": "10.0.17763.5696",
                    "os_edition": "Windows Server 2019 Standard"}),
        ("server", {"display_name": "SRV-CORE-01", "is_server_core": True, "tags": Device.pack(["MDE-Management"]),
                    "join_type": JoinType.DOMAIN_JOINED}),
        ("server", {"display_name": "SRV-DC-01", "is_domain_controller": True, "join_type": JoinType.DOMAIN_JOINED,
                    "tags": Device.pack(["MDE-Management"])}),
        ("server", {"display_name": "SRV-AZ-01", "onboarded_via_mdc": True, "license_source": LicenseSource.MDE,
                    "tags": Device.pack(["MDE-Management"]), "join_type": JoinType.WORKGROUP}),
        ("server", {"display_name": "SRV-AZ-02", "onboarded_via_mdc": False,
                    "license_source": LicenseSource.SERVERS_ONLY, "tags": Device.pack(["MDE-Management"]),
                    "join_type": JoinType.WORKGROUP}),
        ("server", {"display_name": "SRV-FS-01", "join_type": JoinType.WORKGROUP,
                    "tags": Device.pack(["MDE-Management"]), "os_version": "10.0.14393.6897",
                    "os_edition": "Windows Server 2016 Datacenter"}),
        ("macos", {"display_name": "mac-alex-001", "join_type": JoinType.ENTRA_REGISTERED, "intune_enrolled": False}),
        ("macos", {"display_name": "mac-maria-001", "join_type": JoinType.WORKGROUP}),
        ("macos", {"display_name": "mac-chen-001", "join_type": JoinType.ENTRA_REGISTERED, "intune_enrolled": True}),
        # A local `mdatp config` change and a locally added exclusion: the Linux baseline's exclusionsMergePolicy
        # admin_only drops the exclusion; the diagnostic level stays local (no policy sets it).
        ("linux", {"display_name": "lnx-web-01", "agent_state": {"preferences": {}, "local": {
            "cloudService.diagnosticLevel": "required",
            "antivirusEngine.exclusions": [{"$type": "excludedPath", "path": "/home/deploy/tmp", "isDirectory": True}],
        }}}),
    ]  # fmt: skip
    defaults = {
        "client": {"intune_enrolled": False, "configmgr_client": False, "is_non_persistent_vdi": False,
                   "language_mode": LanguageMode.FULL, "mde_onboarded": True, "in_sync_scope": True},
        "server": {"is_server_core": False, "is_domain_controller": False, "onboarded_via_mdc": False,
                   "license_source": LicenseSource.MDE, "configmgr_client": False, "in_sync_scope": True},
    }  # fmt: skip
    out = []
    for kind, facts in c:
        merged = {**defaults.get(kind, {}), **facts}
        out.append(_device(rng, names, tid, kind, **merged))
    return out


def _random_fleet(rng: random.Random, names: _Names, tenant, count: int) -> list[Device]:
    kinds = rng.choices(["client", "server", "macos", "linux"], weights=[58, 17, 15, 10], k=count)
    fleet = []
    for kind in kinds:
        device = _device(rng, names, tenant.tenant_id, kind)
        if kind == "server" and rng.random() < 0.03:
            device.is_domain_controller = True
            device.display_name = names.next("SRV-DC-", 2)
            device.join_type = JoinType.DOMAIN_JOINED
        if rng.random() < 0.003:
            device.tenant_id = uuid.UUID(
                "8f2c3a1e-5b7d-4e0a-9c61-2d4b8e7f1a03"
            )  # onboarded with another tenant
        fleet.append(device)
    return fleet


def seed(stdout, devices: int = 300, seed: int = 42, **_) -> None:
    started = time.monotonic()
    rng = random.Random(seed)
    tenant = TenantSettings.load()
    now = timezone.now()
    names = _Names()

    _clear()

    fleet = _coverage(rng, names, tenant)[:devices]
    fleet += _random_fleet(rng, names, tenant, max(0, devices - len(fleet)))
    _place_in_active_directory(rng, fleet)

    # Onboarding, decided in memory.
    outcomes = []
    for device in fleet:
        outcome = onboarding.evaluate(device, tenant)
        for name, value in outcome.state().items():
            setattr(device, name, value)
        if outcome.steps:
            device.management_changed_at = now - timedelta(minutes=rng.uniform(5, 60 * 24 * 14))
        if outcome.managed:
            device.enrolled_at = device.management_changed_at
            device.next_checkin_at = first_checkin_at(now, rng)
        elif outcome.managed_by in onboarding.INTUNE_CHANNEL:
            device.last_checkin_at = now - timedelta(minutes=rng.uniform(1, 60 * 8))
            device.next_checkin_at = first_checkin_at(now, rng)  # the Intune channel's own cadence
        outcomes.append(outcome)

    first_pk = (Device.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    for offset, device in enumerate(fleet):
        device.pk = first_pk + offset
    with transaction.atomic():
        store_texts({device.enrollment_message for device in fleet})
        store_states(device.agent_state for device in fleet)
        fast_insert(Device, *model_rows(Device, fleet, with_pk=True))
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Device]):
                cursor.execute(sql)

    at = db_value(OnboardingEvent, "at", now)
    when = _converter(models.DateTimeField(), now)  # a plain datetime column: the step's own time
    message_of, step_of, outcome_of = (
        _converter(OnboardingEvent._meta.get_field(name), now) for name in ("message", "step", "outcome")
    )
    events = [
        (
            device.pk,
            when(device.management_changed_at or now),
            step_of(s.name),
            outcome_of(s.outcome),
            message_of(s.message),
        )
        for device, outcome in zip(fleet, outcomes, strict=True)
        for s in outcome.steps
    ]
    creds = [
        (device.pk, secrets.token_hex(8), hashlib.sha256(secrets.token_bytes(24)).hexdigest(), at, None)
        for device, outcome in zip(fleet, outcomes, strict=True)
        if outcome.managed
    ]
    with transaction.atomic():
        store_texts({text for outcome in outcomes for s in outcome.steps for text in (s.message, s.name)})
        fast_insert(OnboardingEvent, ["device_id", "at", "step", "outcome", "message"], events)
        fast_insert(
            DeviceCredential, ["device_id", "key_id", "secret_hash", "created_at", "revoked_at"], creds
        )

    # Groups, with membership computed in memory.
    groups = {}
    for name, description, membership_type, kind, rule in DEMO_GROUPS:
        groups[name] = Group.objects.create(
            name=name,
            description=description,
            membership_type=membership_type,
            object_kind=kind,
            membership_rule=rule,
            rule_evaluated_at=now if rule else None,
        )
    members: dict[str, list[int]] = {name: [] for name in groups}
    rules = {name: parse_rule(rule) for name, _, _, _, rule in DEMO_GROUPS if rule}
    for device in fleet:
        props = device.entra_properties()
        for name, rule in rules.items():
            if rule.matches(props):
                members[name].append(device.pk)
    servers = [d for d in fleet if d.os == OSType.WINDOWS_SERVER]
    members["MDE pilot - Servers"] = [d.pk for d in servers if d.has_tag("MDE-Management")][:60]
    members["MDE pilot - Workstations"] = [
        d.pk for d in fleet if d.os == OSType.WINDOWS and d.is_mde_managed
    ][:25]
    members["SQL Servers"] = [d.pk for d in servers if d.display_name.startswith("SRV-SQL-")][:40]
    with transaction.atomic():
        fast_insert(
            GroupMember,
            ["group_id", "device_id", "added_at"],
            ((groups[name].pk, pk, at) for name, ids in members.items() for pk in ids),
        )
    for name, ids in members.items():
        Group.objects.filter(pk=groups[name].pk).update(member_count=len(ids))

    gpos, local = _management_sources(rng, fleet, now)

    managed_labels = dict(ManagedBy.choices)
    by_managed = Counter(managed_labels[d.managed_by] for d in fleet)
    by_status = Counter(d.enrollment_status or "Not applicable" for d in fleet)
    by_os = Counter(dict(OSType.choices)[d.os] for d in fleet)
    stdout.write(
        f"Devices: {len(fleet):,} in {time.monotonic() - started:.1f}s ("
        + ", ".join(f"{k} {v:,}" for k, v in by_os.most_common())
        + ")"
    )
    stdout.write("  Managed by: " + ", ".join(f"{k} {v:,}" for k, v in by_managed.most_common()))
    stdout.write("  MDE Enrollment status: " + ", ".join(f"{k} {v:,}" for k, v in by_status.most_common()))
    stdout.write(f"  Onboarding timeline rows: {len(events):,}; device credentials: {len(creds):,}")
    stdout.write(f"  Group Policy objects: {gpos}; local admin changes: {local:,}")
    stdout.write("  Groups: " + ", ".join(f"{name} ({len(members[name]):,})" for name in groups))


# ---- other management sources (issue 15): Active Directory, Group Policy, local admin changes --------------

DOMAIN = "contoso.com"
OU_SERVERS = "OU=Servers,DC=contoso,DC=com"
OU_WEB = "OU=Web," + OU_SERVERS
OU_APP = "OU=App," + OU_SERVERS
OU_SQL = "OU=SQL," + OU_SERVERS
OU_WORKSTATIONS = "OU=Workstations,DC=contoso,DC=com"
OU_DEVELOPERS = "OU=Developers," + OU_WORKSTATIONS
OU_ENGINEERING = "OU=Engineering," + OU_DEVELOPERS
OU_CONTRACTORS = "OU=Contractors," + OU_DEVELOPERS
_P = "device_vendor_msft_policy_config_defender_"
PSEXEC_RULE = _P + "attacksurfacereductionrules_blockprocesscreationsfrompsexecandwmicommands"
PSEXEC_AUDIT = "d1e49aac-8f56-4280-b9ba-993a6d77406c=2"
RTP = _P + "allowrealtimemonitoring"
EXCLUDED_PATHS = _P + "excludedpaths"
EXCLUDED_EXTENSIONS = _P + "excludedextensions"
DISABLE_LOCAL_ADMIN_MERGE = "device_vendor_msft_defender_configuration_disablelocaladminmerge"
DEMO_GPOS = ("Contoso Web servers - PSExec rule in audit", "Contoso Contractors - no local exclusions")


def _place_in_active_directory(rng: random.Random, fleet: list[Device]) -> None:
    """Domain and hybrid-joined Windows devices get the contoso.com domain and an OU (servers by role,
    some laptops in the developers' OUs), so Group Policy links have something to apply to."""
    for device in fleet:
        if device.join_type not in (JoinType.DOMAIN_JOINED, JoinType.HYBRID_JOINED):
            continue
        if device.os == OSType.WINDOWS_SERVER:
            device.ad_domain = DOMAIN
            if device.display_name.startswith("SRV-SQL-"):
                device.ad_ou = OU_SQL
                device.tamper_protection = (
                    True  # the data platform servers were in the Tamper Protection rollout
                )
            else:
                device.ad_ou = OU_WEB if rng.random() < 0.5 else OU_APP
        elif device.os == OSType.WINDOWS:
            device.ad_domain = DOMAIN
            developer = device.display_name.startswith("CONTOSO-LT-") and rng.random() < 0.4
            if developer:
                device.ad_ou = OU_CONTRACTORS if rng.random() < 0.35 else OU_ENGINEERING
            else:
                device.ad_ou = OU_WORKSTATIONS


def _management_sources(rng: random.Random, fleet: list[Device], now) -> tuple[int, int]:
    """Realistic overrides for the effective settings reports: a GPO that audits the PSExec/WMI ASR rule on the
    web servers (our server policy blocks it), developers' local exclusions (blocked by DisableLocalAdminMerge
    for contractors), and local attempts to turn real-time protection off that Tamper Protection stops."""
    GroupPolicyObject.objects.filter(name__in=DEMO_GPOS).delete()
    GroupPolicyObject.objects.create(
        name=DEMO_GPOS[0],
        description="Domain GPO left from an application rollout: PSExec and WMI process creation only audited.",
        settings={PSEXEC_RULE: PSEXEC_AUDIT},
        link_ou=OU_WEB,
        link_order=1,
    )
    GroupPolicyObject.objects.create(
        name=DEMO_GPOS[1],
        description="Contractor laptops: exclusions added by local admins do not count (DisableLocalAdminMerge).",
        settings={DISABLE_LOCAL_ADMIN_MERGE: 1},
        link_ou=OU_CONTRACTORS,
        link_order=1,
    )
    changes: list[LocalAdminChange] = []
    for device in fleet:
        if device.ad_ou in (OU_ENGINEERING, OU_CONTRACTORS):
            at = now - timedelta(days=rng.uniform(1, 20))
            admin = f"CONTOSO\\{device.display_name.lower()}-admin"
            changes.append(LocalAdminChange(device=device, setting_id=EXCLUDED_PATHS, operation="add",
                                            value=["C:\\src", "C:\\Users\\dev\\.nuget\\packages"], actor=admin, at=at))  # fmt: skip
            if rng.random() < 0.5:
                changes.append(LocalAdminChange(device=device, setting_id=EXCLUDED_EXTENSIONS, operation="add",
                                                value=[".pdb"], actor=admin, at=at + timedelta(minutes=3)))  # fmt: skip
        elif (
            device.tamper_protection
            and device.is_mde_managed
            and (
                device.display_name.startswith("SRV-SQL-")
                or (device.os == OSType.WINDOWS and rng.random() < 0.03)
            )
        ):
            # A local admin tries to turn real-time protection off. On SQL servers, where the two AV policies
            # conflict so no policy value is applied, Tamper Protection is what stops it; on workstations the
            # baseline policy wins and the attempt is listed beside it.
            changes.append(LocalAdminChange(device=device, setting_id=RTP, operation="set", value=0,
                                            actor="CONTOSO\\helpdesk-tech",
                                            at=now - timedelta(hours=rng.uniform(1, 72))))  # fmt: skip
    LocalAdminChange.objects.bulk_create(changes, batch_size=2000)
    return len(DEMO_GPOS), len(changes)
