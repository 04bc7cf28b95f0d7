"""devices.demo: a fleet that covers every onboarding case, groups whose counts match their rows, fast writes."""

from __future__ import annotations

import io

import pytest

from console import demo as console_demo
from devices import demo, onboarding
from devices.models import Device, DeviceCredential, Group, GroupMember, OnboardingEvent
from devices.rules import parse_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    out = io.StringIO()
    console_demo.seed(out)
    demo.seed(out, devices=400, seed=7)
    return out.getvalue()


def test_the_demo_fleet_covers_every_case(seeded):
    statuses = set(Device.objects.values_list("enrollment_status", flat=True))
    assert {"Success", onboarding.NOT_ENROLLED, onboarding.GENERAL_ERROR, onboarding.HYBRID_JOIN_FAILURE,
            onboarding.TENANT_MISMATCH, ""} <= statuses  # fmt: skip
    assert set(Device.objects.values_list("managed_by", flat=True)) >= {"mde", "intune", "co_managed", "none"}
    assert set(Device.objects.values_list("os", flat=True)) == {"windows", "windows_server", "macos", "linux"}
    assert set(Device.objects.values_list("trust", flat=True)) >= {"existing", "hybrid", "synthetic"}
    for facts in ({"is_non_persistent_vdi": True}, {"is_server_core": True}, {"is_domain_controller": True},
                  {"language_mode": "ConstrainedLanguage"}, {"license_source": "servers_only"},
                  {"onboarded_via_mdc": True}, {"configmgr_client": True}, {"in_sync_scope": False}):  # fmt: skip
        assert Device.objects.filter(**facts).exists(), facts
    sql = Device.objects.get(display_name="SRV-SQL-01")
    assert sql.is_mde_managed and sql.has_tag("MDE-Management") and sql.trust == "hybrid"
    web = Device.objects.get(display_name="SRV-WEB-01")
    assert web.enrollment_status_code == 2
    assert Device.objects.filter(display_name__startswith="CONTOSO-WS-").exists()
    assert Device.objects.filter(display_name__startswith="mac-").exists()
    assert Device.objects.values("display_name").distinct().count() == Device.objects.count()
    assert "Devices: 400" in seeded and "Managed by:" in seeded


def test_the_demo_state_is_what_onboarding_would_decide(seeded):
    from console.models import TenantSettings

    tenant = TenantSettings.load()
    for device in Device.objects.all():
        assert not onboarding.differs(device, onboarding.evaluate(device, tenant)), device.display_name
    managed = Device.objects.filter(managed_by="mde")
    assert DeviceCredential.objects.filter(revoked_at__isnull=True).count() == managed.count()
    assert not managed.filter(next_checkin_at__isnull=True).exists()
    assert (
        OnboardingEvent.objects.filter(device__in=managed, step=onboarding.STEP_MANAGED).count()
        == managed.count()
    )


def test_the_demo_groups_hold_exactly_what_their_rules_match(seeded):
    names = {"All MDE managed devices", "Windows Servers", "Security Operations", "MDE pilot - Servers"}
    assert names <= set(Group.objects.values_list("name", flat=True))
    assert Group.objects.get(name="All MDE managed devices").membership_rule == (
        '(device.managementType -eq "MicrosoftSense")'
    )
    for group in Group.objects.all():
        assert group.member_count == GroupMember.objects.filter(group=group).count(), group.name
        if group.is_dynamic:
            rule = parse_rule(group.membership_rule)
            expected = {d.pk for d in Device.objects.all() if rule.matches(d.entra_properties())}
            assert set(group.members.values_list("pk", flat=True)) == expected, group.name
    assert Group.objects.get(name="Security Operations").member_count == 0
    assert not Group.objects.get(name="Security Operations").targetable


def test_seeding_again_replaces_the_fleet(seeded):
    demo.seed(io.StringIO(), devices=50, seed=1)
    assert Device.objects.count() == 50
    assert Group.objects.filter(name="Windows Servers").count() == 1
    assert not OnboardingEvent.objects.exclude(device__in=Device.objects.all()).exists()


def test_the_demo_writes_without_a_query_per_device(django_assert_max_num_queries):
    console_demo.seed(io.StringIO())
    with django_assert_max_num_queries(60):
        demo.seed(io.StringIO(), devices=3000, seed=3)
    assert Device.objects.count() == 3000
