"""Graph-shaped people and roles: /v1.0/users and Intune's deviceManagement roleDefinitions, roleAssignments and
roleScopeTags (beta), in the shapes Microsoft Graph returns them.

Users carry a GUID id made from their primary key (``00000000-0000-0000-0000-0000000000<pk>``), so an id read from
/users can be sent back in a role assignment's ``members``. Every change goes through console.rbac (audited).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from console import rbac, scopetags, text
from console.models import AdminGroup, RoleAssignment, ScopeTag

from .common import (
    BOOL,
    FREE_TEXT_PATTERN,
    GUID_PATTERN,
    NAME_PATTERN,
    NDATETIME,
    NSTRING,
    STRING,
    STRINGS,
    GraphAutoSchema,
    bool_field,
    collection_of,
    errors,
    get_by_guid,
    guid_field,
    iso,
    json_request,
    list_params,
    obj,
    parse_guid,
    select_param,
    write_errors,
)
from .errors import GraphError
from .odata import apply_select, parse_query
from .views import GraphView

GRAPH = "#microsoft.graph."

# Intune's resource actions (allowedResourceActions) for the console's permission groups (console.rbac)
RESOURCE_ACTIONS: dict[str, str] = {
    "Endpoint security policies: Read": "Microsoft.Intune_SecurityBaselines_Read",
    "Endpoint security policies: Create": "Microsoft.Intune_SecurityBaselines_Create",
    "Endpoint security policies: Update": "Microsoft.Intune_SecurityBaselines_Update",
    "Endpoint security policies: Delete": "Microsoft.Intune_SecurityBaselines_Delete",
    "Endpoint security policies: Assign": "Microsoft.Intune_SecurityBaselines_Assign",
    "Assignment filters: Read": "Microsoft.Intune_AssignmentFilter_Read",
    "Assignment filters: Create": "Microsoft.Intune_AssignmentFilter_Create",
    "Assignment filters: Update": "Microsoft.Intune_AssignmentFilter_Update",
    "Assignment filters: Delete": "Microsoft.Intune_AssignmentFilter_Delete",
    "Managed devices: Read": "Microsoft.Intune_ManagedDevices_Read",
    "Managed devices: Delete": "Microsoft.Intune_ManagedDevices_Delete",
    "Managed devices: Policy sync": "Microsoft.Intune_RemoteTasks_SyncDevice",
    "Groups: Read": "Microsoft.Intune_Groups_Read",
    "Groups: Create": "Microsoft.Intune_Groups_Create",
    "Groups: Update": "Microsoft.Intune_Groups_Update",
    "Groups: Delete": "Microsoft.Intune_Groups_Delete",
    "Audit data: Read": "Microsoft.Intune_Audit_Read",
    "Tenant switches: Update": "Microsoft.Intune_Organization_Update",
    "API tokens: Manage": "Microsoft.Intune_ApiTokens_Manage",
}


def scope_tag_json(tag: ScopeTag, expand=frozenset()) -> dict:
    return {
        "@odata.type": f"{GRAPH}roleScopeTag",
        "id": tag.graph_id,
        "displayName": tag.name,
        "description": tag.description,
        "isBuiltIn": tag.is_builtin,
    }


def user_guid(user) -> str:
    return str(uuid.UUID(int=user.pk))


def _user(raw: str):
    parsed = parse_guid(raw)
    user = get_user_model().objects.filter(pk=parsed.int).first() if parsed and parsed.int < 2**63 else None
    if user is None:
        raise GraphError(404, f"user with id '{str(raw)[:80]}' was not found.", "ResourceNotFound")
    return user


def _admin_group(raw: str) -> AdminGroup | None:
    """An admin group (security group of users) by its object id, or None (the id may be a user's)."""
    parsed = parse_guid(raw)
    return AdminGroup.objects.filter(group_id=parsed).first() if parsed else None


def user_json(user, expand=frozenset()) -> dict:
    return {
        "id": user_guid(user),
        "displayName": user.get_full_name() or user.username,
        "givenName": user.first_name or None,
        "surname": user.last_name or None,
        "mail": user.email or None,
        "userPrincipalName": user.username,
        "accountEnabled": user.is_active,
        "signInActivity": {"lastSignInDateTime": iso(user.last_login)},
    }


def role_definition_json(group: Group, expand=frozenset()) -> dict:
    builtin = group.definition.is_builtin
    return {
        "@odata.type": f"{GRAPH}deviceAndAppManagementRoleDefinition",
        "id": str(group.definition.role_id),
        "displayName": group.name,
        "description": group.definition.description,
        "isBuiltIn": builtin,
        "isBuiltInRoleDefinition": builtin,
        "roleScopeTagIds": ["0"],
        "rolePermissions": [
            {
                "resourceActions": [
                    {
                        "allowedResourceActions": [RESOURCE_ACTIONS[a] for a in rbac.actions_of(group)],
                        "notAllowedResourceActions": [],
                    }
                ]
            }
        ],
    }


def role_assignment_json(a: RoleAssignment, expand=frozenset()) -> dict:
    scopes = [str(g.group_id) for g in a.scope_groups.all()]
    return {
        "@odata.type": f"{GRAPH}deviceAndAppManagementRoleAssignment",
        "id": str(a.assignment_id),
        "displayName": a.name,
        "description": a.description,
        "members": [user_guid(u) for u in a.members.all()] + [str(g.group_id) for g in a.member_groups.all()],
        "resourceScopes": scopes,
        "scopeMembers": scopes,
        "scopeType": "resourceScope" if scopes else "allDevices",
        "roleScopeTagIds": scopetags.graph_ids_of(a),
        "roleDefinition": {"id": str(a.role.definition.role_id), "displayName": a.role.name},
    }


USER = obj(
    {
        "id": STRING,
        "displayName": STRING,
        "givenName": NSTRING,
        "surname": NSTRING,
        "mail": NSTRING,
        "userPrincipalName": STRING,
        "accountEnabled": BOOL,
        "signInActivity": obj({"lastSignInDateTime": NDATETIME}),
    },
    description="user",
)
_PERSON_NAME = {"type": "string", "pattern": FREE_TEXT_PATTERN, "maxLength": 150}
# Any JSON text the body parser keeps (console.untrusted_json): no NUL or control characters but tab and line breaks.
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_JSON_TEXT = {"type": "string", "pattern": rf"^[^{_CONTROLS}]*$"}
USER_IN = obj(
    {
        "accountEnabled": BOOL,
        "displayName": _JSON_TEXT,
        "mailNickname": _JSON_TEXT,
        "userPrincipalName": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 150},
        "givenName": _PERSON_NAME,
        "surname": _PERSON_NAME,
        "mail": {"type": "string", "format": "email", "maxLength": 254},
        "passwordProfile": obj(
            {
                # At least 12 characters, not only digits (pattern: contains a non-digit); a password that is
                # common or too like the user's name is refused too (400), which a schema cannot state.
                "password": {
                    "type": "string",
                    "minLength": 12,
                    "pattern": rf"^[^{_CONTROLS}]*[^0-9{_CONTROLS}][^{_CONTROLS}]*$",
                },
                "forceChangePasswordNextSignIn": BOOL,
            }
        ),
    },
    required=["userPrincipalName"],
    description="Without passwordProfile the answer carries a one-time invitationRedeemUrl. A taken "
    "userPrincipalName is 409.",
)
USER_PROPS = ["id", "displayName", "givenName", "surname", "mail", "userPrincipalName", "accountEnabled",
              "signInActivity"]  # fmt: skip
ROLE_DEFINITION = obj(
    {
        "@odata.type": STRING,
        "id": STRING,
        "displayName": STRING,
        "description": STRING,
        "isBuiltIn": BOOL,
        "isBuiltInRoleDefinition": BOOL,
        "roleScopeTagIds": STRINGS,
        "rolePermissions": {
            "type": "array",
            "items": obj(
                {
                    "resourceActions": {
                        "type": "array",
                        "items": obj(
                            {"allowedResourceActions": STRINGS, "notAllowedResourceActions": STRINGS}
                        ),
                    }
                }
            ),
        },
    },
    description="deviceAndAppManagementRoleDefinition",
)
ROLE_ASSIGNMENT = obj(
    {
        "@odata.type": STRING,
        "id": STRING,
        "displayName": STRING,
        "description": STRING,
        "members": STRINGS,
        "resourceScopes": STRINGS,
        "scopeMembers": STRINGS,
        "scopeType": {"type": "string", "enum": ["resourceScope", "allDevices"]},
        "roleScopeTagIds": STRINGS,
        "roleDefinition": obj({"id": STRING, "displayName": STRING}),
    },
    description="deviceAndAppManagementRoleAssignment",
)
_BIND_PATTERN = r"roleDefinitions\('?([0-9a-fA-F-]{32,36})'?\)|roleDefinitions/([0-9a-fA-F-]{32,36})"
_GUIDS = {"type": "array", "items": {"type": "string", "pattern": GUID_PATTERN}}
_TAG_IDS = {
    "type": "array",
    "items": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "uniqueItems": True,
    "description": 'Ids of roleScopeTags ("0" is Default); an unknown id is 404',
}
ROLE_ASSIGNMENT_IN = obj(
    {
        "displayName": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 128},
        "description": {"type": "string", "pattern": FREE_TEXT_PATTERN, "maxLength": 500},
        "members": {**_GUIDS, "minItems": 1},
        "resourceScopes": _GUIDS,
        "roleScopeTagIds": {**_TAG_IDS, "minItems": 1},
        "roleDefinition@odata.bind": {
            "type": "string",
            "pattern": rf"^[^{_CONTROLS}]*(?:{_BIND_PATTERN})[^{_CONTROLS}]*$",
        },
    },
    required=["displayName", "members", "roleDefinition@odata.bind"],
    description="members: user ids or admin group ids (security groups of users); resourceScopes: device group "
    "ids (empty: all devices); roleScopeTagIds: scope tag ids (none: Default)",
)
SCOPE_TAG = obj(
    {"@odata.type": STRING, "id": STRING, "displayName": STRING, "description": STRING, "isBuiltIn": BOOL},
    description="roleScopeTag",
)
_TAG_WRITE = {
    "displayName": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 128},
    "description": {"type": "string", "pattern": FREE_TEXT_PATTERN, "maxLength": 500},
}
SCOPE_TAG_IN = obj(
    _TAG_WRITE, required=["displayName"], description="A custom scope tag; names are unique (409)"
)
SCOPE_TAG_PATCH = obj(_TAG_WRITE, description="The built-in Default tag (id 0) can't be changed (400)")
TAG_FIELDS = {"displayName": "name", "isBuiltIn": bool_field(Q(is_builtin=True), "isBuiltIn")}


def _props(schema: dict) -> list[str]:
    """The properties $select may name (annotations such as @odata.type are always returned)."""
    return [p for p in schema["properties"] if not p.startswith("@")]


USER_FIELDS = {
    "userPrincipalName": "username",
    "mail": "email",
    "givenName": "first_name",
    "surname": "last_name",
    "accountEnabled": bool_field(Q(is_active=True), "accountEnabled"),
}
USER_ORDER = {"userPrincipalName": "username", "displayName": "username"}
ROLE_FIELDS = {
    "id": guid_field("definition__role_id", "id"),
    "displayName": "name",
    "isBuiltIn": bool_field(Q(definition__is_builtin=True), "isBuiltIn"),
}
ASSIGNMENT_FIELDS = {"id": guid_field("assignment_id", "id"), "displayName": "name"}


class PeopleView(GraphView):
    api_version = "beta"
    schema = GraphAutoSchema()


def _context(request, version: str, path: str) -> str:
    return f"/{version}/$metadata#{path}"


def _text(body: Mapping[str, Any], key: str, default: str = "") -> str:
    """A text property: absent gives ``default``; null or another type is refused (the schema says string)."""
    if key not in body:
        return default
    value = body[key]
    if not isinstance(value, str):
        raise GraphError(400, f"{key} must be a string.")
    return value


def _check_user_fields(body: Mapping[str, Any], profile: Mapping[str, Any]) -> None:
    """What USER_IN states: types, lengths, characters and formats, each refused with its reason (400)."""
    for key in ("displayName", "mailNickname", "userPrincipalName", "givenName", "surname", "mail"):
        _text(body, key)
    name = body.get("userPrincipalName")
    if name is None:
        raise GraphError(400, "userPrincipalName is required.")
    if len(name) > 150:
        raise GraphError(400, "userPrincipalName has at most 150 characters.")
    for key in ("givenName", "surname"):
        value = body.get(key)
        if value is None:
            continue
        if len(value) > 150:
            raise GraphError(400, f"{key} has at most 150 characters.")
        message = text.problem(value, key, multiline=True)
        if message:
            raise GraphError(400, message)
    if "mail" in body and body["mail"] is not None:
        try:
            validate_email(body["mail"])
        except ValidationError:
            raise GraphError(400, "mail must be an email address.") from None
        if len(body["mail"]) > 254:
            raise GraphError(400, "mail has at most 254 characters.")
    password = profile.get("password")
    if "password" in profile and not isinstance(password, str):
        raise GraphError(400, "passwordProfile.password must be a string.")


class UserList(PeopleView):
    required_perms = {"GET": "auth.view_user", "POST": "auth.add_user"}

    @extend_schema(
        summary="The console's users",
        parameters=list_params(USER_FIELDS, USER_ORDER, selectable=USER_PROPS),
        responses={200: OpenApiResponse(collection_of(USER)), **errors()},
        tags=["users"],
    )
    def get(self, request):
        return self.collection(
            request,
            get_user_model().objects.all(),
            user_json,
            fields=USER_FIELDS,
            orderable=USER_ORDER,
            default_order=("username",),
            selectable=set(USER_PROPS),
            context=_context(request, self.api_version, "users"),
        )

    @extend_schema(
        summary="Create a user (201); without passwordProfile, a one-time invitationRedeemUrl",
        request=json_request(USER_IN),
        responses={201: OpenApiResponse(USER), **write_errors(409)},
        tags=["users"],
    )
    def post(self, request):
        body = self.json_body(request)
        profile = body.get("passwordProfile", {})
        if not isinstance(profile, dict):
            raise GraphError(400, "passwordProfile must be an object.")
        enabled = body.get("accountEnabled", True)
        if not isinstance(enabled, bool):
            raise GraphError(400, "accountEnabled must be true or false.")
        if not isinstance(profile.get("forceChangePasswordNextSignIn", False), bool):
            raise GraphError(400, "passwordProfile.forceChangePasswordNextSignIn must be true or false.")
        _check_user_fields(body, profile)
        try:
            created = rbac.create_user(
                username=_text(body, "userPrincipalName"),
                email=_text(body, "mail"),
                first_name=_text(body, "givenName"),
                last_name=_text(body, "surname"),
                password=_text(profile, "password") or None,
            )
            if not enabled:
                rbac.set_enabled(created.user, False)
        except rbac.NameTaken as exc:
            raise GraphError(409, str(exc), "Conflict") from None
        except rbac.RbacError as exc:
            raise GraphError(400, str(exc)) from None
        data = user_json(created.user)
        if created.path:
            data["invitationRedeemUrl"] = request.build_absolute_uri(created.path)
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{data['id']}")
        return Response(data, status=201, headers={"Location": location})


class RoleDefinitionList(PeopleView):
    required_perms = {"GET": "auth.view_group"}

    @extend_schema(
        summary="Built-in and custom Intune roles with their allowed resource actions",
        parameters=list_params(ROLE_FIELDS, {"displayName": "name"}, selectable=_props(ROLE_DEFINITION)),
        responses={200: OpenApiResponse(collection_of(ROLE_DEFINITION)), **errors()},
        tags=["roleDefinitions"],
    )
    def get(self, request):
        return self.collection(
            request,
            rbac.roles(),
            role_definition_json,
            fields=ROLE_FIELDS,
            orderable={"displayName": "name"},
            default_order=("-definition__is_builtin", "name"),
            selectable=set(_props(ROLE_DEFINITION)),
            context=_context(request, "beta", "deviceManagement/roleDefinitions"),
        )


_BIND = re.compile(_BIND_PATTERN)


def _bound_role(body: Mapping[str, Any]) -> Group:
    raw = _text(body, "roleDefinition@odata.bind")
    m = _BIND.search(raw)
    if not m:
        raise GraphError(400, "Send roleDefinition@odata.bind: …/deviceManagement/roleDefinitions/{id}.")
    return get_by_guid(rbac.roles(), "definition__role_id", m.group(1) or m.group(2), "roleDefinition")


def _id_list(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GraphError(400, f"{key} must be a list of ids.")
    return value


class RoleAssignmentList(PeopleView):
    required_perms = {"GET": "auth.view_group", "POST": "auth.change_group"}

    @extend_schema(
        summary="Role assignments: a role, its members and its scope (device groups, or all devices)",
        parameters=list_params(
            ASSIGNMENT_FIELDS, {"displayName": "name"}, selectable=_props(ROLE_ASSIGNMENT)
        ),
        responses={200: OpenApiResponse(collection_of(ROLE_ASSIGNMENT)), **errors()},
        tags=["roleAssignments"],
    )
    def get(self, request):
        qs = RoleAssignment.objects.select_related("role__definition").prefetch_related(
            "members", "scope_groups"
        )
        return self.collection(
            request,
            qs,
            role_assignment_json,
            fields=ASSIGNMENT_FIELDS,
            orderable={"displayName": "name"},
            default_order=("name",),
            context=_context(request, "beta", "deviceManagement/roleAssignments"),
            selectable=set(_props(ROLE_ASSIGNMENT)),
        )

    @extend_schema(
        summary="Assign a role to users over device groups (201)",
        request=json_request(ROLE_ASSIGNMENT_IN),
        responses={201: OpenApiResponse(ROLE_ASSIGNMENT), **write_errors()},
        tags=["roleAssignments"],
    )
    def post(self, request):
        body = self.json_body(request)
        role = _bound_role(body)
        members, member_groups = [], []
        for raw in _id_list(body, "members"):
            admin_group = _admin_group(raw)
            if admin_group is not None:
                member_groups.append(admin_group)
            else:
                members.append(_user(raw))
        # devices.Group through the registry: console sits below devices in the layers and does not import it
        groups = apps.get_model("devices", "Group").objects.filter(object_kind="device")
        scope = [get_by_guid(groups, "group_id", raw, "group") for raw in _id_list(body, "resourceScopes")]
        tags = [_scope_tag(raw) for raw in _id_list(body, "roleScopeTagIds")]
        if "roleScopeTagIds" in body and not tags:
            raise GraphError(400, 'roleScopeTagIds needs at least one scope tag id ("0" is Default).')
        if len(set(_id_list(body, "roleScopeTagIds"))) != len(tags):
            raise GraphError(400, "roleScopeTagIds lists a scope tag twice.")
        try:
            a = rbac.create_assignment(
                name=_text(body, "displayName"),
                description=_text(body, "description"),
                role=role,
                members=members,
                member_groups=member_groups,
                scope_groups=scope,
                scope_tags=tags,
            )
        except rbac.NameTaken as exc:
            raise GraphError(409, str(exc), "Conflict") from None
        except rbac.RbacError as exc:
            raise GraphError(400, str(exc)) from None
        data = role_assignment_json(a)
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{data['id']}")
        return Response(data, status=201, headers={"Location": location})


class RoleAssignmentDetail(PeopleView):
    required_perms = {"GET": "auth.view_group", "DELETE": "auth.change_group"}

    def _get(self, assignment_id: str) -> RoleAssignment:
        return get_by_guid(
            RoleAssignment.objects.select_related("role__definition"),
            "assignment_id",
            assignment_id,
            "roleAssignment",
        )

    @extend_schema(
        summary="One role assignment",
        parameters=[select_param(_props(ROLE_ASSIGNMENT))],
        responses={200: OpenApiResponse(ROLE_ASSIGNMENT), **errors()},
        tags=["roleAssignments"],
    )
    def get(self, request, assignment_id: str):
        query = parse_query(request.GET, fields={}, orderable={}, selectable=set(_props(ROLE_ASSIGNMENT)))
        return Response(apply_select(role_assignment_json(self._get(assignment_id)), query.select))

    @extend_schema(
        summary="Delete a role assignment: its members lose the role at once",
        responses={204: OpenApiResponse(description="Deleted"), **errors()},
        tags=["roleAssignments"],
    )
    def delete(self, request, assignment_id: str):
        rbac.delete_assignment(self._get(assignment_id))
        return Response(status=204)


def _scope_tag(raw: str) -> ScopeTag:
    tag = scopetags.by_graph_id(str(raw))
    if tag is None:
        raise GraphError(404, f"roleScopeTag with id '{str(raw)[:80]}' was not found.", "ResourceNotFound")
    return tag


def _tag_text(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    name = body.get("displayName")
    description = body.get("description")
    if "displayName" in body and not isinstance(name, str):
        raise GraphError(400, "displayName must be a string.")
    if "description" in body and not isinstance(description, str):
        raise GraphError(400, "description must be a string.")
    return name, description


class RoleScopeTagList(PeopleView):
    required_perms = {"GET": "auth.view_group", "POST": "console.add_scopetag"}

    @extend_schema(
        summary="Scope tags: the built-in Default tag (id 0) and custom tags",
        parameters=list_params(TAG_FIELDS, {"displayName": "name"}, selectable=_props(SCOPE_TAG)),
        responses={200: OpenApiResponse(collection_of(SCOPE_TAG)), **errors()},
        tags=["roleScopeTags"],
    )
    def get(self, request):
        return self.collection(
            request,
            scopetags.tags(),
            scope_tag_json,
            fields=TAG_FIELDS,
            orderable={"displayName": "name"},
            default_order=("-is_builtin", "name"),
            selectable=set(_props(SCOPE_TAG)),
            context=_context(request, "beta", "deviceManagement/roleScopeTags"),
        )

    @extend_schema(
        summary="Create a scope tag (201)",
        request=json_request(SCOPE_TAG_IN),
        responses={201: OpenApiResponse(SCOPE_TAG), **write_errors(409)},
        tags=["roleScopeTags"],
    )
    def post(self, request):
        name, description = _tag_text(self.json_body(request))
        try:
            tag = scopetags.create_tag(name=name or "", description=description or "")
        except scopetags.ScopeTagNameTaken as exc:
            raise GraphError(409, str(exc), "Conflict") from None
        except scopetags.ScopeTagError as exc:
            raise GraphError(400, str(exc)) from None
        data = scope_tag_json(tag)
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{data['id']}")
        return Response(data, status=201, headers={"Location": location})


class RoleScopeTagDetail(PeopleView):
    required_perms = {
        "GET": "auth.view_group",
        "PATCH": "console.change_scopetag",
        "DELETE": "console.delete_scopetag",
    }

    @extend_schema(
        summary="One scope tag",
        parameters=[select_param(_props(SCOPE_TAG))],
        responses={200: OpenApiResponse(SCOPE_TAG), **errors()},
        tags=["roleScopeTags"],
    )
    def get(self, request, tag_id: str):
        query = parse_query(request.GET, fields={}, orderable={}, selectable=set(_props(SCOPE_TAG)))
        return Response(apply_select(scope_tag_json(_scope_tag(tag_id)), query.select))

    @extend_schema(
        summary="Rename or describe a custom scope tag (the Default tag is built in: 400)",
        request=json_request(SCOPE_TAG_PATCH),
        responses={200: OpenApiResponse(SCOPE_TAG), **write_errors(409)},
        tags=["roleScopeTags"],
    )
    def patch(self, request, tag_id: str):
        body = self.json_body(request)
        tag = _scope_tag(tag_id)
        name, description = _tag_text(body)
        try:
            tag = scopetags.update_tag(
                tag,
                name=tag.name if name is None else name,
                description=tag.description if description is None else description,
            )
        except scopetags.ScopeTagNameTaken as exc:
            raise GraphError(409, str(exc), "Conflict") from None
        except scopetags.ScopeTagError as exc:
            raise GraphError(400, str(exc)) from None
        return Response(scope_tag_json(tag))

    @extend_schema(
        summary="Delete a custom scope tag (409 while a policy, group or role assignment still carries it)",
        responses={204: OpenApiResponse(description="Deleted"), **errors(409)},
        tags=["roleScopeTags"],
    )
    def delete(self, request, tag_id: str):
        tag = _scope_tag(tag_id)
        if tag.is_builtin:
            raise GraphError(400, "The built-in Default scope tag can't be deleted.")
        try:
            scopetags.delete_tag(tag)
        except scopetags.ScopeTagError as exc:
            raise GraphError(409, str(exc), "Conflict") from None
        return Response(status=204)
