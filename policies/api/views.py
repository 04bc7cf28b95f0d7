"""Graph beta `deviceManagement/configurationPolicies`: endpoint security policies in the settings-catalog shape.

Every write goes through policies.services (the same validation, versions, audit and signals as the wizard);
these views only translate Graph JSON to the services' arguments and back (graph-api-shapes.md §1–2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from console import audit, scopetags
from console.api.common import (
    BOOL,
    COUNT,
    DATETIME,
    GUID_PATTERN,
    INT,
    NSTRING,
    ODATA_ERROR,
    ODATA_TYPE,
    SKIP,
    SKIPTOKEN,
    STRING,
    STRINGS,
    TOP,
    GraphAutoSchema,
    bool_field,
    collection_of,
    errors,
    expand_param,
    get_by_guid,
    guid_field,
    iso,
    json_request,
    label_field,
    list_collection,
    list_params,
    nullable,
    obj,
    select_param,
    write_errors,
)
from console.api.errors import GraphError
from console.api.odata import apply_select, parse_query
from console.api.views import GraphView
from policies import exports, services
from policies.api import schema
from policies.api.definitions import DEFINITION
from policies.catalog import FIREWALL_RULE_GROUP_ID, get_catalog
from policies.definitions import definitions_of_instance
from policies.graph import GRAPH as GRAPH_TYPE
from policies.graph import SENT_TWICE, References, from_graph_settings, sent_type_is, template_references
from policies.models import GRAPH_PLATFORM, Policy, PolicyAssignment

PERMS = {
    "GET": "policies.view_policy",
    "POST": "policies.add_policy",
    "PATCH": "policies.change_policy",
    "PUT": "policies.change_policy",
    "DELETE": "policies.delete_policy",
}
CHANGE = {"GET": "policies.view_policy", "POST": "policies.change_policy"}
# The refusal the request schema can't state (OpenAPI 3.0 has no "unique by property") is its own response.
CONFLICT = {
    409: OpenApiResponse(
        ODATA_ERROR,
        description="Conflict: a settingDefinitionId is sent more than once in one settings array (each setting "
        "appears at most once in a policy; JSON Schema can't state uniqueness by property, so this response "
        "does), or, on PATCH and PUT, a setting or template of another profile than the policy's, or a stale "
        "version.",
    )
}
# Graph's deviceManagementConfigurationPlatforms members: $filter refuses other values.
PLATFORM_ENUM = ("none", "android", "iOS", "macOS", "windows10X", "windows10", "linux", "unknownFutureValue",
                 "androidEnterprise", "aosp", "visionOS", "tvOS")  # fmt: skip

TAG_ID = re.compile(r"[0-9]{1,18}")
# Properties a client may send back unchanged (a GET body, an export); the server owns them.
READ_ONLY = {
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "settingCount",
    "isAssigned",
    "creationSource",
    "priorityMetaData",
    "disableEntraGroupPolicyAssignment",
}
WRITABLE = {"name", "description", "platforms", "technologies", "templateReference", "roleScopeTagIds", "settings",
            "assignments"}  # fmt: skip

FIELDS = {
    "id": guid_field("policy_id", "id"),
    "name": "name",
    "description": "description",
    "platforms": label_field("platform", GRAPH_PLATFORM, "platforms", enum=PLATFORM_ENUM),
    "technologies": "technologies",
    "templateReference/templateId": "template_id",
    "templateReference/templateFamily": "template_family",
    "templateReference/templateDisplayName": "profile",
    "isAssigned": bool_field(Q(is_assigned=True), "isAssigned"),
    "createdDateTime": "created_at",
    "lastModifiedDateTime": "updated_at",
}
ORDERABLE = {"name": "name", "createdDateTime": "created_at", "lastModifiedDateTime": "updated_at"}
SELECTABLE = {"id", "name", "description", "platforms", "technologies", "createdDateTime", "lastModifiedDateTime",
              "settingCount", "creationSource", "roleScopeTagIds", "isAssigned", "templateReference",
              "priorityMetaData", "settings", "assignments"}  # fmt: skip
EXPANDABLE = {"settings", "assignments"}
SETTING_PARAMS = [select_param({"id", "settingInstance", "settingDefinitions"}), TOP, SKIP, SKIPTOKEN, COUNT]
ASSIGNMENT_PARAMS = [select_param({"id", "source", "sourceId", "target"}), TOP, SKIP, SKIPTOKEN, COUNT]

# ------------------------------------------------------------------------------------------------ OpenAPI

SETTING_INSTANCE = obj(
    {
        "@odata.type": ODATA_TYPE,
        "settingDefinitionId": STRING,
        "settingInstanceTemplateReference": nullable({"type": "object"}),
        "choiceSettingValue": {"type": "object"},
        "choiceSettingCollectionValue": {"type": "array", "items": {"type": "object"}},
        "simpleSettingValue": {"type": "object"},
        "simpleSettingCollectionValue": {"type": "array", "items": {"type": "object"}},
        "groupSettingValue": {"type": "object"},
        "groupSettingCollectionValue": {"type": "array", "items": {"type": "object"}},
    },
    required=["@odata.type", "settingDefinitionId"],
    description="deviceManagementConfigurationSettingInstance (polymorphic: §1 of the shapes)",
)
SETTING = obj(
    {
        "id": STRING,
        "settingInstance": SETTING_INSTANCE,
        "settingDefinitions": {"type": "array", "items": DEFINITION},
    },
    required=["id"],
    description="deviceManagementConfigurationSetting",
)
SETTING_IN = obj(
    {"@odata.type": STRING, "id": STRING, "settingInstance": SETTING_INSTANCE}, required=["settingInstance"]
)
TARGET = obj(
    {
        "@odata.type": {
            "type": "string",
            "enum": [
                "#microsoft.graph.groupAssignmentTarget",
                "#microsoft.graph.exclusionGroupAssignmentTarget",
            ],
        },
        "groupId": STRING,
        "deviceAndAppManagementAssignmentFilterId": NSTRING,
        "deviceAndAppManagementAssignmentFilterType": {
            "type": "string",
            "enum": ["none", "include", "exclude"],
        },
    },
    required=["@odata.type", "groupId"],
)
ASSIGNMENT = obj(
    {"id": STRING, "source": {"type": "string", "enum": ["direct", "policySets"]}, "sourceId": STRING,
     "target": TARGET},
    required=["id"],
    description="deviceManagementConfigurationPolicyAssignment",
)  # fmt: skip
TARGET_IN = obj(
    {
        "@odata.type": TARGET["properties"]["@odata.type"],
        "groupId": {"type": "string", "pattern": GUID_PATTERN},
    },
    required=["@odata.type", "groupId"],
    description="A device group (a group that doesn't exist is 404). Assignment filters are accepted too "
    "(deviceAndAppManagementAssignmentFilterId and …Type, as graph-api-shapes.md §2 shows).",
)
ASSIGNMENT_IN = obj(
    {"@odata.type": {"type": "string", "enum": [GRAPH_TYPE + "deviceManagementConfigurationPolicyAssignment"]},
     "id": {"type": "string", "pattern": r"^[0-9a-fA-F-]{36}_[0-9a-fA-F-]{36}$"}, "target": TARGET_IN},
    required=["target"],
)  # fmt: skip
ASSIGNMENTS_IN = {"type": "array", "items": ASSIGNMENT_IN, "maxItems": 1}
TEMPLATE_IDS = sorted({p.template_id for p in get_catalog().profiles.values()})
TEMPLATE_REFERENCE = obj(
    {
        "templateId": {"type": "string", "enum": TEMPLATE_IDS},
        "templateFamily": STRING,
        "templateDisplayName": NSTRING,
        "templateDisplayVersion": NSTRING,
    }
)
PLATFORMS = {"type": "string", "enum": sorted(GRAPH_PLATFORM.values())}
TECHNOLOGIES = {"type": "string", "enum": [exports.MDE_TECHNOLOGIES, "microsoftSense"]}
POLICY = obj(
    {
        "id": STRING,
        "name": STRING,
        "description": NSTRING,
        "platforms": PLATFORMS,
        "technologies": STRING,
        "createdDateTime": DATETIME,
        "lastModifiedDateTime": DATETIME,
        "settingCount": INT,
        "creationSource": NSTRING,
        "roleScopeTagIds": STRINGS,
        "isAssigned": BOOL,
        "templateReference": TEMPLATE_REFERENCE,
        "priorityMetaData": nullable({"type": "object"}),
        "settings": {"type": "array", "items": SETTING},
        "assignments": {"type": "array", "items": ASSIGNMENT},
    },
    description="deviceManagementConfigurationPolicy",
)
POLICY_IN = schema.policy_create_schema(get_catalog(), ASSIGNMENTS_IN)
PATCH_IN = schema.policy_update_schema(get_catalog(), ASSIGNMENTS_IN, replace=False)
PUT_IN = schema.policy_update_schema(get_catalog(), ASSIGNMENTS_IN, replace=True)
SETTING_IN = schema.setting_schema(
    list({s.id: get_catalog().setting(s.id) for s in get_catalog().all_settings()}.values())
)
ASSIGN_IN = obj(
    {"assignments": {"type": "array", "items": ASSIGNMENT_IN, "maxItems": 2, "uniqueItems": True}},
    required=["assignments"],
    description="The whole assignment set: [] unassigns; null or a missing list is 400, as in Graph",
)
ASSIGN_OUT = obj({"value": {"type": "array", "items": ASSIGNMENT}}, required=["value"])

# ------------------------------------------------------------------------------------------------ shapes


def policies():
    include = PolicyAssignment.objects.filter(policy=OuterRef("pk"), intent=PolicyAssignment.Intent.INCLUDE)
    # What the token's owner sees through their scope tags (console.scopetags); another policy is a 404.
    return scopetags.visible(Policy.objects.all(), audit.current_actor().user).annotate(
        is_assigned=Exists(include)
    )


def policy_json(policy: Policy, expand: set[str] = frozenset()) -> dict[str, Any]:
    profile = get_catalog().profile(policy.profile)
    is_assigned = getattr(policy, "is_assigned", None)
    if is_assigned is None:
        is_assigned = policy.assignments.filter(intent=PolicyAssignment.Intent.INCLUDE).exists()
    data: dict[str, Any] = {
        "id": str(policy.policy_id),
        "name": policy.name,
        "description": policy.description,
        "platforms": GRAPH_PLATFORM[policy.platform],
        "technologies": policy.technologies,
        "createdDateTime": iso(policy.created_at),
        "lastModifiedDateTime": iso(policy.updated_at),
        "settingCount": len(policy.settings or []),
        "creationSource": None,
        "roleScopeTagIds": scopetags.graph_ids_of(policy),
        "isAssigned": bool(is_assigned),
        "templateReference": exports.template_reference(profile),
        "priorityMetaData": None,
    }
    if "settings" in expand:
        data["settings"] = settings_json(policy)
    if "assignments" in expand:
        data["assignments"] = exports.assignment_documents(policy, include_ids=True)
    return data


def settings_json(policy: Policy) -> list[dict[str, Any]]:
    """Policy.settings verbatim, every element with its id ("0", "1", … where one is missing)."""
    out = []
    for index, element in enumerate(policy.settings or []):
        element = dict(element)
        element.setdefault("id", str(index))
        out.append({"id": element.pop("id"), **element})
    return out


def _with_definitions(element: dict[str, Any], expand: set[str]) -> dict[str, Any]:
    """$expand=settingDefinitions: the definitions of every setting in the element's instance (root first)."""
    if "settingDefinitions" not in expand:
        return element
    return {
        **element,
        "settingDefinitions": definitions_of_instance(get_catalog(), element["settingInstance"]),
    }


NOT_IN_TENANT = "doesn't exist in this tenant"
POLICY_TYPE = GRAPH_TYPE + "deviceManagementConfigurationPolicy"


def policy_error(exc: services.PolicyError) -> GraphError:
    if any(p.field == "version" for p in exc.problems):
        return GraphError(409, str(exc), "Conflict")
    return _problems_error(exc.problems)


def _problems_error(problems) -> GraphError:
    """400 with every problem; 404 when the only problem is a group or filter that doesn't exist (a reference
    to a missing object, like a missing path segment); 409 when the only problem is a setting sent twice."""
    if problems and all(NOT_IN_TENANT in p.message for p in problems):
        return GraphError(404, _problems_text(problems), "ResourceNotFound")
    if problems and all(SENT_TWICE in p.message for p in problems):
        return GraphError(409, _problems_text(problems), "Conflict")
    return GraphError(400, _problems_text(problems))


def _problems_text(problems) -> str:
    """Every problem; a setting's problem is prefixed with its settingDefinitionId (what a script can act on)."""
    texts = []
    for p in problems:
        named = "_" in p.field and p.field not in p.message and " " not in p.field
        texts.append(f"{p.field}: {p.message}" if named else p.message)
    return " ".join(dict.fromkeys(texts)) or "The policy isn't valid."


def _check_keys(body: Mapping[str, Any]) -> None:
    for key in body:
        if "@odata." in key or key.startswith("@"):
            continue  # annotations (@odata.type, settings@odata.context, …)
        if key not in WRITABLE and key not in READ_ONLY:
            raise GraphError(
                400,
                f"Property '{str(key)[:80]}' does not exist on type "
                "'microsoft.graph.deviceManagementConfigurationPolicy'.",
            )
    _scope_tags_of(body)


def _scope_tags_of(body: Mapping[str, Any]) -> list | None:
    """roleScopeTagIds as scope tags (None when not sent): ids of /roleScopeTags, "0" is Default; an unknown id
    is 404, as an unknown group is."""
    raw = body.get("roleScopeTagIds")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(v, str) and TAG_ID.fullmatch(v) for v in raw):
        raise GraphError(400, 'roleScopeTagIds must be a list of scope tag ids (digits; "0" is Default).')
    if not raw:
        raise GraphError(400, 'roleScopeTagIds needs at least one scope tag id ("0" is Default).')
    if len(set(raw)) != len(raw):
        raise GraphError(400, "roleScopeTagIds lists a scope tag twice.")
    found = []
    for graph_id in raw:
        tag = scopetags.by_graph_id(graph_id)
        if tag is None:
            raise GraphError(404, f"The scope tag '{graph_id}' was not found.", "ResourceNotFound")
        found.append(tag)
    return found


def _check_same_profile(policy: Policy, body: Mapping[str, Any]) -> None:
    """PATCH/PUT can't turn a policy into another profile, platform or technology."""
    reference = body.get("templateReference")
    if reference is not None:
        if not isinstance(reference, Mapping):
            raise GraphError(400, "templateReference must be an object.")
        template_id = reference.get("templateId")
        if template_id not in (None, policy.template_id):
            raise GraphError(
                409,
                f"A policy's template can't be changed (this one is {policy.template_id}, {policy.profile}). "
                "Create a new policy for another profile.",
            )
    platforms = body.get("platforms")
    if platforms is not None and str(platforms).lower() != GRAPH_PLATFORM[policy.platform].lower():
        raise GraphError(
            409, f"A policy's platforms can't be changed (this one is {GRAPH_PLATFORM[policy.platform]})."
        )
    technologies = body.get("technologies")
    if technologies is not None:
        flags = {f.strip() for f in str(technologies).split(",") if f.strip()}
        if "microsoftSense" not in flags or not flags <= exports.TECHNOLOGY_FLAGS:
            raise GraphError(
                400, f"A policy's technologies can't be changed (this one is {policy.technologies})."
            )


def _values_of(policy: Policy, raw_settings: object) -> dict[str, Any]:
    """The flat values of a settings array for an existing policy. A setting of the catalog that belongs to
    another profile conflicts with the policy's template: 409 (a setting the catalog lacks is 400)."""
    values, errs = from_graph_settings(get_catalog(), policy.profile, raw_settings)
    if errs:
        # Conflicts: a setting sent twice, and settings of another profile; any other problem is a 400.
        others = [e for e in errs if SENT_TWICE not in str(e)]
        status = 409 if not others or _only_other_profiles(policy, raw_settings, others) else 400
        raise GraphError(status, " ".join(dict.fromkeys(str(e) for e in errs)))
    return values


def _only_other_profiles(policy: Policy, raw_settings: object, errs) -> bool:
    """Whether every problem is a setting of the catalog that isn't in this policy's profile (and the array
    is otherwise valid for the profile that has it)."""
    catalog = get_catalog()
    profile = catalog.profile(policy.profile)
    ids = {getattr(e, "setting_id", None) for e in errs}
    if not ids or None in ids:
        return False
    if not all(catalog.get(i) is not None and i not in profile for i in ids):
        return False
    _, any_profile_errs = from_graph_settings(catalog, None, raw_settings)
    return all(SENT_TWICE in str(e) for e in any_profile_errs)


def _references_of(raw_settings: object) -> References:
    references, problems = template_references(raw_settings)
    if problems:
        raise GraphError(400, " ".join(dict.fromkeys(problems)))
    return references


def _assignments_of(raw: object) -> exports.DecodedAssignments:
    problems: list[exports.Problem] = []
    decoded = exports.decode_assignments(raw, problems)
    if problems:
        raise _problems_error(problems)
    return decoded


def _policy(policy_id: str) -> Policy:
    return get_by_guid(policies(), "policy_id", policy_id, "deviceManagementConfigurationPolicy")


# ------------------------------------------------------------------------------------------------ views


class PolicyView(GraphView):
    schema = GraphAutoSchema()


class PolicyList(PolicyView):
    required_perms = PERMS

    @extend_schema(
        summary="List endpoint security policies",
        parameters=list_params(FIELDS, ORDERABLE, EXPANDABLE, SELECTABLE),
        responses={200: OpenApiResponse(collection_of(POLICY)), **errors()},
        tags=["configurationPolicies"],
    )
    def get(self, request):
        return self.collection(
            request,
            policies(),
            policy_json,
            fields=FIELDS,
            orderable=ORDERABLE,
            expandable=EXPANDABLE,
            selectable=SELECTABLE,
            default_order=("name",),
        )

    @extend_schema(
        summary="Create a policy (201); `assignments` may be included (deep insert, as an export has them)",
        request=json_request(POLICY_IN),
        responses={201: OpenApiResponse(POLICY), **write_errors(409), **CONFLICT},
        tags=["configurationPolicies"],
    )
    def post(self, request):
        body = self.json_body(request)
        _check_keys(body)
        if not sent_type_is(body, POLICY_TYPE):
            raise GraphError(
                400, f"@odata.type must be {POLICY_TYPE}, not {str(body['@odata.type'])[:80]!r}."
            )
        with_assignments = body.get("assignments") is not None
        if with_assignments and body["assignments"]:
            self.require_perm(request, services.ASSIGN_PERM, services.NO_ASSIGN)
        decoded = exports.decode_document(body, with_assignments=with_assignments)
        if decoded.problems:
            raise _problems_error(decoded.problems)
        references = _references_of(body.get("settings"))
        try:
            policy = services.create_policy(
                decoded.profile,
                decoded.platform,
                decoded.name,
                decoded.description,
                decoded.values,
                decoded.assignments if with_assignments else None,
                references=references,
                scope_tags=_scope_tags_of(body),
            )
        except services.PolicyError as exc:
            raise policy_error(exc) from None
        policy = _policy(str(policy.policy_id))
        location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{policy.policy_id}")
        return Response(policy_json(policy, {"settings"}), status=201, headers={"Location": location})


class PolicyDetail(PolicyView):
    required_perms = PERMS

    @extend_schema(
        summary="Get a policy (?$expand=settings,assignments)",
        parameters=[select_param(SELECTABLE), expand_param(EXPANDABLE)],
        responses={200: OpenApiResponse(POLICY), **errors()},
        tags=["configurationPolicies"],
    )
    def get(self, request, policy_id: str):
        query = parse_query(
            request.GET, fields={}, orderable={}, expandable=EXPANDABLE, selectable=SELECTABLE
        )
        policy = _policy(policy_id)
        return Response(apply_select(policy_json(policy, query.expand), query.select))

    @extend_schema(
        summary="Update name, description, settings (replaced when sent) and assignments (replaced when sent)",
        request=json_request(PATCH_IN),
        responses={200: OpenApiResponse(POLICY), **write_errors(409), **CONFLICT},
        tags=["configurationPolicies"],
    )
    def patch(self, request, policy_id: str):
        return self._update(request, policy_id, replace=False)

    @extend_schema(
        summary="Replace a policy (as the Intune portal does): name, description and settings",
        request=json_request(PUT_IN),
        responses={200: OpenApiResponse(POLICY), **write_errors(409), **CONFLICT},
        tags=["configurationPolicies"],
    )
    def put(self, request, policy_id: str):
        return self._update(request, policy_id, replace=True)

    def _update(self, request, policy_id: str, *, replace: bool):
        body = self.json_body(request)
        policy = _policy(policy_id)
        _check_keys(body)
        tags = _scope_tags_of(body)
        _check_same_profile(policy, body)
        if body.get("assignments") is not None:
            self.require_perm(request, services.ASSIGN_PERM, services.NO_ASSIGN)
        try:
            with transaction.atomic():
                if replace or "name" in body or "description" in body or tags is not None:
                    name = body.get("name") if replace else body.get("name", policy.name)
                    description = (
                        body.get("description") if replace else body.get("description", policy.description)
                    )
                    policy = services.update_basics(policy, name, description or "", scope_tags=tags)
                if replace or "settings" in body:
                    raw = body.get("settings") or []
                    policy = services.update_settings(
                        policy, _values_of(policy, raw), references=_references_of(raw)
                    )
                if body.get("assignments") is not None:
                    policy = services.set_assignments(policy, _assignments_of(body["assignments"]))
        except services.PolicyError as exc:
            raise policy_error(exc) from None
        return Response(policy_json(_policy(policy_id), {"settings"}))

    @extend_schema(
        summary="Delete a policy (204)",
        responses={204: OpenApiResponse(description="Deleted"), **errors()},
        tags=["configurationPolicies"],
    )
    def delete(self, request, policy_id: str):
        services.delete(_policy(policy_id))
        return Response(status=204)


class PolicySettings(PolicyView):
    required_perms = CHANGE

    @extend_schema(
        summary="The policy's settings (settingsCatalog shape, with ids); ?$expand=settingDefinitions",
        parameters=[*SETTING_PARAMS, expand_param(["settingDefinitions"])],
        responses={200: OpenApiResponse(collection_of(SETTING)), **errors()},
        tags=["configurationPolicies"],
    )
    def get(self, request, policy_id: str):
        return list_collection(
            request,
            settings_json(_policy(policy_id)),
            selectable={"id", "settingInstance", "settingDefinitions"},
            expandable={"settingDefinitions"},
            expand=_with_definitions,
        )

    @extend_schema(
        summary="Add a setting (or replace the one with the same settingDefinitionId); firewall rules are appended",
        request=json_request(SETTING_IN),
        responses={201: OpenApiResponse(SETTING), **write_errors(409), **CONFLICT},
        tags=["configurationPolicies"],
    )
    def post(self, request, policy_id: str):
        body = self.json_body(request)
        policy = _policy(policy_id)
        instance = body.get("settingInstance")
        if not isinstance(instance, Mapping) or not isinstance(instance.get("settingDefinitionId"), str):
            raise GraphError(400, "A setting needs a settingInstance with a settingDefinitionId.")
        added = _values_of(policy, [body])
        references = {**template_references(policy.settings)[0], **_references_of([body])}
        values = dict(policy.values or {})
        for key, value in added.items():
            if key == FIREWALL_RULE_GROUP_ID and isinstance(values.get(key), list):
                values[key] = [*values[key], *value]
            else:
                values[key] = value
        try:
            policy = services.update_settings(policy, values, references=references)
        except services.PolicyError as exc:
            raise policy_error(exc) from None
        root = instance["settingDefinitionId"]
        for element in settings_json(policy):
            if element["settingInstance"].get("settingDefinitionId") == root:
                return Response(element, status=201)
        # A child setting is stored inside its parent's instance: return the parent that now holds it.
        catalog = get_catalog()
        setting = catalog.get(root)
        parent = setting.parent_id if setting is not None else None
        for element in settings_json(policy):
            if parent and element["settingInstance"].get("settingDefinitionId") == parent:
                return Response(element, status=201)
        raise GraphError(
            400, f"The setting {root} was accepted but is not stored on its own; set its parent setting."
        )


class PolicySettingDetail(PolicyView):
    required_perms = {"GET": "policies.view_policy"}

    @extend_schema(
        summary="One setting of the policy (?$expand=settingDefinitions)",
        parameters=[expand_param(["settingDefinitions"])],
        responses={200: OpenApiResponse(SETTING), **errors()},
        tags=["configurationPolicies"],
    )
    def get(self, request, policy_id: str, setting_id: str):
        query = parse_query(request.GET, fields={}, orderable={}, expandable={"settingDefinitions"})
        for element in settings_json(_policy(policy_id)):
            if element["id"] == setting_id:
                return Response(_with_definitions(element, query.expand))
        raise GraphError(
            404, f"Setting '{setting_id[:40]}' was not found on this policy.", "ResourceNotFound"
        )


class PolicyAssign(PolicyView):
    required_perms = {"POST": services.ASSIGN_PERM}

    @extend_schema(
        summary="Replace the whole assignment set (send [] to unassign); device groups only",
        request=json_request(ASSIGN_IN),
        responses={200: OpenApiResponse(ASSIGN_OUT), **write_errors(409)},
        tags=["configurationPolicies"],
    )
    def post(self, request, policy_id: str):
        body = self.json_body(request)
        policy = _policy(policy_id)
        if not isinstance(body.get("assignments"), list):
            # Graph refuses a missing or null collection; only an explicit [] removes every assignment.
            raise GraphError(
                400, "The body needs 'assignments': a list of assignment objects (or [] to unassign)."
            )
        decoded = _assignments_of(body["assignments"])
        try:
            policy = services.set_assignments(policy, decoded)
        except services.PolicyError as exc:
            raise policy_error(exc) from None
        return Response({"value": exports.assignment_documents(policy, include_ids=True)})


class PolicyAssignments(PolicyView):
    required_perms = {"GET": "policies.view_policy"}

    @extend_schema(
        summary="The policy's assignments",
        parameters=ASSIGNMENT_PARAMS,
        responses={200: OpenApiResponse(collection_of(ASSIGNMENT)), **errors()},
        tags=["configurationPolicies"],
    )
    def get(self, request, policy_id: str):
        documents = exports.assignment_documents(_policy(policy_id), include_ids=True)
        return list_collection(request, documents, selectable={"id", "source", "sourceId", "target"})


class PolicyAssignmentDetail(PolicyView):
    required_perms = {"GET": "policies.view_policy"}

    @extend_schema(
        summary="One assignment (id is <policyId>_<groupId>)",
        responses={200: OpenApiResponse(ASSIGNMENT), **errors()},
        tags=["configurationPolicies"],
    )
    def get(self, request, policy_id: str, assignment_id: str):
        for document in exports.assignment_documents(_policy(policy_id), include_ids=True):
            if document["id"].lower() == assignment_id.lower():
                return Response(document)
        raise GraphError(404, f"Assignment '{assignment_id[:80]}' was not found.", "ResourceNotFound")
