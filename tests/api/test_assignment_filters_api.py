"""Graph beta deviceManagement/assignmentFilters: list, get, create, PATCH, delete, as Graph shapes them; the
same checks, audit and refusal to delete a filter in use as Tenant administration › Filters."""

from __future__ import annotations

import pytest

from console.models import AuditEvent
from policies import services
from policies.models import AssignmentFilter

pytestmark = pytest.mark.django_db

BASE = "/beta/deviceManagement/assignmentFilters"
RULE = '(device.deviceName -startsWith "WS")'


def test_a_script_creates_reads_updates_and_deletes_a_filter(ga_api):
    created = ga_api.post(
        BASE,
        {
            "@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter",
            "displayName": "Workstations",
            "description": "WS devices",
            "platform": "windows10AndLater",
            "rule": RULE,
            "roleScopeTags": ["0"],
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["platform"] == "windows10AndLater" and body["rule"] == RULE
    assert created["Location"].endswith(f"{BASE}/{body['id']}")
    assert {"createdDateTime", "lastModifiedDateTime", "roleScopeTags"} <= set(body)

    listed = ga_api.get(BASE, **{"$filter": "platform eq 'windows10AndLater'"}).json()["value"]
    assert [f["displayName"] for f in listed] == ["Workstations"]
    selected = ga_api.get(f"{BASE}/{body['id']}", **{"$select": "displayName"}).json()
    assert selected["displayName"] == "Workstations" and "rule" not in selected

    patched = ga_api.patch(f"{BASE}/{body['id']}", {"rule": '(device.osVersion -startsWith "10.0.26100")'})
    assert patched.status_code == 200 and patched.json()["displayName"] == "Workstations"
    assert AssignmentFilter.objects.get().rule == '(device.osVersion -startsWith "10.0.26100")'

    assert ga_api.delete(f"{BASE}/{body['id']}").status_code == 204
    assert not AssignmentFilter.objects.exists()
    actions = list(AuditEvent.objects.filter(source="api").values_list("action", flat=True).order_by("pk"))
    assert actions == ["filter.create", "filter.update", "filter.delete"]


def test_a_rule_that_does_not_parse_is_400_with_its_column(ga_api):
    r = ga_api.post(
        BASE, {"displayName": "Bad", "platform": "windows10AndLater", "rule": "(device.model -eq 1)"}
    )
    assert r.status_code == 400
    assert "Column 2: device.model isn't recorded for the simulated devices" in r.json()["error"]["message"]
    assert not AssignmentFilter.objects.exists()


def test_a_taken_name_is_409_and_a_filter_in_use_cannot_be_deleted(ga_api, make_group):
    f = AssignmentFilter.objects.create(name="Taken", rule=RULE)
    r = ga_api.post(BASE, {"displayName": "taken", "platform": "windows10AndLater", "rule": RULE})
    assert r.status_code == 409
    group = make_group("WS")
    services.create_policy(
        "Microsoft Defender Antivirus",
        "windows",
        "Uses it",
        "",
        {},
        {"include": [group.pk], "filters": [[group.pk, f.pk, "include"]]},
    )
    r = ga_api.delete(f"{BASE}/{f.filter_id}")
    assert r.status_code == 409 and "“Uses it”" in r.json()["error"]["message"]
    assert AssignmentFilter.objects.filter(pk=f.pk).exists()


def test_a_read_only_operator_lists_filters_but_cannot_create_them(ro_api):
    AssignmentFilter.objects.create(name="F", rule=RULE)
    assert ro_api.get(BASE).status_code == 200
    r = ro_api.post(BASE, {"displayName": "G", "platform": "windows10AndLater", "rule": RULE})
    assert r.status_code == 403 and AssignmentFilter.objects.count() == 1


def test_an_unknown_filter_is_404(ga_api):
    assert ga_api.get(f"{BASE}/00000000-0000-0000-0000-000000000000").status_code == 404


def test_every_permission_of_a_role_has_its_intune_resource_action_in_role_definitions(ga_api):
    from console.api.people import RESOURCE_ACTIONS
    from console.rbac import ACTION_KEYS

    assert set(ACTION_KEYS) <= set(RESOURCE_ACTIONS)
    roles = ga_api.get("/beta/deviceManagement/roleDefinitions")
    assert roles.status_code == 200
    admin = next(r for r in roles.json()["value"] if r["displayName"] == "Global Administrator")
    actions = admin["rolePermissions"][0]["resourceActions"][0]["allowedResourceActions"]
    assert "Microsoft.Intune_AssignmentFilter_Create" in actions
