"""Property: after any sequence of check-ins, policy edits, pending marking and management changes, the
aggregates equal a recount of the status rows."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.models import Device
from reports.ingest import mark_pending, recount, remove_devices, stored_counts
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

VALUE_CHOICES = {
    f.PUA: [0, 1, 2],
    f.REALTIME: [0, 1],
    f.BEHAVIOR: [0, 1],
    f.IPS: [0, 1],
    f.LOCALADMINMERGE: [0, 1],
    f.SCRIPT_SCANNING: [0, 1],
}

step = st.one_of(
    st.tuples(st.just("checkin"), st.sets(st.integers(0, 5), min_size=1), st.sampled_from([0.0, 0.3, 1.0])),
    st.tuples(
        st.just("edit"),
        st.integers(0, 3),
        st.dictionaries(st.sampled_from(sorted(VALUE_CHOICES)), st.integers(0, 2), max_size=4),
    ),
    st.tuples(st.just("pending"), st.sets(st.integers(0, 5)), st.sets(st.integers(0, 3))),
    st.tuples(st.just("unmanage"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("tamper"), st.integers(0, 5), st.booleans()),
)


@pytest.fixture
def fleet_world(db):
    ga, gb = f.group("A"), f.group("B")
    devices = [f.device(f"PC-{i}", groups=[ga] if i % 2 else [ga, gb], tamper=bool(i % 3)) for i in range(5)]
    devices.append(f.device("INT-1", groups=[gb], intune=True))
    policies = [
        f.policy("P0", {f.PUA: 1, f.REALTIME: 1}, include=[ga]),
        f.policy("P1", {f.PUA: 2, f.BEHAVIOR: 0}, include=[gb]),
        f.policy("P2", {f.IPS: 1, f.LOCALADMINMERGE: 1}, include=[ga], exclude=[gb]),
        f.policy("P3", {f.EXCLUDED_PATHS: ["C:\\x"]}, profile=f.AV_EXCLUSIONS, include=[ga, gb]),
    ]
    return devices, policies


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=8))
def test_aggregates_always_equal_a_recount(fleet_world, steps):
    devices, policies = fleet_world
    for action, *args in steps:
        if action == "checkin":
            indexes, fault = args
            chosen = [devices[i] for i in sorted(indexes)]
            f.make_due(*chosen)
            f.checkin(*chosen, fault_rate=fault)
        elif action == "edit":
            index, changes = args
            policy = policies[index]
            if policy.profile == f.AV:
                values = {k: VALUE_CHOICES[k][v % len(VALUE_CHOICES[k])] for k, v in changes.items()}
                policy.values = values or {f.PUA: 1}
                policy.save()
        elif action == "pending":
            indexes, policy_indexes = args
            mark_pending([devices[i].pk for i in indexes], [policies[i].pk for i in policy_indexes])
        elif action == "unmanage":
            index, managed = args
            device = devices[index]
            Device.objects.filter(pk=device.pk).update(
                managed_by="mde" if managed else "none", management_type="MicrosoftSense" if managed else ""
            )
            if not managed:
                remove_devices([device.pk])
        elif action == "tamper":
            index, on = args
            Device.objects.filter(pk=devices[index].pk).update(tamper_protection=on)
        assert recount() == stored_counts(), f"after {action} {args}"
