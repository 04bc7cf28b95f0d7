"""Demo policies: a realistic Endpoint security set with overlaps, so conflicts and merges exist.

Everything goes through ``policies.services`` (validated against the catalog, versioned, audited). Groups come
from devices/demo.py and are looked up by name; a missing group only means that assignment is skipped. Running it
again converges: existing demo policies keep their settings and get their assignments re-pointed at the groups
(devices/demo.py recreates them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from console.audit import Actor, acting_as
from devices.models import Group
from policies import services
from policies.catalog import FIREWALL_RULE_GROUP_ID, asr_rules, get_catalog
from policies.models import AssignmentFilter, Policy

AV = "Microsoft Defender Antivirus"
AV_EXCLUSIONS = "Microsoft Defender Antivirus exclusions"
WSE = "Windows Security Experience"
FIREWALL = "Microsoft Defender Firewall"
FIREWALL_RULES = "Microsoft Defender Firewall Rules"
EDR = "Endpoint detection and response"
ASR = "Attack Surface Reduction Rules"
LINUX_AV = "Microsoft Defender Antivirus (Linux)"
LINUX_AV_EXCLUSIONS = "Microsoft Defender Antivirus exclusions (Linux)"
LINUX_EDR = "Endpoint detection and response (Linux)"
LINUX_GLOBAL = "Microsoft Defender Global Exclusions (AV+EDR) (Linux)"
MAC_AV = "Microsoft Defender Antivirus (macOS)"
MAC_EDR = "Endpoint detection and response (macOS)"
LX = "linux_mdatp_managed_"
MAC = "com.apple.managedclient.preferences_"

D = "device_vendor_msft_policy_config_defender_"
DC = "device_vendor_msft_defender_configuration_"
FW = "vendor_msft_firewall_mdmstore_"
R = FIREWALL_RULE_GROUP_ID + "_"

# Group names of devices/demo.py, with fallbacks (first existing name wins).
ALL_MDE = ("All MDE managed devices",)
SERVERS = ("Windows Servers",)
SQL = ("SQL Servers",)
BUILD = ("Build agents", "Build servers", "Windows Servers")  # overlaps SQL Servers -> exclusions merge
WORKSTATIONS = ("Windows 11 workstations",)
PILOT_WORKSTATIONS = ("MDE pilot - Workstations",)
PILOT_SERVERS = ("MDE pilot - Servers",)
MAC_LINUX = ("macOS and Linux",)

DEMO_FILTER = ("Windows 11 24H2 devices", '(device.osVersion -startsWith "10.0.26100")')


@dataclass
class Spec:
    profile: str
    name: str
    description: str
    values: dict[str, Any]
    include: list[tuple[str, ...]] = field(default_factory=list)
    exclude: list[tuple[str, ...]] = field(default_factory=list)
    use_filter: str = ""  # "include" | "exclude"
    platform: str = "windows"


def _rule(name: str, direction: str, action: str, protocol: int, **fields: Any) -> dict[str, Any]:
    """One firewall rule (``action`` is "allow" or "block"); ``fields`` are its other settings by short name."""
    action_type = {"block": "0", "allow": "1"}[action]
    rule = {"name": name, "direction": direction, "action_type": action_type, "protocol": protocol, **fields}
    return {R + key: value for key, value in rule.items()}


TCP, UDP, ICMP = 6, 17, 1
ADMINS = ["10.10.0.0/16"]
TEAMS = r"%LocalAppData%\Microsoft\Teams\current\Teams.exe"
RDP_FROM_ADMINS = _rule("Allow RDP from admin network", "in", "allow", TCP, localportranges=["3389"],
                        remoteaddressranges=ADMINS, enabled="1")  # fmt: skip
WINRM_FROM_ADMINS = _rule("Allow WinRM from admin network", "in", "allow", TCP, localportranges=["5985-5986"],
                          remoteaddressranges=ADMINS)  # fmt: skip
ICMP_ECHO = _rule(
    "Allow ICMP echo", "in", "allow", ICMP, icmptypesandcodes=["8:*"], remoteaddressranges=["LocalSubnet"]
)
# The server and the workstation policies share this rule (the same definition, so it merges on a device).
TELNET_OUT = _rule("Block outbound Telnet", "out", "block", TCP, remoteportranges=["23"])
NETBIOS_IN = _rule("Block SMBv1 NetBIOS inbound", "in", "block", UDP, localportranges=["137-138"])
TEAMS_MEDIA_OUT = _rule(
    "Allow Teams media", "out", "allow", UDP, remoteportranges=["3478-3481"], app_filepath=TEAMS
)


def _asr(mode: str, names: list[str], exclusions: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """ASR rule values in ``mode`` (Off/Block/Audit/Warn) for the rules whose display name starts with a name."""
    values: dict[str, Any] = {}
    for rule, exclusion in asr_rules(get_catalog()):
        if not any(rule.display_name.lower().startswith(n.lower()) for n in names):
            continue
        option = next(o for o in rule.options if o.label == mode)
        values[rule.id] = option.value
        for prefix, paths in (exclusions or {}).items():
            if exclusion is not None and rule.display_name.lower().startswith(prefix.lower()):
                values[exclusion.id] = paths
    return values


# The standard-protection ASR rules both the pilot (audit) and the workstations (block) policies set.
STANDARD_ASR = ["Block abuse of exploited", "Block credential stealing", "Block persistence through WMI"]


def specs() -> list[Spec]:
    return [
        Spec(
            AV,
            "Antivirus baseline - All MDE devices",
            "Contoso's Defender Antivirus baseline: real-time and cloud protection on, PUA blocked, daily quick scan.",
            {
                D + "allowrealtimemonitoring": 1,
                D + "allowcloudprotection": 1,
                D + "cloudblocklevel": 2,
                D + "cloudextendedtimeout": 30,
                D + "allowbehaviormonitoring": 1,
                D + "allowioavprotection": 1,
                D + "allowscriptscanning": 1,
                D + "allowarchivescanning": 1,
                D + "puaprotection": 1,
                D + "enablenetworkprotection": 1,
                D + "submitsamplesconsent": 1,
                D + "signatureupdateinterval": 4,
                D + "schedulescanday": 0,
                D + "schedulequickscantime": 720,
                D + "threatseveritydefaultaction_highseveritythreats": "4=2",
                D + "threatseveritydefaultaction_severethreats": "5=3",
                DC + "disablelocaladminmerge": 1,
            },
            include=[ALL_MDE],
        ),
        Spec(
            AV,
            "Antivirus - SQL Servers performance",
            "Real-time monitoring off on database servers (requested by the data platform team). Overlaps the "
            "baseline, so Allow Realtime Monitoring is in conflict on these servers.",
            {D + "allowrealtimemonitoring": 0, D + "avgcpuloadfactor": 30, D + "enablelowcpupriority": 1},
            include=[SQL],
        ),
        Spec(
            AV_EXCLUSIONS,
            "AV exclusions - SQL Servers",
            "SQL Server data, log and backup files, per Microsoft's SQL Server antivirus guidance.",
            {
                D + "excludedpaths": [
                    r"%ProgramFiles%\Microsoft SQL Server\MSSQL16.MSSQLSERVER\MSSQL\DATA",
                    r"D:\SQLData",
                    r"E:\SQLLogs",
                    r"F:\SQLBackup",
                ],
                D + "excludedextensions": [".mdf", ".ldf", ".ndf", ".bak", ".trn"],
                D + "excludedprocesses": [
                    "sqlservr.exe",
                    "sqlagent.exe",
                    r"C:\Program Files\Microsoft SQL Server\MSSQL16.MSSQLSERVER\MSSQL\Binn\sqlwriter.exe",
                ],
            },
            include=[SQL],
        ),
        Spec(
            AV_EXCLUSIONS,
            "AV exclusions - Build agents",
            "Build working folders and compilers. Overlaps the SQL Servers exclusions: the lists merge on the device.",
            {
                D + "excludedpaths": [r"C:\BuildAgent\_work", r"D:\NuGetCache"],
                D + "excludedextensions": [".obj", ".pdb", ".ldf"],
                D + "excludedprocesses": ["MSBuild.exe", "cl.exe", "link.exe"],
            },
            include=[BUILD],
        ),
        Spec(
            WSE,
            "Windows Security - Contoso branding",
            "Contoso contact details in Windows Security. This profile applies only to Intune-enrolled devices.",
            {
                "device_vendor_msft_policy_config_windowsdefendersecuritycenter_companyname": "Contoso IT",
                "device_vendor_msft_policy_config_windowsdefendersecuritycenter_email": "security@contoso.com",
                "device_vendor_msft_policy_config_windowsdefendersecuritycenter_phone": "+1 425 555 0100",
                "device_vendor_msft_policy_config_windowsdefendersecuritycenter_url": "https://aka.contoso.com/security",
                "device_vendor_msft_policy_config_windowsdefendersecuritycenter_enableinappcustomization": "1",
            },
            include=[WORKSTATIONS],
        ),
        Spec(
            FIREWALL,
            "Firewall - Baseline",
            "Firewall on for every network profile; inbound blocked by default, dropped packets logged.",
            {
                **{FW + f"{p}profile_enablefirewall": "true" for p in ("domain", "private", "public")},
                **{FW + f"{p}profile_defaultinboundaction": 1 for p in ("domain", "private", "public")},
                **{FW + f"{p}profile_defaultoutboundaction": 0 for p in ("domain", "private", "public")},
                FW + "publicprofile_disableinboundnotifications": "true",
                FW + "domainprofile_enablelogdroppedpackets": "true",
                FW + "domainprofile_logmaxfilesize": 16384,
            },
            include=[ALL_MDE],
        ),
        Spec(
            FIREWALL_RULES,
            "Firewall rules - Server management",
            "Remote management of servers from the admin network only; legacy protocols blocked.",
            {FIREWALL_RULE_GROUP_ID: [RDP_FROM_ADMINS, WINRM_FROM_ADMINS, ICMP_ECHO, TELNET_OUT, NETBIOS_IN]},
            include=[SERVERS],
        ),
        Spec(
            FIREWALL_RULES,
            "Firewall rules - Workstations",
            "Workstation rules; shares the Telnet rule with the server policy (same definition, so it merges).",
            {FIREWALL_RULE_GROUP_ID: [TELNET_OUT, TEAMS_MEDIA_OUT]},
            include=[WORKSTATIONS],
        ),
        Spec(
            EDR,
            "EDR - Onboarding from connector",
            "Onboard devices with the package from the Microsoft Defender for Endpoint connector; share samples.",
            {
                "device_vendor_msft_windowsadvancedthreatprotection_configurationtype": "AutoFromConnector",
                "device_vendor_msft_windowsadvancedthreatprotection_configuration_samplesharing": 1,
            },
            include=[ALL_MDE],
        ),
        Spec(
            ASR,
            "ASR rules - Audit (pilot)",
            "Every standard protection rule in audit mode on the pilot workstations, to measure impact first.",
            _asr(
                "Audit",
                [
                    *STANDARD_ASR,
                    "Block executable content from email",
                    "Block all Office applications",
                    "Block Office applications from creating",
                    "Block JavaScript or VBScript",
                    "Block execution of potentially obfuscated",
                ],
            ),
            include=[PILOT_WORKSTATIONS],
        ),
        Spec(
            ASR,
            "ASR rules - Block (workstations)",
            "Standard protection rules in block mode, with a per-rule exclusion for the finance macro tool. "
            "The assignment filter limits Intune devices to 24H2; MDE-managed devices ignore it.",
            {
                **_asr(
                    "Block",
                    [*STANDARD_ASR, "Block all Office applications"],
                    {
                        "Block all Office applications": [
                            r"C:\Program Files\Contoso\FinanceTools\macrohost.exe"
                        ]
                    },
                ),
                **_asr("Warn", ["Block executable files from running unless"]),
            },
            include=[WORKSTATIONS],
            use_filter="include",
        ),
        Spec(
            ASR,
            "ASR rules - Servers",
            "Server rules: webshell creation and PSExec/WMI process creation blocked. Overlaps the pilot (audit) on "
            "pilot servers, where the LSASS rule is audited on workstations only.",
            _asr(
                "Block",
                [
                    "Block Webshell creation",
                    "Block process creations originating",
                    "Block credential stealing",
                ],
            ),
            include=[SERVERS],
            exclude=[SQL],
        ),
    ]


def _path(path: str, directory: bool = True) -> dict[str, Any]:
    """One macOS / Linux path exclusion, by the managed-configuration keys (services map them to the setting ids)."""
    return {"$type": "excludedPath", "path": path, "isDirectory": directory}


def mac_linux_specs() -> list[Spec]:
    """macOS and Linux policies (issue 18), on the "macOS and Linux" group: the Linux ones are Not applicable on
    the Macs of that group and the other way round, as in Intune."""
    return [
        Spec(
            LINUX_AV,
            "Linux Antivirus - baseline",
            "Real-time protection with behaviour monitoring, cloud protection, PUA blocked; only admin exclusions.",
            {
                LX + "antivirusengine_enforcementlevel": "real_time",
                LX + "antivirusengine_behaviormonitoring": "enabled",
                LX + "cloudservice_enabled": True,
                LX + "cloudservice_automaticsamplesubmissionconsent": "safe",
                LX + "antivirusengine_exclusionsmergepolicy": "admin_only",
                LX + "antivirusengine_threattypesettings": [
                    {"key": "potentially_unwanted_application", "value": "block"},
                    {"key": "archive_bomb", "value": "audit"},
                ],
                LX + "antivirusengine_exclusions": [_path("/var/log/journal")],
            },
            include=[MAC_LINUX],
            platform="linux",
        ),
        Spec(
            LINUX_AV_EXCLUSIONS,
            "Linux AV exclusions - web servers",
            "nginx content and logs. Merges with the baseline's exclusions on the device.",
            {
                LX + "antivirusengine_exclusions": [
                    _path("/var/www"),
                    {"$type": "excludedFileExtension", "extension": ".log"},
                    {"$type": "excludedFileName", "name": "/usr/sbin/nginx"},
                ]
            },
            include=[MAC_LINUX],
            platform="linux",
        ),
        Spec(
            LINUX_GLOBAL,
            "Linux global exclusions - Contoso agent",
            "The Contoso monitoring agent, excluded from antivirus and EDR (global scope).",
            {
                LX + "exclusionsettings_exclusions": [
                    _path("/opt/contoso/agent"),
                    {"$type": "excludedFileName", "name": "/opt/contoso/agent/bin/agentd"},
                ]
            },
            include=[MAC_LINUX],
            platform="linux",
        ),
        Spec(
            LINUX_EDR,
            "Linux EDR - device tag",
            "Tags Linux devices for the SOC's device groups.",
            {LX + "edr_tags": [{"key": "GROUP", "value": "Linux servers"}]},
            include=[MAC_LINUX],
            platform="linux",
        ),
        Spec(
            MAC_AV,
            "macOS Antivirus - baseline",
            "Tamper protection in block mode, developer folders excluded. Some macOS settings lack the MDE "
            "channel in the catalog (technologies), so they are Not applicable on MDE-managed Macs.",
            {
                MAC + "enforcementlevel_antivirusengine": "real_time",
                MAC + "enforcementlevel_tamperprotection": "block",
                MAC + "maximumondemandscanthreads": 2,
                MAC + "scanarchives": True,
                MAC + "userinitiatedfeedback": "disabled",
                MAC + "exclusions": [
                    _path("/Users/*/git"),
                    {"$type": "excludedFileExtension", "extension": "iso"},
                ],
            },
            include=[MAC_LINUX],
            platform="macos",
        ),
        Spec(
            MAC_EDR,
            "macOS EDR - device tag",
            "Tags Macs for the SOC's device groups.",
            {MAC + "tags": [{"key": "GROUP", "value": "Contoso Macs"}]},
            include=[MAC_LINUX],
            platform="macos",
        ),
    ]


def _variant(rng: random.Random, index: int) -> Spec:
    """Extra policies when more than the curated set is asked for (varied but valid)."""
    kind = index % 3
    if kind == 0:
        return Spec(
            AV,
            f"Antivirus - Site {index:03d}",
            "Site-specific scan schedule.",
            {
                D + "schedulescanday": rng.randint(0, 7),
                D + "schedulequickscantime": rng.choice([60, 120, 720, 1020]),
            },
            include=[rng.choice([WORKSTATIONS, PILOT_WORKSTATIONS, SERVERS])],
        )
    if kind == 1:
        return Spec(
            AV_EXCLUSIONS,
            f"AV exclusions - App {index:03d}",
            "Line-of-business application folder.",
            {D + "excludedpaths": [rf"C:\Program Files\Contoso\App{index:03d}"]},
            include=[rng.choice([WORKSTATIONS, SERVERS])],
        )
    return Spec(
        ASR,
        f"ASR rules - Audit ring {index:03d}",
        "Additional audit ring.",
        _asr("Audit", ["Block Win32 API calls", "Block Adobe Reader"]),
        include=[PILOT_WORKSTATIONS],
    )


def _group(names: tuple[str, ...], groups: dict[str, int]) -> int | None:
    for name in names:
        if name in groups:
            return groups[name]
    return None


def seed(stdout, policies: int = 18, seed: int = 42, **_: Any) -> None:
    """``policies`` policies: the curated set (12 Windows, then 6 macOS and Linux), then Windows variants."""
    rng = random.Random(seed)
    groups = dict(Group.objects.filter(object_kind="device").values_list("name", "pk"))
    demo_filter, _created = AssignmentFilter.objects.get_or_create(
        name=DEMO_FILTER[0],
        defaults={"rule": DEMO_FILTER[1], "description": "Windows 11 version 24H2 (build 26100) devices."},
    )
    wanted = [*specs(), *mac_linux_specs()][: max(policies, 0)]
    index = 1
    while len(wanted) < policies:
        wanted.append(_variant(rng, index))
        index += 1

    created = updated = skipped_groups = 0
    with acting_as(Actor(name="seed_demo")):
        for spec in wanted:
            include = [pk for names in spec.include if (pk := _group(names, groups)) is not None]
            exclude = [pk for names in spec.exclude if (pk := _group(names, groups)) is not None]
            skipped_groups += len(spec.include) + len(spec.exclude) - len(include) - len(exclude)
            assignments = services.Assignments(
                tuple(include),
                tuple(exclude),
                demo_filter.pk if spec.use_filter and include else None,
                spec.use_filter if include else "",
            )
            profile = get_catalog().profile(spec.profile)
            existing = Policy.objects.filter(policy_type=profile.policy_type, name=spec.name).first()
            if existing is None:
                services.create_policy(
                    spec.profile, spec.platform, spec.name, spec.description, spec.values, assignments
                )
                created += 1
            else:
                services.set_assignments(existing, assignments)
                updated += 1
    note = f" ({skipped_groups} assignment(s) skipped: group not found)" if skipped_groups else ""
    stdout.write(f"  Policies: {created} created, {updated} already there{note}.")
