"""policies.services: the one place that writes policies (validation, versions, audit, signals)."""

from __future__ import annotations

import pytest

from console.models import AuditEvent
from policies import services
from policies.catalog import FIREWALL_RULE_GROUP_ID, asr_rules, get_catalog
from policies.graph import from_graph_settings
from policies.models import AssignmentFilter, Policy, PolicyAssignment, PolicyVersion
from tests.policies.conftest import ASR, AV, AV_EXCLUSIONS, FIREWALL, FIREWALL_RULES

pytestmark = pytest.mark.django_db

CATALOG = get_catalog()
D = "device_vendor_msft_policy_config_defender_"
REALTIME = D + "allowrealtimemonitoring"
CLOUD = D + "allowcloudprotection"
CPU = D + "avgcpuloadfactor"
PATHS = D + "excludedpaths"
EXTENSIONS = D + "excludedextensions"
R = FIREWALL_RULE_GROUP_ID + "_"
RULES = asr_rules(CATALOG)
LSASS, LSASS_EXCLUSIONS = next((r, e) for r, e in RULES if "local security authority" in r.display_name)
DRIVERS, DRIVERS_EXCLUSIONS = RULES[0]


def option(setting, label):
    return next(o.value for o in setting.options if o.label == label)


def make(name="AV baseline", profile=AV, values=None, assignments=None, **kw):
    return services.create_policy(
        profile, "windows", name, kw.get("description", ""), values or {}, assignments
    )


# ---- create -------------------------------------------------------------------------------------------------


def test_it_creates_a_policy_with_the_graph_settings_and_the_flat_values_together(fleet):
    policy = make(values={REALTIME: "1", CPU: "30"}, assignments={"include": [fleet.workstations.pk]})
    policy.refresh_from_db()
    assert policy.values == {REALTIME: 1, CPU: 30}
    assert policy.settings[0]["settingInstance"]["choiceSettingValue"]["value"] == REALTIME + "_1"
    assert from_graph_settings(CATALOG, AV, policy.settings) == (policy.values, [])
    profile = CATALOG.profile(AV)
    assert (policy.policy_type, policy.template_id, policy.template_family) == (
        "antivirus",
        profile.template_id,
        "endpointSecurityAntivirus",
    )
    assert policy.technologies == "mdm,microsoftSense"
    assert policy.version == 1
    assert list(policy.assignments.values_list("group_id", "intent")) == [(fleet.workstations.pk, "include")]


def test_values_are_stored_in_catalog_order_whatever_order_they_come_in():
    a = make("A", values={CPU: 30, REALTIME: 1})
    b = make("B", values={REALTIME: 1, CPU: 30})
    assert list(a.values) == list(b.values) and a.settings == b.settings


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (
            {"not_a_setting": 1},
            "not_a_setting",
            "isn't a setting of the Microsoft Defender Antivirus profile",
        ),
        ({REALTIME: "7"}, REALTIME, "isn't an option"),
        ({CPU: "101"}, CPU, "between 0 and 100"),
        ({CPU: "lots"}, CPU, "whole number"),
        ({D + "threatseveritydefaultaction": []}, None, None),  # blank group: Not configured, no problem
        ({D + "threatseveritydefaultaction": [{"x": 1}]}, D + "threatseveritydefaultaction", "is a group"),
    ],
)
def test_it_validates_every_setting_against_the_catalog(values, field, fragment):
    if field is None:
        assert make(values=values).values == {}
        return
    with pytest.raises(services.PolicyError) as caught:
        make(values=values)
    messages = caught.value.by_field()[field]
    assert any(fragment in m for m in messages), messages
    assert not Policy.objects.exists()


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        ({PATHS: ["relative\\path"]}, PATHS, "isn't a full path"),
        ({EXTENSIONS: ["C:\\x\\y.log"]}, EXTENSIONS, "looks like a path"),
        ({D + "excludedprocesses": ["notepad"]}, D + "excludedprocesses", "executable file name"),
    ],
)
def test_it_validates_exclusion_lists(values, field, fragment):
    with pytest.raises(services.PolicyError) as caught:
        make(profile=AV_EXCLUSIONS, values=values)
    assert any(fragment in m for m in caught.value.by_field()[field])


def test_it_refuses_warn_for_an_asr_rule_that_does_not_support_it():
    with pytest.raises(services.PolicyError) as caught:
        make(profile=ASR, values={LSASS.id: option(LSASS, "Warn")})
    assert "doesn't support Warn mode" in caught.value.by_field()[LSASS.id][0]
    assert make(profile=ASR, values={DRIVERS.id: option(DRIVERS, "Warn")}).values == {
        DRIVERS.id: option(DRIVERS, "Warn")
    }


def test_per_rule_exclusions_need_the_rule_in_block_audit_or_warn():
    with pytest.raises(services.PolicyError) as caught:
        make(
            profile=ASR,
            values={DRIVERS.id: option(DRIVERS, "Off"), DRIVERS_EXCLUSIONS.id: ["C:\\Tools\\a.exe"]},
        )
    assert (
        "only apply when the rule is set to Block, Audit or Warn"
        in caught.value.by_field()[DRIVERS_EXCLUSIONS.id][0]
    )
    policy = make(
        profile=ASR,
        values={DRIVERS.id: option(DRIVERS, "Audit"), DRIVERS_EXCLUSIONS.id: ["C:\\Tools\\a.exe"]},
    )
    assert policy.values[DRIVERS_EXCLUSIONS.id] == ["C:\\Tools\\a.exe"]


@pytest.mark.parametrize(
    ("rule", "field", "fragment"),
    [
        ({R + "direction": "in"}, R + "name", "Enter a name"),
        (
            {R + "name": "x", R + "protocol": 1, R + "localportranges": ["80"]},
            R + "localportranges",
            "TCP (6) or UDP",
        ),
        (
            {R + "name": "x", R + "protocol": 6, R + "icmptypesandcodes": ["8:*"]},
            R + "icmptypesandcodes",
            "ICMP",
        ),
        (
            {R + "name": "x", R + "policyappid": "app", R + "app_servicename": "Spooler"},
            R + "app_servicename",
            "can't be used in the same rule",
        ),
        (
            {R + "name": "x", R + "protocol": 6, R + "localportranges": ["70000"]},
            R + "localportranges",
            "out of range",
        ),
        (
            {R + "name": "x", R + "remoteaddressranges": ["10.0.0.300"]},
            R + "remoteaddressranges",
            "isn't an IP",
        ),
    ],
)
def test_it_validates_firewall_rules(rule, field, fragment):
    with pytest.raises(services.PolicyError) as caught:
        make(profile=FIREWALL_RULES, values={FIREWALL_RULE_GROUP_ID: [rule]})
    problems = [p for p in caught.value.problems if p.field == field]
    assert problems and fragment in problems[0].message and problems[0].rule_index == 0


def test_a_valid_firewall_rule_is_stored_in_catalog_order():
    rule = {
        R + "protocol": "6",
        R + "name": "Allow RDP",
        R + "localportranges": "3389",
        R + "direction": "in",
    }
    policy = make(profile=FIREWALL_RULES, values={FIREWALL_RULE_GROUP_ID: [rule]})
    stored = policy.values[FIREWALL_RULE_GROUP_ID][0]
    assert stored == {
        R + "name": "Allow RDP",
        R + "localportranges": ["3389"],
        R + "protocol": 6,
        R + "direction": "in",
    }
    order = [s.id for s in CATALOG.profile(FIREWALL_RULES).settings]
    assert list(stored) == sorted(stored, key=order.index)


def test_name_is_required_and_a_name_in_use_is_a_warning_not_a_refusal():
    with pytest.raises(services.PolicyError) as caught:
        make(name="   ")
    assert caught.value.by_field()["name"] == ["Enter a name for the policy."]
    first = make(name="Baseline")
    assert services.name_in_use("antivirus", "baseline ").startswith("Another policy in Antivirus")
    assert make(name="baseline ", profile=AV_EXCLUSIONS).name == "baseline"  # allowed, as in Graph
    assert services.name_in_use("antivirus", "Baseline", exclude_pk=first.pk)  # the other one still has it
    assert services.name_in_use("edr", "Baseline") == ""  # another type: no warning


def test_it_refuses_a_user_group_with_the_seeds_reason(fleet):
    with pytest.raises(services.PolicyError) as caught:
        make(assignments={"include": [fleet.workstations.pk, fleet.users.pk]})
    message = caught.value.by_field()["include"][0]
    assert message == (
        "“Security Operations” is a user group. Only Device Objects are applicable for Microsoft Defender for "
        "Endpoint management. Targeting users is not supported."
    )
    with pytest.raises(services.PolicyError):
        make(assignments={"exclude": [fleet.users.pk]})
    assert not Policy.objects.exists() and not PolicyAssignment.objects.exists()


def test_a_group_cannot_be_included_and_excluded_and_must_exist(fleet):
    with pytest.raises(services.PolicyError) as caught:
        make(assignments={"include": [fleet.sql.pk, 999999], "exclude": [fleet.sql.pk]})
    fields = caught.value.by_field()
    assert "can't be both included and excluded" in fields["exclude"][0]
    assert "doesn't exist" in fields["include"][0]


def test_an_assignment_filter_needs_a_mode_the_platform_and_included_groups(fleet):
    windows = AssignmentFilter.objects.create(name="24H2", rule='(device.osVersion -startsWith "10.0.26100")')
    mac = AssignmentFilter.objects.create(
        name="Mac", platform="macos", rule='(device.deviceName -startsWith "mac")'
    )
    with pytest.raises(services.PolicyError) as caught:
        make(assignments={"include": [fleet.workstations.pk], "filter_id": windows.pk})
    assert "filter_mode" in caught.value.by_field()
    with pytest.raises(services.PolicyError) as caught:
        make(assignments={"include": [fleet.workstations.pk], "filter_id": mac.pk, "filter_mode": "include"})
    assert "is for macOS" in caught.value.by_field()["filter"][0]
    with pytest.raises(services.PolicyError) as caught:
        make(assignments={"filter_id": windows.pk, "filter_mode": "include"})
    assert "include a group" in caught.value.by_field()["filter"][0]
    policy = make(
        assignments={"include": [fleet.workstations.pk], "filter_id": windows.pk, "filter_mode": "exclude"}
    )
    assert list(policy.assignments.values_list("filter_id", "filter_mode")) == [(windows.pk, "exclude")]


def test_macos_and_linux_policies_use_their_own_profiles_and_templates():
    linux = services.create_policy(
        "Microsoft Defender Antivirus (Linux)",
        "linux",
        "Linux AV",
        "",
        {
            "linux_mdatp_managed_antivirusengine_enforcementlevel": "real_time",
            "linux_mdatp_managed_antivirusengine_exclusions": [
                {"$type": "excludedPath", "path": "/srv/data"}
            ],
        },
    )
    assert (linux.template_id, linux.technologies) == (
        "4cfd164c-5e8a-4ea9-b15d-9aa71e4ffff4_1",
        "microsoftSense",
    )
    item = "linux_mdatp_managed_antivirusengine_exclusions_item_"
    assert linux.values["linux_mdatp_managed_antivirusengine_exclusions"] == [
        {item + "$type": "excludedPath", item + "path": "/srv/data"}
    ]
    with pytest.raises(services.PolicyError) as caught:
        services.create_policy(AV, "macos", "Mac AV", "", {})
    assert "isn't available for macOS" in caught.value.by_field()["platform"][0]
    with pytest.raises(services.PolicyError) as caught:
        services.create_policy(ASR, "linux", "Linux ASR", "", {})
    assert "isn't available for Linux" in caught.value.by_field()["platform"][0]
    with pytest.raises(services.PolicyError) as caught:
        services.create_policy(
            "Microsoft Defender Antivirus (Linux)",
            "linux",
            "Linux AV bad",
            "",
            {"linux_mdatp_managed_antivirusengine_exclusions": [{"$type": "excludedPath", "path": "srv"}]},
        )
    assert "isn't a full path" in str(caught.value)


# ---- versions, diff, restore --------------------------------------------------------------------------------


def test_every_save_is_a_new_version_whose_snapshot_is_the_export_document(fleet):
    from policies.exports import export_document

    policy = make(values={REALTIME: 1})
    policy = services.update_settings(policy, {REALTIME: 1, CLOUD: 1})
    policy = services.update_basics(policy, "AV baseline", "now with a description")
    policy = services.set_assignments(policy, {"include": [fleet.workstations.pk]})
    assert list(policy.versions.values_list("number", "note")) == [
        (4, "Assignments updated"),
        (3, "Basics updated"),
        (2, "Configuration settings updated"),
        (1, "Created"),
    ]
    assert policy.versions.get(number=4).snapshot == export_document(policy)
    # Saving the same thing again is not a change: no version.
    services.update_settings(policy, {CLOUD: 1, REALTIME: 1})
    services.update_basics(policy, "AV baseline", "now with a description")
    services.set_assignments(policy, {"include": [fleet.workstations.pk]})
    assert PolicyVersion.objects.filter(policy=policy).count() == 4


def test_the_diff_between_versions_is_readable_setting_by_setting(fleet):
    policy = make(values={REALTIME: 1, CPU: 50}, assignments={"include": [fleet.workstations.pk]})
    services.update_settings(policy, {REALTIME: 0, CLOUD: 1})
    services.update_basics(policy, "AV renamed", "")
    services.set_assignments(policy, {"include": [fleet.servers.pk], "exclude": [fleet.sql.pk]})
    v1, v4 = (policy.versions.get(number=n).snapshot for n in (1, 4))
    diff = services.diff_snapshots(v1, v4)
    settings = {(c.kind, c.label): (c.before, c.after) for c in diff.settings}
    assert settings[("changed", "Allow Realtime Monitoring")] == (
        "Allowed. Turns on and runs the real-time monitoring service.",
        "Not allowed. Turns off the real-time monitoring service.",
    )
    assert settings[("removed", "Avg CPU Load Factor")] == ("50", "Not configured")
    assert settings[("added", "Allow Cloud Protection")][1].startswith("Allowed")
    assert [(c.label, c.before, c.after) for c in diff.basics] == [("Name", "AV baseline", "AV renamed")]
    assignments = {(c.kind, c.label, c.before, c.after) for c in diff.assignments}
    assert assignments == {
        ("removed", "Workstations", "Included", ""),
        ("added", "Servers", "", "Included"),
        ("added", "SQL Servers", "", "Excluded"),
    }
    assert services.diff_snapshots(v4, v4).empty


def test_the_diff_of_firewall_rules_is_per_rule_and_per_field():
    a = {R + "name": "RDP", R + "protocol": 6, R + "localportranges": ["3389"]}
    b = {R + "name": "Telnet", R + "protocol": 6, R + "remoteportranges": ["23"], R + "direction": "out"}
    policy = make(profile=FIREWALL_RULES, values={FIREWALL_RULE_GROUP_ID: [a, b]})
    changed_a = {**a, R + "localportranges": ["3389", "3390"]}
    c = {R + "name": "SSH", R + "protocol": 6, R + "localportranges": ["22"]}
    services.update_settings(policy, {FIREWALL_RULE_GROUP_ID: [changed_a, c]})
    diff = services.diff_snapshots(*(policy.versions.get(number=n).snapshot for n in (1, 2)))
    rows = {(c.kind, c.label, c.before, c.after) for c in diff.settings}
    assert rows == {
        ("removed", "Firewall rule “Telnet”", "Defined", ""),
        ("added", "Firewall rule “SSH”", "", "Defined"),
        ("changed", "Firewall rule “RDP” › Local Port Ranges", "3389", "3389; 3390"),
    }


def test_restore_makes_an_old_version_current_again_as_a_new_version(fleet):
    policy = make(values={REALTIME: 1}, assignments={"include": [fleet.workstations.pk]})
    services.update_settings(policy, {REALTIME: 0, CPU: 20})
    services.update_basics(policy, "Renamed", "changed")
    services.set_assignments(policy, {"include": [fleet.servers.pk]})
    result = services.restore_version(policy, 1)
    policy.refresh_from_db()
    assert (policy.version, policy.name, policy.description, policy.values) == (
        5,
        "AV baseline",
        "",
        {REALTIME: 1},
    )
    assert list(policy.assignments.values_list("group_id", flat=True)) == [fleet.workstations.pk]
    assert result.skipped_groups == []
    assert policy.versions.get(number=5).note == "Restored version 1"
    assert services.diff_snapshots(
        policy.versions.get(number=1).snapshot, policy.versions.get(number=5).snapshot
    ).empty


def test_restore_leaves_out_groups_that_no_longer_exist(fleet):
    policy = make(assignments={"include": [fleet.workstations.pk, fleet.pilot.pk]})
    services.set_assignments(policy, {"include": [fleet.servers.pk]})
    pilot_id = str(fleet.pilot.group_id)
    fleet.pilot.delete()
    result = services.restore_version(policy, 1)
    assert result.skipped_groups == [pilot_id]
    assert list(result.policy.assignments.values_list("group_id", flat=True)) == [fleet.workstations.pk]


def test_restore_keeps_a_name_now_used_by_another_policy_too():
    policy = make("Old name")
    services.update_basics(policy, "New name", "")
    make("Old name")
    restored = services.restore_version(policy, 1).policy
    assert (restored.name, restored.version) == ("Old name", 3)


def test_an_edit_started_on_an_older_version_is_refused():
    policy = make(values={REALTIME: 1})
    services.update_settings(policy, {REALTIME: 0})
    with pytest.raises(services.PolicyError) as caught:
        services.update_settings(policy, {CPU: 10}, expected_version=1)
    assert "changed by someone else" in caught.value.by_field()["version"][0]
    assert Policy.objects.get().values == {REALTIME: 0}


# ---- duplicate, delete, signals, audit ----------------------------------------------------------------------


def test_duplicate_copies_the_profile_and_settings_but_not_the_assignments(fleet):
    policy = make(values={REALTIME: 1, CPU: 25}, assignments={"include": [fleet.workstations.pk]})
    copy = services.duplicate(policy)
    assert copy.name == "AV baseline - Copy" and copy.pk != policy.pk
    assert (copy.values, copy.settings, copy.profile) == (policy.values, policy.settings, policy.profile)
    assert not copy.assignments.exists()
    assert services.duplicate(policy).name == "AV baseline - Copy (2)"
    assert copy.versions.get().note.startswith("Duplicated from “AV baseline”")
    assert services.duplicate(policy, name="AV baseline").name == "AV baseline"  # allowed, as in Graph


def test_delete_sends_policy_changed_with_the_devices_that_had_the_policy(fleet, signals):
    policy = make(assignments={"include": [fleet.servers.pk, fleet.pilot.pk], "exclude": [fleet.sql.pk]})
    signals.clear()
    device_ids = services.delete(policy)
    assert device_ids == {fleet.build1.pk, fleet.ws1.pk}
    assert len(signals) == 1
    sent = signals[0]
    assert (sent["kind"], sent["device_ids"], sent["policy"].pk) == ("deleted", device_ids, policy.pk)
    assert not Policy.objects.exists() and not PolicyVersion.objects.exists()


def test_create_update_and_assign_send_policy_changed(fleet, signals):
    policy = make(values={REALTIME: 1}, assignments={"include": [fleet.sql.pk]})
    services.update_settings(policy, {REALTIME: 0})
    services.set_assignments(policy, {"include": [fleet.build.pk]})
    assert [s["kind"] for s in signals] == ["created", "updated", "assigned"]
    # Devices that lose the policy and devices that gain it are both told.
    assert signals[2]["device_ids"] == {fleet.sql1.pk, fleet.sql2.pk, fleet.build1.pk}


def test_every_change_is_audited_with_before_and_after(fleet):
    policy = make(values={REALTIME: 1})
    services.update_settings(policy, {REALTIME: 0})
    services.delete(policy)
    events = list(AuditEvent.objects.order_by("id").values_list("action", "before", "after"))
    assert [e[0] for e in events] == ["policy.create", "policy.update", "policy.delete"]
    assert events[0][1] is None and events[0][2]["values"] == {REALTIME: 1}
    assert events[1][1] == {"values": {REALTIME: 1}, "version": 1}
    assert events[1][2] == {"values": {REALTIME: 0}, "version": 2}
    assert events[2][1]["name"] == "AV baseline" and events[2][2] is None


def test_firewall_profile_settings_round_trip_through_the_graph_shape():
    values = {
        "vendor_msft_firewall_mdmstore_domainprofile_enablefirewall": "true",
        "vendor_msft_firewall_mdmstore_domainprofile_defaultinboundaction": 1,
        "vendor_msft_firewall_mdmstore_global_ipsecexempt": ["1", "2"],
    }
    policy = make("FW", profile=FIREWALL, values=values)
    assert from_graph_settings(CATALOG, FIREWALL, policy.settings)[0] == policy.values
