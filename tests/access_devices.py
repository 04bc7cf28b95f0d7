"""Who may GET each page of the devices app (walked for every role by tests/console/test_access.py)."""

from __future__ import annotations

GA, ESM, RO = "ga", "esm", "ro"
ALL = {GA: 200, ESM: 200, RO: 200}
CHANGERS = {GA: 200, ESM: 200, RO: 403}
POST_ONLY = {GA: 405, ESM: 405, RO: 405}  # state changes are POST only; a GET is refused before anything runs


def _device():
    from devices.models import Device

    return {"pk": Device.objects.create(display_name="ACCESS-WS-0001", os="windows").pk}


def _group():
    from devices.models import Group

    return {"pk": Group.objects.create(name="Access test group").pk}


def _bulk_job():
    from console.models import Job
    from devices.bulk import SYNC_JOB

    return {"pk": Job.objects.create(kind=SYNC_JOB, total=3, params={"ids": [1, 2, 3]}).pk}


ACCESS = {
    "devices:list": (None, ALL),
    "devices:bulk": (None, POST_ONLY),
    "devices:bulk_job": (_bulk_job, ALL),
    "devices:detail": (_device, ALL),
    "devices:status": (_device, ALL),
    "devices:effective": (_device, ALL),
    "devices:tags": (_device, CHANGERS),
    "devices:delete": (_device, CHANGERS),
    "devices:group_list": (None, ALL),
    "devices:group_create": (None, CHANGERS),
    "devices:group_validate": (None, ALL),
    "devices:group_detail": (_group, ALL),
    "devices:group_edit": (_group, CHANGERS),
    "devices:group_delete": (_group, CHANGERS),
    "devices:group_member_search": (_group, ALL),
    "devices:group_member_add": (_group, POST_ONLY),
    "devices:group_member_remove": (_group, POST_ONLY),
    "devices:mde_connector": (None, ALL),
    "devices:enforcement_scope": (None, ALL),
    "devices:scope_status": (None, ALL),
    "devices:reevaluate": (None, POST_ONLY),
}
