"""devices.membership: dynamic groups follow rules and devices; counts and signals stay exact."""

from __future__ import annotations

import pytest

from devices import membership, services
from devices.models import Device, Group, GroupMember
from devices.signals import membership_changed
from tests.devices.device_factories import make_device, make_group, set_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    set_tenant(windows_server_scope="tagged")
    devices = [
        make_device(display_name="CONTOSO-WS-0001", os_version="10.0.22631.3447", join_type="entra_joined"),
        make_device(display_name="CONTOSO-WS-0002", os_version="10.0.19045.4291", intune_enrolled=True,
                    join_type="hybrid_joined"),
        make_device(display_name="SRV-SQL-01", os="windows_server", os_version="10.0.20348.2402",
                    tags=["MDE-Management"], join_type="domain_joined"),
        make_device(display_name="SRV-WEB-01", os="windows_server", os_version="10.0.17763.5696"),
        make_device(display_name="mac-alex-001", os="macos", os_version="14.4.1"),
        make_device(display_name="lnx-web-01", os="linux", os_version="22.04"),
    ]  # fmt: skip
    for device in devices:
        services.reevaluate_device(device)
    return devices


@pytest.fixture
def changes():
    seen = []

    def receiver(sender, group, device_ids, **kwargs):
        seen.append((group.name, set(device_ids)))

    membership_changed.connect(receiver)
    yield seen
    membership_changed.disconnect(receiver)


def members(group: Group) -> set[str]:
    return set(Device.objects.filter(memberships__group=group).values_list("display_name", flat=True))


# Every operator and logical operator of the issue, on the device properties it names.
RULES = [
    ('(device.managementType -eq "MicrosoftSense")', {"CONTOSO-WS-0001", "SRV-SQL-01", "mac-alex-001", "lnx-web-01"}),
    ('(device.deviceOSType -ne "Windows")', {"SRV-SQL-01", "SRV-WEB-01", "mac-alex-001", "lnx-web-01"}),
    ('(device.displayName -startsWith "SRV-")', {"SRV-SQL-01", "SRV-WEB-01"}),
    ('(device.displayName -notStartsWith "CONTOSO")', {"SRV-SQL-01", "SRV-WEB-01", "mac-alex-001", "lnx-web-01"}),
    ('(device.deviceOSType -contains "Windows")', {"CONTOSO-WS-0001", "CONTOSO-WS-0002", "SRV-SQL-01", "SRV-WEB-01"}),
    ('(device.deviceOSType -notContains "Windows")', {"mac-alex-001", "lnx-web-01"}),
    ('(device.deviceOSType -in ["macOS", "Linux"])', {"mac-alex-001", "lnx-web-01"}),
    ('(device.deviceOSType -notIn ["Windows", "Windows Server", "macOS"])', {"lnx-web-01"}),
    ('(device.deviceOSVersion -match "^10\\.0\\.2")', {"CONTOSO-WS-0001", "SRV-SQL-01"}),
    ('(device.systemLabels -contains "MDEJoined")', {"SRV-SQL-01", "mac-alex-001", "lnx-web-01"}),
    ('(device.deviceTrustType -eq "ServerAd")', {"CONTOSO-WS-0002", "SRV-SQL-01"}),
    ('(device.devicePhysicalIds -any (_ -startsWith "[ZTDId]"))', set()),
    ('(device.deviceOSType -eq "Windows Server") -and (device.managementType -eq "MicrosoftSense")', {"SRV-SQL-01"}),
    ('(device.deviceOSType -eq "macOS") -or (device.deviceOSType -eq "Linux")', {"mac-alex-001", "lnx-web-01"}),
    ('-not (device.deviceOSType -contains "Windows")', {"mac-alex-001", "lnx-web-01"}),
    ('((device.deviceOSType -eq "Windows") -or (device.deviceOSType -eq "Linux")) -and '
     '(device.systemLabels -contains "MDEManaged")', {"CONTOSO-WS-0001", "lnx-web-01"}),
]  # fmt: skip


@pytest.mark.parametrize("rule,expected", RULES, ids=[r for r, _ in RULES])
def test_every_rule_operator_selects_the_right_devices(fleet, rule, expected):
    group = make_group("Rule under test", rule)
    membership.recompute_group(group)
    group.refresh_from_db()
    assert members(group) == expected
    assert group.member_count == len(expected)


def test_recomputing_a_rule_writes_only_the_difference_and_signals_those_devices(fleet, changes):
    group = make_group("Servers", '(device.deviceOSType -eq "Windows Server")')
    membership.recompute_group(group)
    first_rows = dict(GroupMember.objects.filter(group=group).values_list("device__display_name", "pk"))
    group.membership_rule = '(device.displayName -startsWith "SRV-SQL") -or (device.deviceOSType -eq "macOS")'
    group.save()
    changes.clear()

    added, removed = membership.recompute_group(group)

    by_name = {d.display_name: d.pk for d in fleet}
    assert added == {by_name["mac-alex-001"]} and removed == {by_name["SRV-WEB-01"]}
    assert changes == [("Servers", {by_name["mac-alex-001"], by_name["SRV-WEB-01"]})]
    # The unchanged member kept its row.
    assert (
        GroupMember.objects.get(group=group, device__display_name="SRV-SQL-01").pk == first_rows["SRV-SQL-01"]
    )
    group.refresh_from_db()
    assert group.member_count == 2 and group.rule_evaluated_at is not None


def test_recomputing_an_unchanged_rule_sends_nothing(fleet, changes):
    group = make_group("Servers", '(device.deviceOSType -eq "Windows Server")')
    membership.recompute_group(group)
    changes.clear()
    assert membership.recompute_group(group) == (set(), set())
    assert changes == []


def test_a_rule_pass_costs_the_same_queries_for_more_devices(fleet, django_assert_max_num_queries):
    group = make_group("All", "(device.accountEnabled -eq true)")
    with django_assert_max_num_queries(8):
        membership.recompute_group(group)
    for n in range(40):
        make_device(display_name=f"CONTOSO-WS-1{n:03d}")
    with django_assert_max_num_queries(8):
        membership.recompute_group(group)
    group.refresh_from_db()
    assert group.member_count == 46


def test_device_changes_move_the_device_between_dynamic_groups(fleet, changes):
    managed = make_group("Managed", '(device.managementType -eq "MicrosoftSense")')
    membership.recompute_group(managed)
    web = next(d for d in fleet if d.display_name == "SRV-WEB-01")
    assert "SRV-WEB-01" not in members(managed)
    changes.clear()

    services.set_tags(web, ["MDE-Management"])

    managed.refresh_from_db()
    assert "SRV-WEB-01" in members(managed) and managed.member_count == 5
    assert ("Managed", {web.pk}) in changes


def test_recompute_devices_handles_many_devices_and_groups_at_once(fleet):
    groups = [make_group(f"G{i}", rule) for i, (rule, _) in enumerate(RULES[:5])]
    changed = membership.recompute_devices(Device.objects.all())
    for group, (_, expected) in zip(groups, RULES[:5], strict=True):
        group.refresh_from_db()
        assert members(group) == expected and group.member_count == len(expected)
        assert changed.get(group.pk, set()) == set(
            Device.objects.filter(display_name__in=expected).values_list("pk", flat=True)
        )
    assert membership.recompute_devices(Device.objects.all()) == {}


def test_assigned_groups_are_not_touched_by_rules(fleet):
    pilot = make_group("Pilot")
    membership.add_members(pilot, [fleet[0].pk])
    membership.recompute_devices(Device.objects.all())
    assert members(pilot) == {"CONTOSO-WS-0001"}
    assert membership.recompute_group(pilot) == (set(), set())


def test_a_user_group_never_holds_devices(fleet):
    users = make_group("Helpdesk", kind="user")
    GroupMember.objects.create(group=users, device=fleet[0])  # e.g. left from before
    membership.recompute_group(users)
    users.refresh_from_db()
    assert not GroupMember.objects.filter(group=users).exists() and users.member_count == 0
    with pytest.raises(membership.MembershipError):
        membership.add_members(users, [fleet[0].pk])


def test_a_stored_invalid_rule_matches_nothing(fleet):
    group = make_group("Broken", "device.displayName -eq")
    membership.recompute_group(group)
    group.refresh_from_db()
    assert group.member_count == 0
