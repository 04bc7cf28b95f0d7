"""policies/demo.py: a realistic set of policies on the demo groups, with real conflicts and merges."""

from __future__ import annotations

import io

import pytest

from policies import demo, preview
from policies.models import Policy, PolicyAssignment

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_fleet():
    from console.demo import seed as seed_console
    from devices.demo import seed as seed_devices

    seed_console(io.StringIO())
    seed_devices(io.StringIO(), devices=250, seed=7)


def _impact(name: str):
    policy = Policy.objects.get(name=name)
    return preview.impact(next(p for p in preview.saved_policy_inputs() if p.id == policy.pk))


def test_it_creates_the_curated_policies_assigned_to_the_demo_groups(demo_fleet):
    out = io.StringIO()
    demo.seed(out, policies=12)
    assert Policy.objects.count() == 12
    assert set(Policy.objects.values_list("policy_type", flat=True)) == {
        "antivirus",
        "firewall",
        "edr",
        "asr",
    }
    assert not PolicyAssignment.objects.filter(group__object_kind="user").exists()
    assert PolicyAssignment.objects.filter(intent="include").values("policy").distinct().count() == 12
    assert "12 created" in out.getvalue()


def test_the_demo_has_a_realtime_conflict_and_merging_exclusions(demo_fleet):
    demo.seed(io.StringIO(), policies=12)
    conflicts = _impact("Antivirus - SQL Servers performance").conflicts
    assert [(c.display_name, [p.name for p in c.policies]) for c in conflicts] == [
        ("Allow Realtime Monitoring", ["Antivirus baseline - All MDE devices"])
    ]
    assert conflicts[0].device_count > 0
    merges = {
        m.display_name: [p.name for p in m.policies] for m in _impact("AV exclusions - SQL Servers").merges
    }
    assert merges["Excluded Paths"] == ["AV exclusions - Build agents"]


def test_running_it_again_converges_and_more_policies_can_be_asked_for(demo_fleet):
    demo.seed(io.StringIO(), policies=12)
    demo.seed(io.StringIO(), policies=15)
    assert Policy.objects.count() == 15
    assert Policy.objects.filter(versions__number=1).count() == 15


def test_without_the_demo_groups_policies_are_created_unassigned(db):
    out = io.StringIO()
    demo.seed(out, policies=3)
    assert Policy.objects.count() == 3 and not PolicyAssignment.objects.exists()
    assert "skipped: group not found" in out.getvalue()


def test_the_demo_has_macos_and_linux_policies_that_reach_the_linux_and_mac_devices(demo_fleet):
    from devices.models import Device

    demo.seed(io.StringIO(), policies=18)
    platforms = dict(Policy.objects.values_list("name", "platform"))
    assert platforms["Linux Antivirus - baseline"] == "linux"
    assert platforms["macOS EDR - device tag"] == "macos"
    assert Policy.objects.filter(platform="linux").count() == 4
    merges = {
        m.display_name: [p.name for p in m.policies]
        for m in _impact("Linux AV exclusions - web servers").merges
    }
    assert merges["Scan exclusions"] == ["Linux Antivirus - baseline"]
    assert Device.objects.filter(os="linux").exists()
