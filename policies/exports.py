"""The Graph-shaped policy document: export (and version snapshots) and decoding for import and restore.

The document is a ``deviceManagementConfigurationPolicy`` as Graph returns it with ``$expand=settings,assignments``
(graph-api-shapes.md §1–2): ``name``, ``description``, ``platforms``, ``technologies``, ``roleScopeTagIds``,
``templateReference``, ``settings`` (stored verbatim on the policy) and ``assignments`` (group targets with the
assignment filter fields). Every PolicyVersion snapshot is this document, so a version can be diffed, restored
or downloaded the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from console import scopetags, text
from devices.models import Group
from policies.catalog import Catalog, PolicyValues, Profile, get_catalog
from policies.graph import from_graph_settings
from policies.models import GRAPH_PLATFORM, Policy

GROUP_TARGET = "#microsoft.graph.groupAssignmentTarget"
EXCLUSION_TARGET = "#microsoft.graph.exclusionGroupAssignmentTarget"
MDE_TECHNOLOGIES = "mdm,microsoftSense"
# Technologies flags of the endpoint security templates served by the MDE channel (macOS: appleRemoteManagement too).
TECHNOLOGY_FLAGS = frozenset({"mdm", "microsoftSense", "appleRemoteManagement"})
PLATFORM_OF_GRAPH = {graph.lower(): ours for ours, graph in GRAPH_PLATFORM.items()}
TEMPLATE_DISPLAY_VERSION = "Version 1"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: ``field`` is a form field, a document key or a settingDefinitionId."""

    field: str
    message: str
    rule_index: int | None = None


@dataclass
class DecodedAssignments:
    include: list[int] = field(default_factory=list)  # Group pks
    exclude: list[int] = field(default_factory=list)
    filter_id: int | None = (
        None  # AssignmentFilter pk (one filter for every included group; unused by decode)
    )
    filter_mode: str = ""
    filters: dict[int, tuple[int, str]] = field(
        default_factory=dict
    )  # included group pk -> (filter pk, mode)
    missing_groups: list[str] = field(default_factory=list)  # group ids of the document not in this tenant


@dataclass
class DecodedPolicy:
    profile: Profile | None
    platform: str
    name: str
    description: str
    values: PolicyValues
    assignments: DecodedAssignments
    problems: list[Problem]


# --------------------------------------------------------------------------------------------------------------
# export


def template_reference(profile: Profile) -> dict[str, str]:
    return {
        "templateId": profile.template_id,
        "templateFamily": profile.template_family,
        "templateDisplayName": profile.name,
        "templateDisplayVersion": TEMPLATE_DISPLAY_VERSION,
    }


def _filter_fields(assignment) -> dict[str, Any]:
    if assignment.intent == "include" and assignment.filter_id and assignment.filter_mode:
        return {
            "deviceAndAppManagementAssignmentFilterId": str(assignment.filter.filter_id),
            "deviceAndAppManagementAssignmentFilterType": assignment.filter_mode,
        }
    return {
        "deviceAndAppManagementAssignmentFilterId": None,
        "deviceAndAppManagementAssignmentFilterType": "none",
    }


def assignment_documents(policy: Policy, *, include_ids: bool = False) -> list[dict[str, Any]]:
    """Graph assignment objects, included groups first, then excluded, each by group name."""
    rows = sorted(
        policy.assignments.select_related("group", "filter"),
        key=lambda a: (a.intent != "include", a.group.name.lower(), str(a.group.group_id)),
    )
    documents = []
    for assignment in rows:
        target = {
            "@odata.type": GROUP_TARGET if assignment.intent == "include" else EXCLUSION_TARGET,
            "groupId": str(assignment.group.group_id),
            **_filter_fields(assignment),
        }
        document: dict[str, Any] = {}
        if include_ids:
            document.update(
                id=f"{policy.policy_id}_{assignment.group.group_id}",
                source="direct",
                sourceId=str(policy.policy_id),
            )
        document["target"] = target
        documents.append(document)
    return documents


def export_document(policy: Policy, *, include_ids: bool = False) -> dict[str, Any]:
    """The policy as one JSON document (what Export downloads and what every version stores).

    ``include_ids`` adds the server-side fields a Graph GET returns (id, dates, settingCount, isAssigned).
    """
    profile = get_catalog().profile(policy.profile)
    assignments = assignment_documents(policy, include_ids=include_ids)
    document: dict[str, Any] = {}
    if include_ids:
        document.update(
            id=str(policy.policy_id),
            createdDateTime=policy.created_at.isoformat() if policy.created_at else None,
            lastModifiedDateTime=policy.updated_at.isoformat() if policy.updated_at else None,
            settingCount=len(policy.settings),
            isAssigned=any(a["target"]["@odata.type"] == GROUP_TARGET for a in assignments),
            creationSource="",
        )
    document.update(
        name=policy.name,
        description=policy.description,
        platforms=GRAPH_PLATFORM[policy.platform],
        technologies=policy.technologies,
        roleScopeTagIds=scopetags.graph_ids_of(policy),
        templateReference=template_reference(profile),
        settings=policy.settings,
        assignments=assignments,
    )
    return document


# --------------------------------------------------------------------------------------------------------------
# decode (import, restore, diff)


def _profile_of(document: Mapping[str, Any], catalog: Catalog, problems: list[Problem]) -> Profile | None:
    reference = document.get("templateReference")
    if not isinstance(reference, Mapping):
        problems.append(
            Problem(
                "templateReference",
                "The document has no templateReference, so its profile is unknown. Export the policy again from "
                "Endpoint security, or add templateReference with templateId and templateFamily.",
            )
        )
        return None
    template_id = reference.get("templateId")
    profile = None
    if isinstance(template_id, str):
        try:
            profile = catalog.profile_for_template(template_id)
        except KeyError:
            profile = None
    if profile is None:
        known = ", ".join(f"{p.template_id} ({p.name})" for p in catalog.profiles.values())
        problems.append(
            Problem(
                "templateReference.templateId",
                f"Template “{template_id}” isn't one of the endpoint security templates this console manages: "
                f"{known}.",
            )
        )
        return None
    for key in ("templateDisplayName", "templateDisplayVersion"):  # informational, but text the schema states
        shown = reference.get(key)
        if shown is None:
            continue
        if not isinstance(shown, str) or not shown.strip():
            problems.append(Problem(f"templateReference.{key}", f"{key} is text (or null), not “{shown}”."))
        elif message := text.problem(shown, key):
            problems.append(Problem(f"templateReference.{key}", message))
    family = reference.get("templateFamily")
    if family is not None and family != profile.template_family:
        problems.append(
            Problem(
                "templateReference.templateFamily",
                f"Template {profile.template_id} belongs to the {profile.template_family} family, not “{family}”.",
            )
        )
    return profile


def _platform_of(document: Mapping[str, Any], profile: Profile | None, problems: list[Problem]) -> str:
    raw = document.get("platforms")
    if isinstance(raw, list):  # the SDK also accepts a JSON array for a flags enum
        raw = ",".join(str(item) for item in raw)
    if not isinstance(raw, str) or not raw.strip():
        problems.append(Problem("platforms", "The document has no platforms (for example “windows10”)."))
        return ""
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    ours = [PLATFORM_OF_GRAPH.get(name) for name in names]
    if len(ours) != 1 or ours[0] is None:
        problems.append(
            Problem(
                "platforms",
                f"Platforms “{raw}” isn't supported: use one of " + ", ".join(GRAPH_PLATFORM.values()) + ".",
            )
        )
        return ""
    platform = ours[0]
    if profile is not None and platform not in profile.platforms:
        problems.append(
            Problem("platforms", f"The {profile.name} profile doesn't exist for platform “{raw}”.")
        )
    return platform


def _technologies(document: Mapping[str, Any], problems: list[Problem]) -> None:
    raw = document.get("technologies")
    if raw is None:
        return
    if isinstance(raw, list):
        raw = ",".join(str(item) for item in raw)
    flags = {part.strip() for part in str(raw).split(",") if part.strip()}
    if "microsoftSense" not in flags or not flags <= TECHNOLOGY_FLAGS:
        problems.append(
            Problem(
                "technologies",
                f"Technologies “{raw}” isn't an endpoint security policy for Microsoft Defender for Endpoint "
                f"security settings management; expected “{MDE_TECHNOLOGIES}”.",
            )
        )


def _text(document: Mapping[str, Any], key: str, problems: list[Problem]) -> str:
    value = document.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(Problem(key, f"“{key}” must be text."))
        return ""
    return value


def _uuid(value: object) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (TypeError, ValueError, AttributeError):
        return None


def decode_assignments(
    raw: object, problems: list[Problem], *, missing_groups_are_errors: bool = True
) -> DecodedAssignments:
    from .models import AssignmentFilter

    decoded = DecodedAssignments()
    if raw is None:
        return decoded
    if not isinstance(raw, list):
        problems.append(Problem("assignments", "“assignments” must be a list of assignment objects."))
        return decoded
    wanted: list[tuple[str, str, str | None, str]] = []  # (intent, group uuid, filter uuid, filter type)
    for index, item in enumerate(raw):
        target = item.get("target") if isinstance(item, Mapping) else None
        if not isinstance(target, Mapping):
            problems.append(Problem("assignments", f"Assignment #{index + 1} has no target."))
            continue
        kind = str(target.get("@odata.type") or "").lstrip("#").lower()
        if kind.endswith("exclusiongroupassignmenttarget"):
            intent = "exclude"
        elif kind.endswith("groupassignmenttarget"):
            intent = "include"
        else:
            problems.append(
                Problem(
                    "assignments",
                    f"Assignment #{index + 1}: target “{target.get('@odata.type')}” isn't supported. Assign the "
                    "policy to device groups (groupAssignmentTarget or exclusionGroupAssignmentTarget).",
                )
            )
            continue
        group_id = _uuid(target.get("groupId"))
        if group_id is None:
            problems.append(
                Problem(
                    "assignments", f"Assignment #{index + 1}: “{target.get('groupId')}” isn't a group id."
                )
            )
            continue
        filter_type = str(target.get("deviceAndAppManagementAssignmentFilterType") or "none").lower()
        filter_id = target.get("deviceAndAppManagementAssignmentFilterId")
        if filter_type not in ("none", "include", "exclude"):
            problems.append(
                Problem(
                    "assignments",
                    f"Assignment #{index + 1}: filter type “{filter_type}” isn't one of none, include, exclude.",
                )
            )
            continue
        wanted.append((intent, group_id, _uuid(filter_id) if filter_id else None, filter_type))

    groups = {str(g.group_id): g.pk for g in Group.objects.filter(group_id__in=[w[1] for w in wanted])}
    filter_ids = {w[2] for w in wanted if w[2] and w[3] != "none"}
    filters = {str(f.filter_id): f.pk for f in AssignmentFilter.objects.filter(filter_id__in=filter_ids)}
    for intent, group_id, filter_uuid, filter_type in wanted:
        pk = groups.get(group_id)
        if pk is None:
            decoded.missing_groups.append(group_id)
            if missing_groups_are_errors:
                problems.append(
                    Problem(
                        "assignments",
                        f"Group {group_id} doesn't exist in this tenant. Create it, or import without assignments.",
                    )
                )
            continue
        (decoded.include if intent == "include" else decoded.exclude).append(pk)
        if intent == "include" and filter_type != "none" and filter_uuid:
            filter_pk = filters.get(filter_uuid)
            if filter_pk is None:
                problems.append(
                    Problem("assignments", f"Assignment filter {filter_uuid} doesn't exist in this tenant.")
                )
            else:
                decoded.filters[pk] = (filter_pk, filter_type)
    return decoded


def decode_document(
    document: object,
    *,
    catalog: Catalog | None = None,
    with_assignments: bool = True,
    missing_groups_are_errors: bool = True,
) -> DecodedPolicy:
    """Everything a document says, validated against the catalog; ``problems`` lists every issue found."""
    catalog = catalog or get_catalog()
    problems: list[Problem] = []
    empty = DecodedPolicy(None, "", "", "", {}, DecodedAssignments(), problems)
    if not isinstance(document, Mapping):
        problems.append(Problem("document", "The file must hold one JSON object: a configurationPolicy."))
        return empty
    profile = _profile_of(document, catalog, problems)
    platform = _platform_of(document, profile, problems)
    _technologies(document, problems)
    name = _text(document, "name", problems)
    description = _text(document, "description", problems)
    values: PolicyValues = {}
    settings = document.get("settings", [])
    if profile is not None:
        values, errors = from_graph_settings(catalog, profile, settings if settings is not None else [])
        problems.extend(
            Problem(error.setting_id or "settings", error.message, error.rule_index) for error in errors
        )
    assignments = DecodedAssignments()
    if with_assignments:
        assignments = decode_assignments(
            document.get("assignments"), problems, missing_groups_are_errors=missing_groups_are_errors
        )
    return DecodedPolicy(profile, platform, name, description, values, assignments, problems)
