"""For random roles, scopes and scope tags, what lists, counts, exports and API calls return equals a direct filter
over the objects in scope (and nothing at all without the permission to read them)."""

from __future__ import annotations

import csv
import io

from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from console import rbac, scopetags
from console.roles import sync_roles
from console.tokens import create_token
from devices.models import Device, Group, GroupMember
from policies import services
from policies.models import Policy
from reports.models import DevicePolicyStatus, Status

TAGS = ("Paris", "Berlin", "Default")
tagged = st.lists(st.frozensets(st.sampled_from(TAGS)), min_size=0, max_size=6)  # each object's tags
tag_grants = st.lists(
    st.tuples(st.booleans(), st.frozensets(st.sampled_from(TAGS))), min_size=1, max_size=3
)  # (may read policies and groups, the assignment's tags; empty: Default)

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
        policy = services.create_policy("Microsoft Defender Antivirus", "windows", "AV", "", {})
        statuses = list(Status.values)
        for i, member_of in enumerate(devices):
            device = Device.objects.create(
                display_name=f"D{i:02d}", os="windows", managed_by="mde" if i % 2 else "none"
            )
            for name in member_of:
                GroupMember.objects.create(group=groups[name], device=device)
            DevicePolicyStatus.objects.create(
                device=device, policy=policy, status=statuses[i % len(statuses)]
            )
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
        self._check_overview(grants, expected)
        self._check_api(user, grants, expected)

    def _check_overview(self, grants, expected: list[str]):
        """Endpoint security overview: its charts and counts are the viewer's devices', not the tenant's."""
        page = self.client.get(reverse("reports:overview"))
        if not any("Endpoint security policies: Read" in actions for actions, _ in grants):
            assert page.status_code == 403
            return
        in_scope = Device.objects.filter(display_name__in=expected)
        ctx = page.context
        assert ctx["mde_total"] == in_scope.filter(managed_by="mde").count()
        assert ctx["enrollment_total"] + ctx["not_evaluated"] == len(expected)
        rows = DevicePolicyStatus.objects.filter(device__in=in_scope)
        assert ctx["status_totals"] == {s: rows.filter(status=s).count() for s in ctx["status_totals"]}
        assert ctx["problem_devices"] == rows.filter(status__in=["error", "conflict"]).count()

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


def _tags_or_default(names) -> frozenset[str]:
    return frozenset(names) or frozenset({"Default"})


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class ScopeTagProperty(TestCase):
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(policies=tagged, groups=tagged, grants=tag_grants)
    def test_every_view_of_policies_and_groups_equals_a_direct_filter_over_the_tags(
        self, policies, groups, grants
    ):
        sync_roles()
        tags = {name: scopetags.create_tag(name=name) for name in TAGS if name != "Default"}
        tags["Default"] = scopetags.default_tag()
        for i, names in enumerate(policies):
            services.create_policy(
                "Microsoft Defender Antivirus",
                "windows",
                f"P{i:02d}",
                "",
                {},
                scope_tags=[tags[n] for n in names],
            )
        for i, names in enumerate(groups):
            Group.objects.create(name=f"G{i:02d}").scope_tags.set(
                [tags[n] for n in names if n != "Default"] or ([tags["Default"]] if names else [])
            )
        user = get_user_model().objects.create_user("tagged", password="x-Unused-1234")
        read = ["Endpoint security policies: Read", "Groups: Read"]
        for n, (may_read, names) in enumerate(grants):
            role = rbac.create_role(name=f"Role {n}", actions=read if may_read else ["Audit data: Read"])
            rbac.create_assignment(
                name=f"A{n}", role=role, members=[user], scope_groups=[], scope_tags=[tags[t] for t in names]
            )

        # What the tags mean, written independently of console.scopetags: an object is seen when its tags (none:
        # Default) meet the tags of the person's assignments (an assignment without tags: Default).
        mine = frozenset().union(*(_tags_or_default(names) for _, names in grants))
        stored_policy_tags = {
            p.name: frozenset(p.scope_tags.values_list("name", flat=True)) for p in Policy.objects.all()
        }
        expected_policies = sorted(n for n, t in stored_policy_tags.items() if _tags_or_default(t) & mine)
        expected_groups = sorted(
            g.name
            for g in Group.objects.all()
            if _tags_or_default(g.scope_tags.values_list("name", flat=True)) & mine
        )
        can_read = any(may_read for may_read, _ in grants)
        self.client.force_login(user)
        page = self.client.get("/endpoint-security/antivirus/", {"per_page": 100})
        if not can_read:
            assert page.status_code == 403
            return
        assert sorted(r.record.name for r in page.context["table"].rows) == expected_policies
        export = b"".join(
            self.client.get("/endpoint-security/antivirus/", {"export": "csv"}).streaming_content
        ).decode("utf-8-sig")
        assert sorted(row[0] for row in list(csv.reader(io.StringIO(export)))[1:]) == expected_policies
        assert self.client.get("/endpoint-security/").context["total"] == len(expected_policies)
        groups_page = self.client.get("/groups/", {"per_page": 100})
        assert sorted(r.record.name for r in groups_page.context["table"].rows) == expected_groups

        n = next(n for n, (may_read, _) in enumerate(grants) if may_read)
        auth = {"Authorization": f"Bearer {create_token(name='t', owner=user, role=f'Role {n}')[1]}"}
        api = self.client.get("/beta/deviceManagement/configurationPolicies", {"$top": "999"}, headers=auth)
        assert sorted(p["name"] for p in api.json()["value"]) == expected_policies
        listed = self.client.get("/v1.0/groups", {"$top": "999"}, headers=auth).json()["value"]
        assert sorted(g["displayName"] for g in listed) == expected_groups
        count = self.client.get("/v1.0/groups/$count", headers={**auth, "ConsistencyLevel": "eventual"})
        assert int(count.content) == len(expected_groups)
