"""Groups: assigned and dynamic device groups, user groups, the rule editor and Validate rules."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from console.models import AuditEvent
from devices import services
from devices.models import Group, GroupMember
from tests.devices.device_factories import make_device, make_group, set_tenant

pytestmark = pytest.mark.django_db

CREATE = reverse("devices:group_create")


@pytest.fixture
def fleet():
    set_tenant(windows_server_scope="tagged")
    devices = [
        make_device(display_name="CONTOSO-WS-0001"),
        make_device(display_name="SRV-SQL-01", os="windows_server", tags=["MDE-Management"]),
        make_device(display_name="SRV-WEB-01", os="windows_server"),
        make_device(display_name="mac-alex-001", os="macos"),
    ]
    for device in devices:
        services.reevaluate_device(device)
    return {d.display_name: d for d in devices}


def group_form(**fields) -> dict:
    return {"name": "Group", "description": "", "object_kind": "device", "membership_type": "assigned",
            "membership_rule": "", **fields}  # fmt: skip


def test_creating_a_dynamic_group_computes_its_members(esm_client, fleet):
    response = esm_client.post(
        CREATE,
        group_form(
            name="All MDE managed devices",
            membership_type="dynamic",
            membership_rule='(device.managementType -eq "MicrosoftSense")',
        ),  # fmt: skip
        follow=True,
    )
    group = Group.objects.get(name="All MDE managed devices")
    members = set(group.members.values_list("display_name", flat=True))
    assert members == {"CONTOSO-WS-0001", "SRV-SQL-01", "mac-alex-001"}
    assert group.member_count == 3
    assert b"created with 3 members" in response.content
    assert AuditEvent.objects.filter(action="group.create", object_id=str(group.pk)).exists()


def test_the_windows_servers_rule_works_exactly_as_written(ga_client, fleet):
    ga_client.post(CREATE, group_form(name="Windows Servers", membership_type="dynamic",
                                      membership_rule='(device.deviceOSType -eq "Windows Server")'))  # fmt: skip
    group = Group.objects.get(name="Windows Servers")
    assert set(group.members.values_list("display_name", flat=True)) == {"SRV-SQL-01", "SRV-WEB-01"}


def test_an_invalid_rule_is_refused_with_position_and_reason_beside_the_field(ga_client, fleet):
    rule = '(device.managementType -eq "MicrosoftSense"'
    response = ga_client.post(
        CREATE, group_form(name="Broken", membership_type="dynamic", membership_rule=rule)
    )
    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(r'<ul class="errorlist" id="error-membership_rule"><li>(.*?)</li>', html).group(1)
    assert error.startswith(f"Position {len(rule)}:") and "missing &#x27;)&#x27;" in error
    assert 'class="rule-marker mono"' in html
    assert not Group.objects.filter(name="Broken").exists()


@pytest.mark.parametrize(
    "rule,position,words",
    [
        ('(device.deviceOSTyp -eq "Windows")', 1, "unknown device property"),
        ('(device.deviceOSType -equals "Windows")', 21, "unknown operator"),
        ('(device.deviceOSType -eq "Windows") -and', 40, ""),
        ('(user.department -eq "IT")', 1, "only device properties"),
    ],
)
def test_each_kind_of_rule_error_names_where_it_is(ga_client, rule, position, words):
    html = ga_client.post(
        CREATE, group_form(name="X", membership_type="dynamic", membership_rule=rule)
    ).content.decode()
    assert f"Position {position}:" in html and words in html
    assert not Group.objects.exists()


def test_a_dynamic_group_needs_a_rule(ga_client):
    html = ga_client.post(CREATE, group_form(name="X", membership_type="dynamic")).content.decode()
    assert "needs a membership rule" in html and not Group.objects.exists()


def test_a_user_group_can_be_created_but_is_marked_not_targetable(ga_client, fleet):
    ga_client.post(CREATE, group_form(name="Security Operations", object_kind="user"))
    group = Group.objects.get(name="Security Operations")
    assert not group.targetable
    html = ga_client.get(reverse("devices:group_detail", args=[group.pk])).content.decode()
    assert "Not targetable for MDE security management (device objects only)" in html
    listing = ga_client.get(reverse("devices:group_list")).content.decode()
    assert "Not targetable (device objects only)" in listing


def test_a_user_group_cannot_be_dynamic_or_hold_devices(ga_client, fleet):
    html = ga_client.post(CREATE, group_form(name="Users", object_kind="user", membership_type="dynamic",
                                             membership_rule='(device.deviceOSType -eq "Windows")')).content.decode()  # fmt: skip
    assert "User groups are assigned" in html and not Group.objects.exists()
    users = make_group("Helpdesk", kind="user")
    response = ga_client.post(reverse("devices:group_member_add", args=[users.pk]),
                              {"device": [fleet["CONTOSO-WS-0001"].pk]}, follow=True)  # fmt: skip
    assert b"not targetable for MDE security management" in response.content
    assert not GroupMember.objects.filter(group=users).exists()


def test_members_of_an_assigned_group_are_added_and_removed_with_search(ga_client, fleet):
    group = make_group("MDE pilot - Servers")
    detail = reverse("devices:group_detail", args=[group.pk])
    found = ga_client.get(
        reverse("devices:group_member_search", args=[group.pk]), {"q": "srv"}
    ).content.decode()
    assert "SRV-SQL-01" in found and "SRV-WEB-01" in found and "CONTOSO-WS-0001" not in found
    assert "SRV-SQL-01" in ga_client.get(detail, {"q": "srv"}).content.decode()  # the same search without JS

    ids = [fleet["SRV-SQL-01"].pk, fleet["SRV-WEB-01"].pk]
    response = ga_client.post(
        reverse("devices:group_member_add", args=[group.pk]), {"device": ids}, follow=True
    )
    assert b"Added 2 devices" in response.content
    group.refresh_from_db()
    assert group.member_count == 2
    again = ga_client.get(
        reverse("devices:group_member_search", args=[group.pk]), {"q": "srv"}
    ).content.decode()
    assert "SRV-SQL-01" not in again  # members are not offered again

    ga_client.post(reverse("devices:group_member_remove", args=[group.pk]), {"device": [ids[0]]})
    group.refresh_from_db()
    assert group.member_count == 1
    assert list(group.members.values_list("display_name", flat=True)) == ["SRV-WEB-01"]
    assert AuditEvent.objects.filter(action="group.members.add").exists()
    assert AuditEvent.objects.get(action="group.members.remove").before == {"members": ["SRV-SQL-01"]}


def test_members_of_a_dynamic_group_cannot_be_edited_by_hand(ga_client, fleet):
    group = make_group("Windows Servers", '(device.deviceOSType -eq "Windows Server")')
    response = ga_client.post(reverse("devices:group_member_add", args=[group.pk]),
                              {"device": [fleet["CONTOSO-WS-0001"].pk]}, follow=True)  # fmt: skip
    assert b"follow its membership rule" in response.content
    assert not GroupMember.objects.filter(group=group).exists()


@pytest.mark.parametrize("devices", [["abc"], ["1", "-2"], ["9" * 30]])
def test_a_forged_member_form_is_a_400(ga_client, fleet, devices):
    group = make_group("Pilot")
    assert (
        ga_client.post(reverse("devices:group_member_add", args=[group.pk]), {"device": devices}).status_code
        == 400
    )
    assert not GroupMember.objects.exists()


def test_adding_an_unknown_device_adds_nothing(ga_client, fleet):
    group = make_group("Pilot")
    response = ga_client.post(reverse("devices:group_member_add", args=[group.pk]),
                              {"device": [fleet["SRV-SQL-01"].pk, 123456]}, follow=True)  # fmt: skip
    assert b"does not exist" in response.content
    assert not GroupMember.objects.exists()


def test_a_read_only_operator_cannot_change_groups(reader_client, fleet):
    group = make_group("Pilot")
    assert reader_client.post(CREATE, group_form(name="X")).status_code == 403
    add = reader_client.post(
        reverse("devices:group_member_add", args=[group.pk]), {"device": [fleet["SRV-SQL-01"].pk]}
    )
    assert add.status_code == 403
    assert reader_client.post(reverse("devices:group_delete", args=[group.pk])).status_code == 403
    assert Group.objects.count() == 1 and not GroupMember.objects.exists()


def test_editing_a_rule_recomputes_the_members(ga_client, fleet):
    group = make_group("Servers", '(device.deviceOSType -eq "Windows Server")')
    from devices.membership import recompute_group

    recompute_group(group)
    ga_client.post(reverse("devices:group_edit", args=[group.pk]),
                   group_form(name="Servers", membership_type="dynamic",
                              membership_rule='(device.displayName -startsWith "SRV-SQL")'))  # fmt: skip
    group.refresh_from_db()
    assert list(group.members.values_list("display_name", flat=True)) == ["SRV-SQL-01"]
    assert group.member_count == 1
    audit = AuditEvent.objects.get(action="group.update")
    assert audit.after == {"membership_rule": '(device.displayName -startsWith "SRV-SQL")'}


def test_an_invalid_rule_on_edit_keeps_the_old_rule_and_members(ga_client, fleet):
    group = make_group("Servers", '(device.deviceOSType -eq "Windows Server")')
    from devices.membership import recompute_group

    recompute_group(group)
    response = ga_client.post(reverse("devices:group_edit", args=[group.pk]),
                              group_form(name="Servers", membership_type="dynamic",
                                         membership_rule='device.displayName -eq'))  # fmt: skip
    assert b"Position" in response.content
    group.refresh_from_db()
    assert group.membership_rule == '(device.deviceOSType -eq "Windows Server")' and group.member_count == 2


def test_deleting_a_group_removes_its_memberships(ga_client, fleet):
    group = make_group("Pilot")
    GroupMember.objects.create(group=group, device=fleet["SRV-SQL-01"])
    assert ga_client.get(reverse("devices:group_delete", args=[group.pk])).status_code == 200
    ga_client.post(reverse("devices:group_delete", args=[group.pk]))
    assert not Group.objects.exists() and not GroupMember.objects.exists()
    assert AuditEvent.objects.filter(action="group.delete").exists()


# ---- Validate rules -------------------------------------------------------------------------------------


def test_validate_rules_shows_per_device_whether_it_matches_and_saves_nothing(reader_client, fleet):
    ids = [fleet["SRV-SQL-01"].pk, fleet["SRV-WEB-01"].pk]
    response = reader_client.get(
        reverse("devices:group_validate"),
        {"rule": '(device.managementType -eq "MicrosoftSense")', "device": ids},
    )
    results = {d.display_name: ok for d, ok in response.context["results"]}
    assert results == {"SRV-SQL-01": True, "SRV-WEB-01": False}
    html = response.content.decode()
    assert "Matches" in html and "Does not match" in html
    assert not Group.objects.exists()


def test_validate_rules_searches_devices_to_choose(reader_client, fleet):
    response = reader_client.get(reverse("devices:group_validate"), {"rule": '(device.deviceOSType -eq "macOS")',
                                                                      "q": "mac"})  # fmt: skip
    assert [d.display_name for d in response.context["found"]] == ["mac-alex-001"]


def test_validate_rules_reports_an_invalid_rule_with_its_position(reader_client, fleet):
    response = reader_client.get(
        reverse("devices:group_validate"), {"rule": '(device.deviceOSType -eq "Windows"))'}
    )
    assert "Position 35:" in response.content.decode()
    assert response.context["results"] is None


def test_validate_rules_ignores_forged_device_ids(reader_client, fleet):
    response = reader_client.get(reverse("devices:group_validate"),
                                 {"rule": '(device.deviceOSType -eq "Windows")', "device": ["x", "-1"]})  # fmt: skip
    assert response.status_code == 200 and response.context["results"] == []


def test_the_group_form_sends_its_rule_to_validate_rules(ga_client):
    response = ga_client.post(CREATE, group_form(name="X", membership_type="dynamic",
                                                 membership_rule='(device.deviceOSType -eq "Linux")', validate="1"))  # fmt: skip
    assert response.status_code == 302 and response["Location"].startswith(reverse("devices:group_validate"))
    assert "Linux" in response["Location"] and not Group.objects.exists()
