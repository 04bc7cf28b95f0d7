"""Fixtures for the policies tests: a small fleet of devices in device groups (and one user group).

Imports stay inside the fixtures: the pure-module tests in this folder run without Django (-p no:django).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

AV = "Microsoft Defender Antivirus"
AV_EXCLUSIONS = "Microsoft Defender Antivirus exclusions"
WSE = "Windows Security Experience"
FIREWALL = "Microsoft Defender Firewall"
FIREWALL_RULES = "Microsoft Defender Firewall Rules"
EDR = "Endpoint detection and response"
ASR = "Attack Surface Reduction Rules"


@pytest.fixture
def fleet(db):
    from devices.models import Device, Group, GroupMember

    def device(name: str, os: str = "windows", channel: str = "mde") -> Device:
        return Device.objects.create(
            display_name=name,
            os=os,
            os_version="10.0.22631.3447" if os == "windows" else "10.0.20348.2402",
            managed_by={"mde": "mde", "intune": "intune", "configmgr": "configmgr"}.get(channel, "none"),
            management_type="MicrosoftSense" if channel == "mde" else "",
            intune_enrolled=channel == "intune",
            configmgr_client=channel == "configmgr",
        )

    def group(name: str, members=(), kind: str = "device") -> Group:
        created = Group.objects.create(name=name, object_kind=kind, member_count=len(members))
        GroupMember.objects.bulk_create(GroupMember(group=created, device=d) for d in members)
        return created

    ws1, ws2, ws3 = device("WS-001"), device("WS-002"), device("WS-003")
    intune1 = device("WS-INTUNE-1", channel="intune")
    cm1 = device("WS-CM-1", channel="configmgr")
    sql1, sql2 = device("SQL-01", "windows_server"), device("SQL-02", "windows_server")
    build1 = device("BUILD-01", "windows_server")
    mac1 = device("MAC-001", "macos")
    workstations = group("Workstations", [ws1, ws2, ws3, intune1, cm1])
    servers = group("Servers", [sql1, sql2, build1])
    sql = group("SQL Servers", [sql1, sql2])
    build = group("Build agents", [build1, sql2])
    all_mde = group("All MDE devices", [ws1, ws2, ws3, sql1, sql2, build1, mac1])
    pilot = group("Pilot workstations", [ws1])
    users = group("Security Operations", kind="user")
    return SimpleNamespace(
        ws1=ws1,
        ws2=ws2,
        ws3=ws3,
        intune1=intune1,
        cm1=cm1,
        sql1=sql1,
        sql2=sql2,
        build1=build1,
        mac1=mac1,
        workstations=workstations,
        servers=servers,
        sql=sql,
        build=build,
        all_mde=all_mde,
        pilot=pilot,
        users=users,
        device=device,
        group=group,
    )


@pytest.fixture
def signals():
    """Every policy_changed sent (connect before acting; the services send it on commit)."""
    from policies.signals import policy_changed

    received: list[dict] = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    policy_changed.connect(receiver, weak=False)
    yield received
    policy_changed.disconnect(receiver)
