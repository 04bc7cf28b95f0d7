"""For random roles and scopes, what lists, counts, exports and API calls return equals a direct filter over the
devices in scope (and nothing at all without the permission to read devices)."""

from __future__ import annotations

import csv
import io

from django.contrib.auth import get_user_model
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from console import rbac
from console.roles import sync_roles
from console.tokens import create_token
from devices.models import Device, Group, GroupMember

GROUPS = ("Servers", "Kiosks", "Laptops")
ACTIONS = ["Managed devices: Read", "Groups: Read", "Audit data: Read", "Endpoint security policies: Read"]

fleet = st.lists(st.frozensets(st.sampled_from(GROUPS)), min_size=0, max_size=8)  # each device's groups
assignments = st.lists(
    st.tuples(st.frozensets(st.sampled_from(ACTIONS)), st.frozensets(st.sampled_from(GROUPS))),
    min_size=1,
    max_size=3,
)  # (role permissions, scope groups; empty: all devices)


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class ScopeProperty(TestCase):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(devices=fleet, grants=assignments)
    def test_every_view_of_devices_equals_a_direct_filter_over_the_scope(self, devices, grants):
        sync_roles()
        groups = {name: Group.objects.create(name=name) for name in GROUPS}
        for i, member_of in enumerate(devices):
            device = Device.objects.create(display_name=f"D{i:02d}", os="windows")
            for name in member_of:
                GroupMember.objects.create(group=groups[name], device=device)
        user = get_user_model().objects.create_user("scoped", password="x-Unused-1234")
        for n, (actions, scope) in enumerate(grants):
            role = rbac.create_role(name=f"Role {n}", actions=sorted(actions))
            rbac.create_assignment(
                name=f"A{n}", role=role, members=[user], scope_groups=[groups[g] for g in scope]
            )

        expected = self._direct_filter(grants)
        can_read = any("Managed devices: Read" in actions for actions, _ in grants)
        self.client.force_login(user)
        self._check_pages(expected, can_read)
        self._check_api(user, grants, expected)

    @staticmethod
    def _direct_filter(grants) -> list[str]:
        """What the scope means, written independently of devices.scope: all devices if any grant is unscoped."""
        if any(not scope for _, scope in grants):
            devices = Device.objects.all()
        else:
            names = {g for _, scope in grants for g in scope}
            devices = Device.objects.filter(memberships__group__name__in=names).distinct()
        return sorted(devices.values_list("display_name", flat=True))

    def _check_pages(self, expected: list[str], can_read: bool):
        page = self.client.get("/devices/", {"per_page": 100})
        if not can_read:
            assert page.status_code == 403
            return
        assert sorted(r.record.display_name for r in page.context["table"].rows) == expected
        export = b"".join(self.client.get("/devices/", {"export": "csv"}).streaming_content).decode(
            "utf-8-sig"
        )
        assert sorted(row[0] for row in list(csv.reader(io.StringIO(export)))[1:]) == expected
        counts = self.client.get("/").context["summary"]
        assert counts["devices_total"]["value"] == len(expected)

    def _check_api(self, user, grants, expected: list[str]):
        # managedDevices lists devices with a management agent only, as Graph does (not merely discovered ones).
        managed = set(Device.objects.exclude(managed_by="none").values_list("display_name", flat=True))
        expected = [name for name in expected if name in managed]
        for n, (actions, _) in enumerate(grants):
            secret = create_token(name=f"t{n}", owner=user, role=f"Role {n}")[1]
            response = self.client.get(
                "/beta/deviceManagement/managedDevices",
                {"$count": "true", "$top": "999"},
                headers={"Authorization": f"Bearer {secret}"},
            )
            if "Managed devices: Read" not in actions:
                assert response.status_code == 403
                continue
            body = response.json()
            assert sorted(d["deviceName"] for d in body["value"]) == expected
            assert body["@odata.count"] == len(expected)
