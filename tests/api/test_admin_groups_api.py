"""Graph role assignments whose members are admin groups (security groups of users)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from console import rbac

pytestmark = pytest.mark.django_db


def _user(name: str):
    return get_user_model().objects.create_user(name, password="x-Unused-1234")


def test_the_graph_role_assignment_takes_an_admin_group_id_as_a_member(ga_api):
    ann = _user("ann")
    helpdesk = rbac.create_admin_group(name="Helpdesk", members=[ann])
    role = rbac.get_role("Read Only Operator")
    body = {
        "displayName": "Helpdesk readers",
        "members": [str(helpdesk.group_id)],
        "roleDefinition@odata.bind": f"https://graph.microsoft.com/beta/deviceManagement/roleDefinitions/{role.definition.role_id}",
    }
    created = ga_api.post("/beta/deviceManagement/roleAssignments", body)
    assert created.status_code == 201, created.content
    assert created.json()["members"] == [str(helpdesk.group_id)]
    assert ann.has_perm("devices.view_device")
