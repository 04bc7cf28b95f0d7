"""devices.services for groups: the one place the group pages and the Graph-shaped API both call."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from console.models import AuditEvent
from devices import membership, services
from devices.models import Group, GroupMember
from devices.signals import membership_changed
from tests.devices.device_factories import make_device, make_group

pytestmark = pytest.mark.django_db

RULE = '(device.displayName -startsWith "SRV-")'


def test_it_creates_a_dynamic_group_with_the_devices_its_rule_matches():
    server = make_device(display_name="SRV-SQL-01")
    make_device(display_name="WS-1")

    group = services.create_group(Group(name="Servers", membership_type="dynamic", membership_rule=RULE))

    assert list(group.members.all()) == [server]
    assert AuditEvent.objects.get(action="group.create").after["membership_rule"] == RULE


def test_it_audits_an_edit_against_the_stored_group_not_the_edited_copy():
    group = make_group("Servers")
    group.name = "Windows Servers"  # what a bound GroupForm does to its instance before the save

    services.update_group(group)

    event = AuditEvent.objects.get(action="group.update")
    assert (event.before, event.after) == ({"name": "Servers"}, {"name": "Windows Servers"})


def test_it_adds_nothing_when_one_device_does_not_exist():
    group = make_group("Pilot")
    device = make_device(display_name="WS-1")

    with pytest.raises(membership.MembershipError, match="does not exist"):
        services.add_group_members(group, [device.pk, device.pk + 1000])

    assert not GroupMember.objects.exists()
    assert not AuditEvent.objects.filter(action="group.members.add").exists()


def test_it_audits_the_names_of_the_members_added_and_removed():
    group = make_group("Pilot")
    devices = [make_device(display_name=name) for name in ("WS-B", "WS-A")]

    assert services.add_group_members(group, [d.pk for d in devices]) == {d.pk for d in devices}
    assert services.remove_group_members(group, [devices[0].pk]) == {devices[0].pk}

    assert AuditEvent.objects.get(action="group.members.add").after == {"members": ["WS-A", "WS-B"]}
    assert AuditEvent.objects.get(action="group.members.remove").before == {"members": ["WS-B"]}


def test_it_deletes_a_group_and_tells_the_listeners_which_devices_left_it():
    group = make_group("Pilot")
    device = make_device(display_name="WS-1")
    services.add_group_members(group, [device.pk])
    heard = []

    def listener(sender, group, device_ids, **kwargs):
        heard.append((group.name, Group.objects.filter(pk=group.pk).exists(), device_ids))

    membership_changed.connect(listener)
    try:
        services.delete_group(group)
    finally:
        membership_changed.disconnect(listener)

    assert heard == [
        ("Pilot", True, {device.pk})
    ]  # told before the delete, while its assignments still exist
    assert not Group.objects.filter(pk=group.pk).exists()
    assert AuditEvent.objects.get(action="group.delete").before["member_count"] == 1


def test_it_says_where_a_rule_does_not_parse():
    with pytest.raises(ValidationError) as caught:
        services.validate_rule('(device.displayName -eq "A"')
    assert caught.value.code == "rule_syntax"
    assert caught.value.params["position"] >= 0
    assert services.validate_rule(f"  {RULE} ") == RULE


def test_it_tries_a_rule_on_chosen_devices():
    server, workstation = make_device(display_name="SRV-WEB-01"), make_device(display_name="WS-2")

    assert services.evaluate_rule(RULE, [server, workstation]) == [(server, True), (workstation, False)]
