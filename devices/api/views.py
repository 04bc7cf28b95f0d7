"""Graph `deviceManagement/managedDevices` (Intune's view of a device), `devices` (the Entra device object) and
`groups` with their members (graph-api-shapes.md §3, §5, §6), for beta and v1.0.

A device has Graph's three ids, and they differ as in Graph (scripts join across them): managedDevice.id
(Device.managed_device_id), the Entra deviceId (Device.device_id = managedDevice.azureADDeviceId =
device.deviceId) and the Entra object id (Device.entra_object_id = device.id, the directoryObject id that
`members/$ref` and `members` use). managedDevices lists managed devices only; a merely discovered device (no
management agent) is an Entra device object but no managedDevice, as in Intune.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import FieldError, ValidationError
from django.db import DataError
from django.db.models import ProtectedError, Q
from django.http import HttpResponse
from django.utils.text import slugify
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from console import audit
from console.api.common import (
    ADVANCED_QUERIES,
    BOOL,
    CONSISTENCY,
    COUNT,
    DATETIME,
    NDATETIME,
    NEVER,
    NSTRING,
    SKIP,
    SKIPTOKEN,
    STRING,
    STRINGS,
    TOP,
    GraphAutoSchema,
    bool_field,
    collection_of,
    constant_field,
    errors,
    filter_param,
    free_text,
    get_by_guid,
    guid_field,
    iso,
    json_request,
    label_field,
    list_collection,
    list_params,
    name_text,
    nullable,
    obj,
    require_eventual_consistency,
    select_param,
    write_errors,
)
from console.api.errors import GraphError
from console.api.odata import apply_select, parse_query
from console.api.views import CountNegotiation, GraphView
from devices import membership, services
from devices.agent import effective_defaults
from devices.checkins import request_policy_sync
from devices.forms import GroupForm
from devices.models import (
    ENTRA_OS_TYPE,
    ENTRA_TRUST_TYPE,
    ConfigSource,
    Device,
    Group,
    JoinType,
    ManagedBy,
    OSType,
)
from devices.scope import scoped, visible_groups
from reports import effective as effective_reads
from reports.models import DeviceEffectiveSetting

GRAPH = "#microsoft.graph."
NO_DEVICE = "00000000-0000-0000-0000-000000000000"

# managementAgent (graph-api-shapes.md §3): devices managed through this channel are msSense.
MANAGEMENT_AGENT = {
    ManagedBy.MDE: "msSense",
    ManagedBy.INTUNE: "mdm",
    ManagedBy.CONFIGMGR: "configurationManagerClient",
    ManagedBy.CO_MANAGED: "configurationManagerClientMdm",
    ManagedBy.NONE: "unknown",
}
# Graph's enum members (managementAgentType, managementState, joinType): $filter refuses other values.
MANAGEMENT_AGENT_ENUM = ("eas", "mdm", "easMdm", "intuneClient", "easIntuneClient", "configurationManagerClient",
                         "configurationManagerClientMdm", "configurationManagerClientMdmEas", "unknown", "jamf",
                         "googleCloudDevicePolicyController", "microsoft365ManagedMdm", "msSense", "intuneAosp",
                         "google", "unknownFutureValue")  # fmt: skip
MANAGEMENT_STATE_ENUM = ("managed", "retirePending", "retireFailed", "wipePending", "wipeFailed", "unhealthy",
                         "deletePending", "retireIssued", "wipeIssued", "wipeCanceled", "retireCanceled",
                         "discovered", "unknownFutureValue")  # fmt: skip
JOIN_TYPE_ENUM = ("unknown", "azureADJoined", "azureADRegistered", "hybridAzureADJoined")
MANAGEMENT_STATE = {
    code: ("discovered" if code == ManagedBy.NONE else "managed") for code in ManagedBy.values
}
JOIN_TYPE = {
    JoinType.ENTRA_JOINED: "azureADJoined",
    JoinType.ENTRA_REGISTERED: "azureADRegistered",
    JoinType.HYBRID_JOINED: "hybridAzureADJoined",
    JoinType.WORKGROUP: "unknown",
    JoinType.DOMAIN_JOINED: "unknown",
}
OS_LABELS = {str(k): v for k, v in ENTRA_OS_TYPE.items()}
TRUST_LABELS = {str(k): v for k, v in ENTRA_TRUST_TYPE.items()}
HEAVY = ("agent_state", "enrollment_message", "desired_fingerprint")


def _in_entra(device: Device) -> bool:
    return bool(device.trust) or device.join_type in ENTRA_TRUST_TYPE


# ------------------------------------------------------------------------------------------------ shapes


def managed_device_json(device: Device, expand: set[str] = frozenset()) -> dict[str, Any]:
    in_entra = _in_entra(device)
    return {
        "@odata.type": GRAPH + "managedDevice",
        "id": str(device.managed_device_id),
        "deviceName": device.display_name,
        "operatingSystem": device.entra_os_type,
        "osVersion": device.os_version,
        "managementAgent": MANAGEMENT_AGENT.get(device.managed_by, "unknown"),
        "managementState": MANAGEMENT_STATE.get(device.managed_by, "managed"),
        "managedDeviceOwnerType": "company",
        "complianceState": "unknown",
        "lastSyncDateTime": iso(device.last_checkin_at) or NEVER,
        "enrolledDateTime": iso(device.enrolled_at) or NEVER,
        "azureADDeviceId": str(device.device_id) if in_entra else NO_DEVICE,
        "azureADRegistered": in_entra,
        "deviceRegistrationState": "registered" if in_entra else "notRegistered",
        "deviceEnrollmentType": "unknown",
        "joinType": JOIN_TYPE.get(device.join_type, "unknown"),
        "userPrincipalName": "",
        "serialNumber": "",
        "model": "",
        "manufacturer": "",
    }


def device_json(device: Device, version: str = "beta") -> dict[str, Any]:
    data = {
        "@odata.type": GRAPH + "device",
        "id": str(device.entra_object_id),
        "deviceId": str(device.device_id),
        "displayName": device.display_name,
        "operatingSystem": device.entra_os_type,
        "operatingSystemVersion": device.os_version,
        "trustType": device.entra_trust_type or None,
        "isManaged": device.managed_by != ManagedBy.NONE,
        "isCompliant": None,
        "accountEnabled": True,
        "systemLabels": device.label_list,
        "approximateLastSignInDateTime": iso(device.last_checkin_at),
        "registrationDateTime": iso(device.enrolled_at or device.created_at),
    }
    if version == "beta":
        data["managementType"] = device.management_type or None  # beta only: MicrosoftSense, MDM
    return data


def group_json(group: Group, expand: set[str] = frozenset()) -> dict[str, Any]:
    dynamic = group.is_dynamic
    return {
        "@odata.type": GRAPH + "group",
        "id": str(group.group_id),
        "displayName": group.name,
        "description": group.description or None,
        "groupTypes": ["DynamicMembership"] if dynamic else [],
        "membershipRule": group.membership_rule or None if dynamic else None,
        "membershipRuleProcessingState": "On" if dynamic else None,
        "mailEnabled": False,
        "mailNickname": slugify(group.name)[:64] or str(group.group_id)[:8],
        "securityEnabled": True,
        "createdDateTime": iso(group.created_at),
        "visibility": None,
    }


# ------------------------------------------------------------------------------------------------ $filter


def _management_type(lookup: str, value: object) -> Q:
    if value is None:
        return Q(management_type="")
    if not isinstance(value, str) or lookup not in ("exact", "istartswith", "icontains", "iendswith"):
        raise GraphError(400, "Invalid $filter: managementType is compared with a quoted text value.")
    return Q(**{f"management_type__{'iexact' if lookup == 'exact' else lookup}": value}) & ~Q(
        management_type=""
    )


def _system_label(lookup: str, value: object) -> Q:
    if lookup not in ("any", "exact") or not isinstance(value, str) or "," in value:
        raise GraphError(400, "Invalid $filter: use systemLabels/any(s:s eq 'MDEManaged').")
    return Q(system_labels__icontains=f",{value},")


def _group_types(lookup: str, value: object) -> Q:
    if lookup not in ("any", "exact") or not isinstance(value, str):
        raise GraphError(400, "Invalid $filter: use groupTypes/any(c:c eq 'DynamicMembership').")
    return (
        Q(membership_type=Group.Membership.DYNAMIC) if value.lower() == "dynamicmembership" else Q(pk__in=[])
    )


MANAGED_FIELDS = {
    "id": guid_field("managed_device_id", "id"),
    "deviceName": "display_name",
    "operatingSystem": label_field("os", OS_LABELS, "operatingSystem"),
    "osVersion": "os_version",
    "managementAgent": label_field(
        "managed_by", MANAGEMENT_AGENT, "managementAgent", enum=MANAGEMENT_AGENT_ENUM
    ),
    "managementState": label_field(
        "managed_by", MANAGEMENT_STATE, "managementState", enum=MANAGEMENT_STATE_ENUM
    ),
    "joinType": label_field("join_type", JOIN_TYPE, "joinType", enum=JOIN_TYPE_ENUM),
    "azureADDeviceId": guid_field("device_id", "azureADDeviceId"),
    "lastSyncDateTime": "last_checkin_at",
    "enrolledDateTime": "enrolled_at",
}
MANAGED_ORDER = {"deviceName": "display_name", "lastSyncDateTime": "last_checkin_at", "osVersion": "os_version",
                 "enrolledDateTime": "enrolled_at", "operatingSystem": "os"}  # fmt: skip
DEVICE_FIELDS = {
    "id": guid_field("entra_object_id", "id"),
    "deviceId": guid_field("device_id", "deviceId"),
    "displayName": "display_name",
    "operatingSystem": label_field("os", OS_LABELS, "operatingSystem"),
    "operatingSystemVersion": "os_version",
    "trustType": label_field("join_type", TRUST_LABELS, "trustType"),
    "managementType": _management_type,
    "systemLabels": _system_label,
    "isManaged": bool_field(~Q(managed_by=ManagedBy.NONE), "isManaged"),
    "accountEnabled": constant_field(True, "accountEnabled"),
    "approximateLastSignInDateTime": "last_checkin_at",
}
DEVICE_ORDER = {"displayName": "display_name", "approximateLastSignInDateTime": "last_checkin_at"}
GROUP_FIELDS = {
    "id": guid_field("group_id", "id"),
    "displayName": "name",
    "description": "description",
    "groupTypes": _group_types,
    "membershipRule": "membership_rule",
    "membershipRuleProcessingState": label_field(
        "membership_type",
        {Group.Membership.DYNAMIC: "On", Group.Membership.ASSIGNED: ""},
        "membershipRuleProcessingState",
    ),
    "mailEnabled": constant_field(False, "mailEnabled"),
    "securityEnabled": constant_field(True, "securityEnabled"),
    "createdDateTime": "created_at",
}
GROUP_ORDER = {"displayName": "name", "createdDateTime": "created_at"}

# ------------------------------------------------------------------------------------------------ OpenAPI

MANAGED_DEVICE = {
    "type": "object",
    "description": "managedDevice",
    "properties": {
        "@odata.type": STRING,
        "id": STRING,
        "deviceName": STRING,
        "operatingSystem": STRING,
        "osVersion": STRING,
        "managementAgent": {"type": "string", "enum": sorted(set(MANAGEMENT_AGENT.values()))},
        "managementState": {"type": "string", "enum": ["managed", "discovered"]},
        "managedDeviceOwnerType": STRING,
        "complianceState": STRING,
        "lastSyncDateTime": DATETIME,
        "enrolledDateTime": DATETIME,
        "azureADDeviceId": STRING,
        "azureADRegistered": BOOL,
        "deviceRegistrationState": STRING,
        "deviceEnrollmentType": STRING,
        "joinType": {"type": "string", "enum": sorted(set(JOIN_TYPE.values()))},
        "userPrincipalName": STRING,
        "serialNumber": STRING,
        "model": STRING,
        "manufacturer": STRING,
    },
}
DEVICE = {
    "type": "object",
    "description": "device (directoryObject); managementType is beta only",
    "properties": {
        "@odata.type": STRING,
        "id": STRING,
        "deviceId": STRING,
        "displayName": STRING,
        "operatingSystem": STRING,
        "operatingSystemVersion": STRING,
        "trustType": nullable({"type": "string", "enum": sorted(set(TRUST_LABELS.values()))}),
        "isManaged": BOOL,
        "isCompliant": nullable(BOOL),
        "accountEnabled": BOOL,
        "systemLabels": STRINGS,
        "approximateLastSignInDateTime": NDATETIME,
        "registrationDateTime": NDATETIME,
        "managementType": NSTRING,
    },
}
GROUP = {
    "type": "object",
    "description": "group (security group: assigned, or dynamic device membership)",
    "properties": {
        "@odata.type": STRING,
        "id": STRING,
        "displayName": STRING,
        "description": NSTRING,
        "groupTypes": STRINGS,
        "membershipRule": NSTRING,
        "membershipRuleProcessingState": nullable({"type": "string", "enum": ["On"]}),
        "mailEnabled": BOOL,
        "mailNickname": STRING,
        "securityEnabled": BOOL,
        "createdDateTime": DATETIME,
        "visibility": NSTRING,
    },
}
DIRECTORY_OBJECT_URL = (
    r"^https://graph\.microsoft\.com/(?:v1\.0|beta)/(?:directoryObjects|devices)/"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# A regular subset of Entra's rule syntax that is always a valid device rule (the full syntax: devices.rules).
RULE_SUBSET = (
    r'^\(device\.(?:displayName|deviceOSType|managementType) -(?:eq|ne|startsWith) "[A-Za-z0-9 ._-]{0,30}"\)$'
)
MAIL_NICKNAME = r"^[A-Za-z0-9._-]{1,64}$"  # the schema's pattern, enforced by _group_form_data
_GROUP_COMMON = {
    "displayName": name_text(256),
    "description": nullable(free_text(1024)),
    "mailEnabled": {"type": "boolean", "enum": [False]},
    "mailNickname": {"type": "string", "pattern": MAIL_NICKNAME},
    "securityEnabled": {"type": "boolean", "enum": [True]},
    "visibility": nullable({"type": "string", "enum": ["Public", "Private"]}),
}
_ASSIGNED = {
    **_GROUP_COMMON,
    "groupTypes": {"type": "array", "maxItems": 0},
    "members@odata.bind": {"type": "array", "items": {"type": "string", "pattern": DIRECTORY_OBJECT_URL},
                           "maxItems": 20, "uniqueItems": True, "nullable": True},  # null: no members
}  # fmt: skip
_DYNAMIC = {
    **_GROUP_COMMON,
    "groupTypes": {"type": "array", "items": {"type": "string", "enum": ["DynamicMembership"]}, "minItems": 1,
                   "maxItems": 1},
    "membershipRule": {"type": "string", "pattern": RULE_SUBSET, "description": "Entra device rule syntax"},
    "membershipRuleProcessingState": {"type": "string", "enum": ["On"]},
}  # fmt: skip
_REQUIRED = ["displayName", "mailEnabled", "mailNickname", "securityEnabled"]
GROUP_IN = {
    "oneOf": [
        obj(_ASSIGNED, required=_REQUIRED, description="An assigned security group (members@odata.bind)"),
        obj(
            _DYNAMIC,
            required=[*_REQUIRED, "groupTypes", "membershipRule"],
            description="A dynamic device group",
        ),
    ],
    "description": "Only security groups (Graph requires displayName, mailEnabled, mailNickname and "
    "securityEnabled); dynamic groups take device rules in Entra's syntax (the pattern is a subset of it); members "
    "of a dynamic group follow its rule. A displayName another group has is 409: Entra allows duplicate group "
    "names, this console keeps them unique (its pages and rules name groups).",
}
GROUP_PATCH = {
    "oneOf": [
        obj(_ASSIGNED, description="Stay or become an assigned group (add members@odata.bind)"),
        obj(
            _DYNAMIC, required=["groupTypes", "membershipRule"], description="Become or stay a dynamic group"
        ),
    ],
    "description": "Changed properties only. Adding members to a dynamic group is 400, as in Entra.",
}
REF_IN = obj(
    {"@odata.id": {"type": "string", "pattern": DIRECTORY_OBJECT_URL}},
    required=["@odata.id"],
    description="The directory object (device) id is device.id, not managedDevice.id",
)

# ------------------------------------------------------------------------------------------------ helpers


def _props(schema: dict) -> list[str]:
    """The $select-able properties of a response schema (annotations aside)."""
    return [p for p in schema["properties"] if not p.startswith("@")]


def _devices(request=None):
    """Devices, within the role-assignment scope of the request's user when there is one (devices.scope)."""
    devices = Device.objects.defer(*HEAVY)
    return devices if request is None else scoped(devices, request.user)


def _managed_devices(request=None):
    """Intune's managedDevices: devices with a management agent (not merely discovered ones)."""
    return _devices(request).exclude(managed_by=ManagedBy.NONE)


def _managed_device(raw: str, request=None) -> Device:
    return get_by_guid(_managed_devices(request), "managed_device_id", raw, "managedDevice")


def _device(raw: str, what: str = "device", request=None) -> Device:
    """An Entra device object by its object id (device.id, directoryObject id)."""
    return get_by_guid(_devices(request), "entra_object_id", raw, what)


def _groups():
    """Groups the token's owner sees through their scope tags (console.scopetags); another is a 404."""
    return visible_groups(audit.current_actor().user)


def _group(raw: str) -> Group:
    return get_by_guid(_groups(), "group_id", raw, "group")


_SEARCH_CLAUSE = re.compile(r'"\s*(\w+)\s*:\s*([^"]*)"')
SEARCHABLE = {"displayName", "description"}


def _search(request, columns: Mapping[str, str]) -> Q:
    """Entra `$search="displayName:web" OR "description:lab"` (each clause a contains match)."""
    raw = request.GET.get("$search")
    if not raw:
        return Q()
    require_eventual_consistency(request, "$search")
    text = raw.strip()
    q: Q | None = None
    pos = 0
    joiner = "OR"
    while pos < len(text):
        m = _SEARCH_CLAUSE.match(text, pos)
        if not m or m.group(1) not in columns:
            raise GraphError(
                400,
                'Invalid $search: use "property:text" clauses joined by AND or OR; searchable: '
                + ", ".join(sorted(columns)),
            )
        clause = Q(**{f"{columns[m.group(1)]}__icontains": m.group(2)})
        q = clause if q is None else (q | clause if joiner == "OR" else q & clause)
        pos = m.end()
        rest = text[pos:].lstrip()
        if not rest:
            break
        word = rest.split(None, 1)[0].upper()
        if word not in ("AND", "OR"):
            raise GraphError(400, "Invalid $search: clauses are joined by AND or OR.")
        joiner = word
        pos = len(text) - len(rest) + len(word)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return q or Q()


def _directory_collection(view: GraphView, request, queryset, serialize, fields, order, columns, *, context: str,
                          default_order: tuple[str, ...], selectable: list[str]):  # fmt: skip
    if str(request.GET.get("$count", "")).lower() == "true":
        require_eventual_consistency(request, "$count")
    return view.collection(
        request,
        queryset.filter(_search(request, columns)),
        serialize,
        fields=fields,
        orderable=order,
        default_order=default_order,
        context=context,
        selectable=set(selectable),
    )


def _context(request, version: str, path: str) -> str:
    return f"/{version}/$metadata#{path}"


@contextmanager
def _membership_refusal():
    """A refused membership change (a dynamic or user group, an unknown device) is the caller's mistake: 400."""
    try:
        yield
    except membership.MembershipError as exc:
        raise GraphError(400, str(exc)) from None


def _device_objects(view: GraphView, request, queryset, path: str) -> Response:
    """Entra device objects as a collection: the devices list and a group's members."""
    version = view.api_version
    return _directory_collection(
        view,
        request,
        queryset,
        lambda d, expand: device_json(d, version),
        DEVICE_FIELDS,
        DEVICE_ORDER,
        {"displayName": "display_name"},
        context=_context(request, version, path),
        default_order=("display_name",),
        selectable=_props(DEVICE),
    )


def _ref_device(body: Mapping[str, Any]) -> Device:
    ref = body.get("@odata.id")
    if not isinstance(ref, str) or not ref.strip():
        raise GraphError(
            400, "The body needs '@odata.id': the URL of a device, e.g. …/directoryObjects/{id}."
        )
    last = ref.strip().rstrip("/").rsplit("/", 1)[-1]
    m = re.fullmatch(r"(?:\w+\()?'?([0-9a-fA-F-]{36})'?\)?", last)
    if not m:
        raise GraphError(400, f"'{ref[:120]}' is not the URL of a directory object.")
    return _device(m.group(1), "directoryObject")


def _bound_devices(body: Mapping[str, Any]) -> list[Device]:
    raw = body.get("members@odata.bind")
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > 1000:
        raise GraphError(400, "members@odata.bind must be a list of at most 1000 directory object URLs.")
    return [_ref_device({"@odata.id": url}) for url in raw]


GROUP_KEYS = {"displayName", "description", "mailEnabled", "mailNickname", "securityEnabled", "groupTypes",
              "membershipRule", "membershipRuleProcessingState", "members@odata.bind", "visibility"}  # fmt: skip
GROUP_READ_ONLY = {"id", "createdDateTime", "renewedDateTime", "securityIdentifier", "deletedDateTime"}


def _group_form_data(body: Mapping[str, Any], group: Group | None) -> dict[str, str]:
    """The console's group form fields for a Graph group body (validated like the UI form)."""
    for key in body:
        if not str(key).startswith("@") and key not in GROUP_KEYS and key not in GROUP_READ_ONLY:
            raise GraphError(
                400, f"Property '{str(key)[:80]}' does not exist on type 'microsoft.graph.group'."
            )
    if body.get("mailEnabled") not in (None, False):
        raise GraphError(
            400, "Mail-enabled groups aren't supported: create a security group (mailEnabled false)."
        )
    if body.get("securityEnabled") not in (None, True):
        raise GraphError(400, "Only security groups (securityEnabled true) can be targeted by policies.")
    if body.get("visibility") not in (None, "Private", "Public"):
        raise GraphError(400, "visibility must be Public or Private.")
    for key in ("displayName", "description", "membershipRule", "mailNickname"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise GraphError(400, f"{key} must be text.")
    nickname = body.get("mailNickname")
    # re.search, like the schema's own validation ("" on create is answered below: required).
    if (
        nickname is not None
        and (nickname != "" or group is not None)
        and not re.search(MAIL_NICKNAME, nickname)
    ):
        raise GraphError(
            400, "mailNickname must be 1 to 64 letters (A-Z, a-z), digits, dots, hyphens or underscores."
        )
    if group is None:
        # Graph's create group: displayName, mailEnabled, mailNickname and securityEnabled are required.
        missing = [
            k
            for k in ("displayName", "mailEnabled", "mailNickname", "securityEnabled")
            if body.get(k) in (None, "")
        ]
        if missing:
            raise GraphError(
                400,
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required to create a group.",
            )
    types = body.get("groupTypes")
    if types is None:
        dynamic = group.is_dynamic if group is not None else False
    elif not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise GraphError(400, "groupTypes must be a list of text values.")
    elif any(t.lower() == "unified" for t in types):
        raise GraphError(
            400, "Microsoft 365 groups (groupTypes 'Unified') aren't supported: use security groups."
        )
    elif len(types) > 1:
        raise GraphError(400, "groupTypes holds at most one value: ['DynamicMembership'] or [].")
    elif any(t.lower() != "dynamicmembership" for t in types):
        raise GraphError(400, f"groupTypes may only hold 'DynamicMembership', not {types!r}"[:200] + ".")
    else:
        dynamic = bool(types)
    state = body.get("membershipRuleProcessingState")
    if state not in (None, "On"):
        raise GraphError(
            400, "membershipRuleProcessingState 'Paused' isn't supported: rules are always processed (On)."
        )
    rule = body.get("membershipRule")
    if rule is None:
        rule = group.membership_rule if group is not None else ""
    if rule and not dynamic and body.get("membershipRule"):
        raise GraphError(400, "membershipRule needs groupTypes ['DynamicMembership'].")
    if dynamic and group is not None and group.object_kind != Group.ObjectKind.DEVICE:
        raise GraphError(400, "A user group can't become a dynamic device group.")
    return {
        "name": body["displayName"] if body.get("displayName") is not None else (group.name if group else ""),
        "description": body.get("description", group.description if group else "") or "",
        "object_kind": group.object_kind if group is not None else Group.ObjectKind.DEVICE,
        "membership_type": Group.Membership.DYNAMIC if dynamic else Group.Membership.ASSIGNED,
        "membership_rule": rule if dynamic else "",
    }


def _form_error(form) -> GraphError:
    """400 with every problem; 409 when the only one is a displayName another group has (Entra allows that;
    this console keeps group names unique, so it is a conflict with existing state, not a malformed request)."""
    names = {"name": "displayName", "membership_rule": "membershipRule", "membership_type": "groupTypes"}
    codes = {error.code for errors in form.errors.as_data().values() for error in errors}
    if codes == {"unique"}:
        return GraphError(409, " ".join(str(e) for errs in form.errors.values() for e in errs), "Conflict")
    parts = []
    for field, errs in form.errors.items():
        for err in errs:
            parts.append(f"{names.get(field, field)}: {err}" if field != "__all__" else str(err))
    return GraphError(400, " ".join(parts) or "The group isn't valid.")


# ------------------------------------------------------------------------------------------------ views


class VersionedView(GraphView):
    api_version = "beta"
    schema = GraphAutoSchema()


class ManagedDeviceList(VersionedView):
    required_perms = {"GET": "devices.view_device"}

    @extend_schema(
        summary="Devices as Intune sees them; managementAgent msSense = managed by MDE security management",
        parameters=list_params(MANAGED_FIELDS, MANAGED_ORDER, selectable=_props(MANAGED_DEVICE)),
        responses={200: OpenApiResponse(collection_of(MANAGED_DEVICE)), **errors()},
        tags=["managedDevices"],
    )
    def get(self, request):
        return self.collection(
            request,
            _managed_devices(request),
            managed_device_json,
            fields=MANAGED_FIELDS,
            orderable=MANAGED_ORDER,
            default_order=("display_name",),
            context=_context(request, self.api_version, "deviceManagement/managedDevices"),
            selectable=set(_props(MANAGED_DEVICE)),
        )


class ManagedDeviceDetail(VersionedView):
    required_perms = {"GET": "devices.view_device", "DELETE": "devices.delete_device"}

    @extend_schema(
        summary="One managed device",
        parameters=[select_param(_props(MANAGED_DEVICE))],
        responses={200: OpenApiResponse(MANAGED_DEVICE), **errors()},
        tags=["managedDevices"],
    )
    def get(self, request, device_id: str):
        query = parse_query(
            request.GET, fields={}, orderable={}, selectable=set(MANAGED_DEVICE["properties"])
        )
        return Response(apply_select(managed_device_json(_managed_device(device_id, request)), query.select))

    @extend_schema(
        summary="Delete the device (Intune › Devices › Delete: offboards it from security management)",
        responses={204: OpenApiResponse(description="Deleted"), **errors()},
        tags=["managedDevices"],
    )
    def delete(self, request, device_id: str):
        services.delete_device(_managed_device(device_id, request))
        return Response(status=204)


class SyncDevice(VersionedView):
    required_perms = {"POST": "devices.sync_device"}

    @extend_schema(
        summary="Sync: Policy sync for MDE-managed devices; an MDM sync (204, nothing else) for Intune-enrolled ones",
        description=(
            "Graph answers 204 for every managed device. A device managed by MDE checks in now (the same Policy "
            "sync as the button). An Intune-enrolled (or co-managed) device gets an MDM sync request, which Intune "
            "carries out on its own: 204 and an audit record. Graph's documentation is silent on a device managed "
            "by Configuration Manager alone; this server answers 400 with the reason (it has no MDM channel)."
        ),
        request=None,
        responses={204: OpenApiResponse(description="Sync requested"), **write_errors()},
        tags=["managedDevices"],
    )
    def post(self, request, device_id: str):
        device = _managed_device(device_id, request)
        if device.intune_enrolled or device.managed_by in (ManagedBy.INTUNE, ManagedBy.CO_MANAGED):
            audit.record("MDM sync requested", device, before=None, after={"device": device.display_name})
            return Response(status=204)
        outcome = request_policy_sync([device])
        if outcome.refused:
            raise GraphError(400, outcome.refused[0][1])
        return Response(status=204)


class DeviceList(VersionedView):
    required_perms = {"GET": "devices.view_device"}

    @extend_schema(
        summary="Microsoft Entra device objects",
        description=ADVANCED_QUERIES,
        parameters=list_params(DEVICE_FIELDS, DEVICE_ORDER, selectable=_props(DEVICE), directory=True),
        responses={200: OpenApiResponse(collection_of(DEVICE)), **errors()},
        tags=["devices"],
    )
    def get(self, request):
        return _device_objects(self, request, _devices(request), "devices")


class DeviceDetail(VersionedView):
    required_perms = {"GET": "devices.view_device"}

    @extend_schema(
        summary="One Microsoft Entra device object",
        parameters=[select_param(_props(DEVICE))],
        responses={200: OpenApiResponse(DEVICE), **errors()},
        tags=["devices"],
    )
    def get(self, request, object_id: str):
        query = parse_query(request.GET, fields={}, orderable={}, selectable=set(DEVICE["properties"]))
        return Response(
            apply_select(device_json(_device(object_id, "device", request), self.api_version), query.select)
        )


class GroupList(VersionedView):
    required_perms = {"GET": "devices.view_group", "POST": "devices.add_group"}

    @extend_schema(
        summary="Security groups: assigned and dynamic device groups",
        description=ADVANCED_QUERIES,
        parameters=[
            *list_params(GROUP_FIELDS, GROUP_ORDER, selectable=_props(GROUP), directory=True),
        ],
        responses={200: OpenApiResponse(collection_of(GROUP)), **errors()},
        tags=["groups"],
    )
    def get(self, request):
        return _directory_collection(
            self,
            request,
            _groups(),
            group_json,
            GROUP_FIELDS,
            GROUP_ORDER,
            {"displayName": "name", "description": "description"},
            context=_context(request, self.api_version, "groups"),
            default_order=("name",),
            selectable=_props(GROUP),
        )

    @extend_schema(
        summary="Create a security group (201); dynamic: groupTypes ['DynamicMembership'] and a device rule",
        request=json_request(GROUP_IN),
        responses={201: OpenApiResponse(GROUP), **write_errors(409)},
        tags=["groups"],
    )
    def post(self, request):
        body = self.json_body(request)
        form = GroupForm(_group_form_data(body, None))
        bound = _bound_devices(body)
        if not form.is_valid():
            raise _form_error(form)
        if bound and form.cleaned_data["membership_type"] == Group.Membership.DYNAMIC:
            raise GraphError(
                400, "Members of a dynamic group follow its rule: don't send members@odata.bind."
            )
        with _membership_refusal():
            group = services.create_group(form.save(commit=False), members=[d.pk for d in bound])
        group.refresh_from_db()
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{group.group_id}")
        return Response(group_json(group), status=201, headers={"Location": location})


class GroupCount(VersionedView):
    required_perms = {"GET": "devices.view_group"}
    content_negotiation_class = CountNegotiation  # the SDKs send Accept: text/plain

    @extend_schema(
        summary="The number of groups as text (needs ConsistencyLevel: eventual)",
        parameters=[filter_param(GROUP_FIELDS), CONSISTENCY],
        responses={(200, "text/plain"): OpenApiResponse({"type": "integer"}), **errors()},
        tags=["groups"],
    )
    def get(self, request):
        require_eventual_consistency(request, "$count")
        query = parse_query(request.GET, fields=GROUP_FIELDS, orderable={})
        try:
            count = _groups().filter(query.filter).count()
        except (ValidationError, ValueError, TypeError, FieldError, DataError) as exc:
            raise GraphError(
                400, f"Invalid $filter: a value does not fit its property ({exc}"[:200] + ")."
            ) from None
        return HttpResponse(str(count), content_type="text/plain; charset=utf-8")


class GroupDetail(VersionedView):
    required_perms = {
        "GET": "devices.view_group",
        "PATCH": "devices.change_group",
        "DELETE": "devices.delete_group",
    }

    @extend_schema(
        summary="One group",
        parameters=[select_param(_props(GROUP))],
        responses={200: OpenApiResponse(GROUP), **errors()},
        tags=["groups"],
    )
    def get(self, request, group_id: str):
        query = parse_query(request.GET, fields={}, orderable={}, selectable=set(GROUP["properties"]))
        return Response(apply_select(group_json(_group(group_id)), query.select))

    @extend_schema(
        summary="Update a group (204): name, description, rule, assigned/dynamic",
        request=json_request(GROUP_PATCH),
        responses={204: OpenApiResponse(description="Updated"), **write_errors(409)},
        tags=["groups"],
    )
    def patch(self, request, group_id: str):
        body = self.json_body(request)
        group = _group(group_id)
        form = GroupForm(_group_form_data(body, group), instance=group)
        bound = _bound_devices(body)
        if not form.is_valid():
            raise _form_error(form)
        if bound and form.cleaned_data["membership_type"] == Group.Membership.DYNAMIC:
            raise GraphError(
                400, "Members of a dynamic group follow its rule: don't send members@odata.bind."
            )
        with _membership_refusal():
            services.update_group(form.save(commit=False), members=[d.pk for d in bound])
        return Response(status=204)

    @extend_schema(
        summary="Delete a group (204); its policy assignments go with it",
        responses={204: OpenApiResponse(description="Deleted"), **errors(409)},
        tags=["groups"],
    )
    def delete(self, request, group_id: str):
        group = _group(group_id)
        try:
            services.delete_group(group)
        except ProtectedError:
            raise GraphError(
                409, f"{group.name} is used by policy assignments. Remove it from them first."
            ) from None
        return Response(status=204)


class GroupMembers(VersionedView):
    required_perms = {"GET": "devices.view_group"}

    @extend_schema(
        summary="Members (directoryObjects: devices, @odata.type #microsoft.graph.device)",
        description=ADVANCED_QUERIES,
        parameters=list_params(DEVICE_FIELDS, DEVICE_ORDER, selectable=_props(DEVICE), directory=True),
        responses={200: OpenApiResponse(collection_of(DEVICE)), **errors()},
        tags=["groups"],
    )
    def get(self, request, group_id: str):
        group = _group(group_id)
        return _device_objects(
            self, request, _devices(request).filter(memberships__group=group), "directoryObjects"
        )


class GroupMemberAdd(VersionedView):
    required_perms = {"POST": "devices.change_group"}

    @extend_schema(
        summary="Add a device to an assigned group (204)",
        request=json_request(REF_IN),
        responses={204: OpenApiResponse(description="Added"), **write_errors()},
        tags=["groups"],
    )
    def post(self, request, group_id: str):
        body = self.json_body(request)
        group = _group(group_id)
        device = _ref_device(body)
        with _membership_refusal():
            added = services.add_group_members(group, [device.pk])
        if not added:
            raise GraphError(
                400,
                "One or more added object references already exist for the following modified properties: "
                "'members'.",
            )
        return Response(status=204)


class GroupMemberRemove(VersionedView):
    required_perms = {"DELETE": "devices.change_group"}

    @extend_schema(
        summary="Remove a device from an assigned group (204)",
        responses={204: OpenApiResponse(description="Removed"), **errors()},
        tags=["groups"],
    )
    def delete(self, request, group_id: str, member_id: str):
        group = _group(group_id)
        device = _device(member_id, "directoryObject")
        with _membership_refusal():
            removed = services.remove_group_members(group, [device.pk])
        if not removed:
            raise GraphError(
                404, f"{device.display_name} is not a member of {group.name}.", "ResourceNotFound"
            )
        return Response(status=204)


# Effective settings of one device (issue 15): a console extension, not in Microsoft Graph.

_SOURCE = {"type": "string", "enum": list(ConfigSource.values)}
EFFECTIVE_SETTING = obj(
    {
        "settingDefinitionId": STRING,
        "displayName": STRING,
        "entry": {"type": "string", "description": "The exclusion entry; empty for a setting or an ASR rule"},
        "effectiveValue": NSTRING,
        "configuredBy": _SOURCE,
        "intendedValue": NSTRING,
        "matchesIntent": nullable(BOOL),
        "otherAttempts": {
            "type": "array",
            "items": obj(
                {"source": _SOURCE, "value": NSTRING, "name": STRING}, required=["source", "value", "name"]
            ),
        },
        "lastChangeDateTime": NDATETIME,
    },
    required=[
        "settingDefinitionId", "displayName", "entry", "effectiveValue", "configuredBy", "intendedValue",
        "matchesIntent", "otherAttempts", "lastChangeDateTime",
    ],
    description="effectiveSetting (console extension)",
)  # fmt: skip


def _flat_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def effective_setting_json(row) -> dict[str, Any]:
    return {
        "settingDefinitionId": row.setting_key,
        "displayName": effective_reads.setting_name(row.setting_key),
        "entry": row.entry,
        "effectiveValue": _flat_text(row.value),
        "configuredBy": row.configured_by,
        "intendedValue": _flat_text(row.intended_value),
        "matchesIntent": None if row.intent == "none" else row.intent == "matches",
        "otherAttempts": [
            {"source": a.get("source", ""), "value": _flat_text(a.get("value")), "name": a.get("name") or ""}
            for a in row.other_attempts or []
        ],
        "lastChangeDateTime": iso(row.changed_at),
    }


def default_setting_json(setting_key: str, value) -> dict[str, Any]:
    """A setting or ASR rule nothing configures on the device: its Windows default, configured by Default."""
    return {
        "settingDefinitionId": setting_key,
        "displayName": effective_reads.setting_name(setting_key),
        "entry": "",
        "effectiveValue": _flat_text(value),
        "configuredBy": ConfigSource.DEFAULT,
        "intendedValue": None,
        "matchesIntent": None,
        "otherAttempts": [],
        "lastChangeDateTime": None,
    }


class ManagedDeviceEffectiveSettings(VersionedView):
    required_perms = {"GET": "devices.view_device"}

    @extend_schema(
        summary="The device's effective settings (console extension): value, source, intent, other attempts",
        description=(
            "This console's extension (not in Microsoft Graph), after Microsoft Defender XDR's Effective settings "
            "tab: for each Defender Antivirus setting, ASR rule and exclusion entry of a Windows device, the value "
            "it enforces, the source that configured it (intune, group_policy, configmgr, tamper_protection, "
            "local_admin, default, unknown), this console's intended value and the attempts that did not take "
            "effect. Every Antivirus setting and ASR rule is listed: the ones nothing configures with their Windows "
            "default, configured by default (lastChangeDateTime null). Empty for devices that are not Windows or "
            "have not reported yet. Paged like Graph collections ($top, $skiptoken in @odata.nextLink)."
        ),
        parameters=[TOP, SKIP, SKIPTOKEN, COUNT],
        responses={200: OpenApiResponse(collection_of(EFFECTIVE_SETTING)), **errors()},
        tags=["managedDevices"],
        extensions={"x-console-extension": True},
    )
    def get(self, request, device_id: str):
        device = _managed_device(device_id, request)
        rows = DeviceEffectiveSetting.objects.filter(device=device).order_by(
            "setting_key_text__text", "entry"
        )
        items = [effective_setting_json(r) for r in rows]
        if device.effective_digest and device.os in (OSType.WINDOWS, OSType.WINDOWS_SERVER):
            configured = {item["settingDefinitionId"] for item in items if not item["entry"]}
            items.extend(
                default_setting_json(key, value)
                for key, value in effective_defaults().items()
                if key not in configured
            )
            items.sort(key=lambda item: (item["settingDefinitionId"], item["entry"]))
        response = list_collection(request, items)
        response.data = {
            "@odata.context": request.build_absolute_uri("/beta/$metadata#effectiveSettings"),
            **response.data,
        }
        return response
