"""Small builders for check-in tests: a tenant, devices, groups and policies (import, don't collect)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

P = "device_vendor_msft_policy_config_defender_"
C = "device_vendor_msft_defender_configuration_"
REALTIME = P + "allowrealtimemonitoring"
BEHAVIOR = P + "allowbehaviormonitoring"
CLOUD = P + "allowcloudprotection"
ONACCESS = P + "allowonaccessprotection"
LOCALADMINMERGE = C + "disablelocaladminmerge"
IPS = P + "allowintrusionpreventionsystem"
PUA = P + "puaprotection"
EXCLUDED_PATHS = P + "excludedpaths"
EXCLUDED_EXTENSIONS = P + "excludedextensions"
SCRIPT_SCANNING = P + "allowscriptscanning"
AV = "Microsoft Defender Antivirus"
AV_EXCLUSIONS = "Microsoft Defender Antivirus exclusions"
WSE = "Windows Security Experience"


def tenant():
    from console.models import TenantSettings

    return TenantSettings.load()


def device(name: str, *, os: str = "windows", mde: bool = True, intune: bool = False, tamper: bool = True,
           groups=(), due: bool = True, **fields):  # fmt: skip
    from devices.models import Device, GroupMember, ManagedBy

    managed_by = ManagedBy.INTUNE if intune else (ManagedBy.MDE if mde else ManagedBy.NONE)
    obj = Device.objects.create(
        display_name=name,
        os=os,
        os_version=fields.pop("os_version", "10.0.22631"),
        tenant_id=fields.pop("tenant_id", tenant().tenant_id),
        intune_enrolled=intune,
        managed_by=managed_by,
        management_type="MicrosoftSense" if mde and not intune else "",
        tamper_protection=tamper,
        next_checkin_at=timezone.now() - timedelta(seconds=5) if due else None,
        **fields,
    )
    for group in groups:
        GroupMember.objects.create(group=group, device=obj)
    return obj


def group(name: str, devices=()):
    from devices.models import Group, GroupMember

    obj = Group.objects.create(name=name)
    for d in devices:
        GroupMember.objects.create(group=obj, device=d)
    return obj


def policy(name: str, values: dict, *, profile: str = AV, include=(), exclude=(), platform: str = "windows",
           filter=None, filter_mode: str = ""):  # fmt: skip
    from policies.catalog import get_catalog
    from policies.graph import to_graph_settings
    from policies.models import Policy, PolicyAssignment

    catalog = get_catalog()
    prof = catalog.profile(profile)
    obj = Policy.objects.create(
        name=name,
        policy_type=prof.policy_type,
        profile=prof.name,
        platform=platform,
        template_id=prof.template_id,
        template_family=prof.template_family,
        settings=to_graph_settings(catalog, values),
        values=values,
    )
    for g in include:
        PolicyAssignment.objects.create(
            policy=obj, group=g, intent="include", filter=filter, filter_mode=filter_mode
        )
    for g in exclude:
        PolicyAssignment.objects.create(policy=obj, group=g, intent="exclude")
    return obj


def make_due(*devices) -> None:
    from devices.models import Device

    Device.objects.filter(pk__in=[d.pk for d in devices]).update(
        next_checkin_at=timezone.now() - timedelta(seconds=1), checkin_lease_until=None
    )


def checkin(*devices, fault_rate: float = 0.0, kind: str = "scheduled"):
    """Check these devices in now, in-process, through the real claim + channel path."""
    from devices.checkins import claim_devices, run_checkins

    ids, lease = claim_devices([d.pk for d in devices])
    assert ids, "the devices are held by another check-in"
    return run_checkins(ids, kind=kind, lease=lease, fault_rate=fault_rate)


def statuses(device) -> dict:
    """{policy name: status} of a device."""
    from reports.models import DevicePolicyStatus

    return {
        r.policy.name: r.status
        for r in DevicePolicyStatus.objects.filter(device=device).select_related("policy")
    }


def setting_rows(device) -> dict:
    """{(policy name, setting key): row} of a device."""
    from reports.models import DeviceSettingStatus

    return {
        (r.policy.name, r.setting_key): r
        for r in DeviceSettingStatus.objects.filter(device=device).select_related("policy")
    }


def bulk_fleet(n: int):
    """``n`` MDE devices due now in one group "Everyone", with an Antivirus and an exclusions policy assigned."""
    from devices.models import Device, GroupMember

    g = group("Everyone")
    due = timezone.now() - timedelta(seconds=5)
    devices = Device.objects.bulk_create(
        Device(
            display_name=f"PC-{i:05d}",
            os="windows",
            managed_by="mde",
            management_type="MicrosoftSense",
            tenant_id=tenant().tenant_id,
            next_checkin_at=due,
        )  # fmt: skip
        for i in range(n)
    )
    GroupMember.objects.bulk_create(GroupMember(group=g, device=d) for d in devices)
    policy("AV", {PUA: 1, REALTIME: 1, BEHAVIOR: 0}, include=[g])
    policy("Exclusions", {EXCLUDED_PATHS: ["C:\\Build"]}, profile=AV_EXCLUSIONS, include=[g])
    return devices
