"""The one place that writes endpoint security policies (the wizard, import and the Graph API all call it).

Each write validates against the catalog, stores ``settings`` (the Graph array) and ``values`` (the flat values
the engine reads) together, writes a new PolicyVersion whose snapshot is the export document, leaves an audit
record with before/after, and sends ``policy_changed`` (inside the transaction; receivers use on_commit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from console import audit, scopetags, text
from console.models import ScopeTag
from devices.models import Group, GroupMember
from devices.scope import scope_group_ids, targetable_groups
from policies import exports
from policies.catalog import (
    FIREWALL_RULE_GROUP_ID,
    Catalog,
    PolicyValues,
    Profile,
    SettingDef,
    get_catalog,
    managed_items_text,
)
from policies.exports import Problem
from policies.graph import References, apply_template_references, template_references, to_graph_settings
from policies.models import (
    AssignmentFilter,
    Policy,
    PolicyAssignment,
    PolicyPlatform,
    PolicyType,
    PolicyVersion,
)
from policies.signals import policy_changed
from policies.validation import validate_policy_values

__all__ = [
    "CATALOG_PLATFORMS",
    "FILTER_IGNORED_WARNING",
    "USER_GROUP_REFUSAL",
    "Assignments",
    "PolicyError",
    "Problem",
    "check_assignments",
    "check_basics",
    "name_in_use",
    "create_policy",
    "delete",
    "diff_snapshots",
    "duplicate",
    "import_policy",
    "restore_version",
    "set_assignments",
    "targeted_device_ids",
    "update_basics",
    "update_settings",
]

# The seed, "Deploy policy", step 7.
USER_GROUP_REFUSAL = (
    "Only Device Objects are applicable for Microsoft Defender for Endpoint management. Targeting users is not "
    "supported."
)
FILTER_IGNORED_WARNING = (
    "Assignment filters aren't supported for devices managed by Microsoft Defender for Endpoint security settings "
    "management: those devices ignore the filter and receive the policy anyway. Only devices enrolled in Intune "
    "honour it."
)
# Platforms whose settings are in the reference catalog: Windows (setting-catalog.json) and, since issue 18, macOS
# and Linux (setting-catalog-macos-linux.json), each with its own profiles.
CATALOG_PLATFORMS = ("windows", "macos", "linux")
NAME_MAX = 200
DESCRIPTION_MAX = 1500


class PolicyError(Exception):
    """A request the services refused; ``problems`` lists each one (nothing was saved)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(" ".join(p.message for p in self.problems) or "The policy isn't valid.")

    def by_field(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for problem in self.problems:
            result.setdefault(problem.field, []).append(problem.message)
        return result


@dataclass(frozen=True)
class Assignments:
    """Included and excluded device groups (Group pks) and, per included group, an optional assignment filter.

    ``filters`` holds (group pk, filter pk, mode) per included group that has a filter (Intune chooses the filter
    per group assignment). ``filter_id``/``filter_mode`` is a shorthand accepted on input: one filter for every
    included group without its own; ``check_assignments`` turns it into rows.
    """

    include: tuple[int, ...] = ()
    exclude: tuple[int, ...] = ()
    filter_id: int | None = None
    filter_mode: str = ""  # "include" | "exclude" | ""
    filters: tuple[tuple[int, int, str], ...] = ()

    def row_filters(self) -> dict[int, tuple[int, str]]:
        """Included group pk -> (filter pk, mode), for the included groups whose assignment has a filter."""
        rows: dict[int, tuple[int, str]] = {}
        if self.filter_id is not None:
            rows = dict.fromkeys(self.include, (self.filter_id, self.filter_mode))
        for group, filter_id, mode in self.filters:
            if group in self.include and filter_id is not None:
                rows[group] = (filter_id, mode)
        return rows

    @classmethod
    def coerce(cls, value: object) -> Assignments:
        if value is None:
            return cls()
        if isinstance(value, Assignments):
            return value
        if isinstance(value, exports.DecodedAssignments):
            return cls(
                tuple(value.include),
                tuple(value.exclude),
                value.filter_id,
                value.filter_mode,
                tuple((g, f, m) for g, (f, m) in value.filters.items()),
            )
        if isinstance(value, Mapping):

            def pks(items: object) -> tuple[int, ...]:
                out: list[int] = []
                for item in items or ():  # type: ignore[union-attr]
                    pk = getattr(item, "pk", item)
                    try:
                        pk = int(pk)
                    except (TypeError, ValueError):
                        raise PolicyError([Problem("include", f"“{item}” isn't a group.")]) from None
                    if pk not in out:
                        out.append(pk)
                return tuple(out)

            raw_filter = value.get("filter_id", value.get("filter"))
            filter_id = getattr(raw_filter, "pk", raw_filter)
            try:
                filter_id = int(filter_id) if filter_id not in (None, "") else None
            except (TypeError, ValueError):
                raise PolicyError(
                    [Problem("filter", f"“{raw_filter}” isn't an assignment filter.")]
                ) from None
            rows: list[tuple[int, int, str]] = []
            for row in value.get("filters") or ():
                try:
                    group, row_filter, mode = row
                    rows.append((int(group), int(row_filter), str(mode or "")))
                except (TypeError, ValueError):
                    raise PolicyError(
                        [Problem("filter", f"“{row}” isn't a group, an assignment filter and a filter mode.")]
                    ) from None
            return cls(
                pks(value.get("include")),
                pks(value.get("exclude")),
                filter_id,
                str(value.get("filter_mode") or ""),
                tuple(rows),
            )
        raise TypeError(f"can't read assignments from {type(value).__name__}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "include": list(self.include),
            "exclude": list(self.exclude),
            "filter_id": self.filter_id,
            "filter_mode": self.filter_mode,
            "filters": [list(row) for row in self.filters],
        }


# --------------------------------------------------------------------------------------------------------------
# checks (also used by the wizard before anything is saved)


def _profile(profile: Profile | str, catalog: Catalog) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return catalog.profile(profile)
    except KeyError:
        raise PolicyError([Problem("profile", f"“{profile}” isn't an endpoint security profile.")]) from None


def platform_problem(profile: Profile, platform: str) -> Problem | None:
    labels = dict(PolicyPlatform.choices)
    if platform not in labels:
        return Problem(
            "platform", f"“{platform}” isn't a platform. Choose one of: {', '.join(labels.values())}."
        )
    if platform not in profile.platforms:
        return Problem("platform", f"The {profile.name} profile isn't available for {labels[platform]}.")
    if platform not in CATALOG_PLATFORMS:
        return Problem(
            "platform",
            f"The {labels[platform]} settings of the {profile.name} profile aren't in this console's reference "
            "setting catalog (it holds the Windows settings only), so a policy for this platform can't be "
            "configured here. Choose “Windows 10, Windows 11, and Windows Server”.",
        )
    return None


def check_basics(
    policy_type: str, name: object, description: object, *, exclude_pk: int | None = None
) -> tuple[str, str, list[Problem]]:
    """Cleaned name and description and the problems: a name is required.

    A name another policy of the type already has is *not* a problem: Microsoft Graph creates policies with
    duplicate names (scripts that re-run rely on it), so the wizard warns instead (:func:`name_in_use`).
    """
    problems: list[Problem] = []
    clean_name = " ".join(name.split()) if isinstance(name, str) else ""
    clean_description = description.strip() if isinstance(description, str) else ""
    unsafe_name = text.problem(name, "The name")
    unsafe_description = text.problem(description, "The description", multiline=True)
    if unsafe_description:
        problems.append(Problem("description", unsafe_description))
    if unsafe_name:
        problems.append(Problem("name", unsafe_name))
    elif not clean_name:
        problems.append(Problem("name", "Enter a name for the policy."))
    elif len(clean_name) > NAME_MAX:
        problems.append(Problem("name", f"The name can be at most {NAME_MAX} characters long."))
    if len(clean_description) > DESCRIPTION_MAX:
        problems.append(
            Problem("description", f"The description can be at most {DESCRIPTION_MAX} characters.")
        )
    return clean_name, clean_description, problems


def name_in_use(policy_type: str, name: object, *, exclude_pk: int | None = None) -> str:
    """A warning ("" when none) that another policy of the type has this name: allowed, as in Graph and Intune,
    but two policies with one name are easy to confuse in reports and assignments."""
    clean_name = " ".join(name.split()) if isinstance(name, str) else ""
    if not clean_name:
        return ""
    taken = Policy.objects.filter(policy_type=policy_type, name__iexact=clean_name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if not taken.exists():
        return ""
    label = PolicyType(policy_type).label
    return (
        f"Another policy in {label} is already named “{clean_name}”. You can keep the name (Intune allows it), "
        "but a distinct one is easier to tell apart in reports and assignments."
    )


def check_values(profile: Profile, values: Mapping[str, object]) -> tuple[PolicyValues, list[Problem]]:
    """Catalog validation; the clean values come back in the catalog's order (stable Graph documents)."""
    if not isinstance(values, Mapping):
        return {}, [Problem("settings", "Settings must be a set of setting ids and values.")]
    clean, errors = validate_policy_values(profile, values)
    problems = [Problem(e.setting_id or "settings", e.message, e.rule_index) for e in errors]
    return canonical_order(profile, clean), problems


def canonical_order(profile: Profile, values: Mapping[str, Any]) -> PolicyValues:
    order = {setting.id: index for index, setting in enumerate(profile.settings)}
    ordered: PolicyValues = {}
    for key in sorted(values, key=lambda k: order.get(k, len(order))):
        value = values[key]
        if key == FIREWALL_RULE_GROUP_ID and isinstance(value, list):
            value = [
                {child: rule[child] for child in sorted(rule, key=lambda c: order.get(c, len(order)))}
                for rule in value
            ]
        ordered[key] = value
    return ordered


def check_assignments(
    assignments: Assignments | Mapping[str, Any] | None, platform: str = "windows"
) -> tuple[Assignments, list[Problem]]:
    """Device groups only (a user group is refused with the seed's reason); a filter is optional."""
    try:
        wanted = Assignments.coerce(assignments)
    except PolicyError as exc:
        return Assignments(), exc.problems
    problems: list[Problem] = []
    groups = Group.objects.in_bulk(set(wanted.include) | set(wanted.exclude))
    for field_name, pks in (("include", wanted.include), ("exclude", wanted.exclude)):
        for pk in pks:
            group = groups.get(pk)
            if group is None:
                problems.append(Problem(field_name, f"Group {pk} doesn't exist (it may have been deleted)."))
            elif not group.targetable:
                problems.append(Problem(field_name, f"“{group.name}” is a user group. {USER_GROUP_REFUSAL}"))
    problems += _outside_scope(wanted, groups)
    for pk in sorted(set(wanted.include) & set(wanted.exclude)):
        if pk in groups:
            problems.append(
                Problem(
                    "exclude",
                    f"“{groups[pk].name}” can't be both included and excluded; pick one of the two.",
                )
            )
    if wanted.filter_id is not None and not wanted.include:
        problems.append(
            Problem(
                "filter", "An assignment filter applies to included groups; include a group or remove it."
            )
        )
    rows = wanted.row_filters()
    known = AssignmentFilter.objects.in_bulk({f for f, _ in rows.values() if f is not None and f > 0})
    for group_pk, (filter_pk, mode) in rows.items():
        group_name = groups[group_pk].name if group_pk in groups else "the group"
        assignment_filter = known.get(filter_pk)
        if assignment_filter is None:
            problems.append(
                Problem(
                    "filter",
                    f"The assignment filter chosen for “{group_name}” doesn't exist (it may have been deleted).",
                )
            )
        elif assignment_filter.platform != platform:
            problems.append(
                Problem(
                    "filter",
                    f"The filter “{assignment_filter.name}” is for {assignment_filter.get_platform_display()}; "
                    f"choose a filter for {PolicyPlatform(platform).label}.",
                )
            )
        if mode not in ("include", "exclude"):
            problems.append(
                Problem(
                    "filter_mode",
                    f"Choose whether the filter of “{group_name}” includes or excludes the devices it matches.",
                )
            )
    wanted = Assignments(
        wanted.include, wanted.exclude, None, "", tuple((g, f, m) for g, (f, m) in sorted(rows.items()))
    )
    return wanted, problems


# Intune's "Assign" permission on Endpoint security policies: separate from Update, so a role may change a
# policy's settings without changing whom it targets (and the other way round).
ASSIGN_PERM = "policies.change_policyassignment"
NO_ASSIGN = "Your role can't assign endpoint security policies (it lacks the Assign permission)."


def _outside_scope(wanted: Assignments, groups: Mapping[int, Any]) -> list[Problem]:
    """Intune: a person whose role assignment is scoped to device groups may target only those groups."""
    user = _user(None)
    allowed = scope_group_ids(user)
    if allowed is None and scopetags.tag_scope(user) is None:
        return []
    if allowed is None:
        wanted_pks = set(wanted.include) | set(wanted.exclude)
        allowed = set(targetable_groups(user).filter(pk__in=wanted_pks).values_list("pk", flat=True))
    else:
        allowed = set(targetable_groups(user).filter(pk__in=allowed).values_list("pk", flat=True))
    return [
        Problem(
            field_name,
            f"“{groups[pk].name}” is outside the scope of your role assignment; you can target "
            "only the device groups you are scoped to.",
        )
        for field_name, pks in (("include", wanted.include), ("exclude", wanted.exclude))
        for pk in pks
        if pk in groups and pk not in allowed
    ]


# --------------------------------------------------------------------------------------------------------------
# helpers


def _actor(actor: object) -> audit.Actor | None:
    if actor is None or isinstance(actor, audit.Actor):
        return actor
    if isinstance(actor, get_user_model()):
        current = audit.current_actor()
        if getattr(current.user, "pk", None) == actor.pk:
            return current  # the request's actor: keeps the IP address and the source
        return audit.Actor(user=actor, name=actor.get_username(), source="ui")
    return audit.Actor(name=str(actor))


def _user(actor: audit.Actor | None):
    actor = actor or audit.current_actor()
    return actor.user if getattr(actor.user, "pk", None) else None


def targeted_device_ids(include: Iterable[int], exclude: Iterable[int] = ()) -> set[int]:
    """Device pks in an included group and in no excluded group (from group memberships)."""
    include, exclude = list(include), list(exclude)
    if not include:
        return set()
    devices = set(
        GroupMember.objects.filter(group_id__in=include).values_list("device_id", flat=True).distinct()
    )
    if exclude and devices:
        devices -= set(
            GroupMember.objects.filter(group_id__in=exclude).values_list("device_id", flat=True).distinct()
        )
    return devices


def current_assignments(policy: Policy) -> Assignments:
    include, exclude, rows = [], [], []
    for assignment in policy.assignments.order_by("id"):
        if assignment.intent == "include":
            include.append(assignment.group_id)
            if assignment.filter_id and assignment.filter_mode:
                rows.append((assignment.group_id, assignment.filter_id, assignment.filter_mode))
        else:
            exclude.append(assignment.group_id)
    return Assignments(tuple(include), tuple(exclude), filters=tuple(sorted(rows)))


def _assignment_state(policy: Policy) -> list[str]:
    rows = []
    for a in policy.assignments.select_related("group", "filter").order_by("intent", "group__name"):
        text = f"{a.intent}: {a.group.name}"
        if a.filter_id and a.filter_mode:
            text += f" (filter {a.filter.name}, {a.filter_mode})"
        rows.append(text)
    return rows


def _state(policy: Policy) -> dict[str, Any]:
    """What an audit record shows before/after."""
    return {
        "name": policy.name,
        "description": policy.description,
        "platform": policy.platform,
        "profile": policy.profile,
        "values": policy.values,
        "assignments": _assignment_state(policy),
        "scope_tags": scopetags.names_of(policy),
        "version": policy.version,
    }


def _write_assignments(policy: Policy, assignments: Assignments) -> None:
    policy.assignments.all().delete()
    filters = assignments.row_filters()
    rows = [
        PolicyAssignment(
            policy=policy,
            group_id=pk,
            intent="include",
            filter_id=filters[pk][0] if pk in filters else None,
            filter_mode=filters[pk][1] if pk in filters else "",
        )
        for pk in assignments.include
    ]
    rows += [PolicyAssignment(policy=policy, group_id=pk, intent="exclude") for pk in assignments.exclude]
    PolicyAssignment.objects.bulk_create(rows)


def _snapshot(policy: Policy, actor: audit.Actor | None, note: str) -> PolicyVersion:
    actor = actor or audit.current_actor()
    return PolicyVersion.objects.create(
        policy=policy,
        number=policy.version,
        snapshot=exports.export_document(policy),
        created_by=actor.name[:200],
        note=note[:200],
    )


def _store_values(
    policy: Policy, values: PolicyValues, catalog: Catalog, references: References | None = None
) -> None:
    """Values and the Graph settings array generated from them. Template references (from a Graph request, or
    kept from the stored array when None) go back on the generated array: Graph round-trips them."""
    if references is None:
        references = template_references(policy.settings or [])[0]
    policy.values = values
    policy.settings = to_graph_settings(catalog, values)
    apply_template_references(policy.settings, references)


def _send(policy: Policy, kind: str, device_ids: set[int] | None = None) -> None:
    """Inside the transaction of the change: receivers defer their own work with on_commit (reports.pending)."""
    policy_changed.send(sender=Policy, policy=policy, kind=kind, device_ids=device_ids)


# --------------------------------------------------------------------------------------------------------------
# writes


def _create(
    profile: Profile | str,
    platform: str,
    name: object,
    description: object,
    values: Mapping[str, object],
    assignments: Assignments | Mapping[str, Any] | None,
    actor: object,
    *,
    action: str,
    note: str,
    references: References | None = None,
    scope_tags: Iterable[ScopeTag] | None = None,
) -> Policy:
    catalog = get_catalog()
    profile = _profile(profile, catalog)
    problems: list[Problem] = []
    bad_platform = platform_problem(profile, platform)
    if bad_platform:
        problems.append(bad_platform)
    clean_name, clean_description, basics_problems = check_basics(profile.policy_type, name, description)
    problems += basics_problems
    clean_values, value_problems = check_values(profile, values)
    problems += value_problems
    clean_assignments, assignment_problems = check_assignments(assignments, platform)
    problems += assignment_problems
    actor = _actor(actor)
    clean_tags, tag_problems = check_scope_tags(scope_tags, _user(actor))
    problems += tag_problems
    if problems:
        raise PolicyError(problems)
    with transaction.atomic():
        policy = Policy(
            name=clean_name,
            description=clean_description,
            policy_type=profile.policy_type,
            profile=profile.name,
            platform=platform,
            technologies=profile.technologies,
            template_id=profile.template_id,
            template_family=profile.template_family,
            version=1,
            created_by=_user(actor),
        )
        _store_values(policy, clean_values, catalog, references or {})
        policy.save()
        policy.scope_tags.set(clean_tags)
        _write_assignments(policy, clean_assignments)
        _snapshot(policy, actor, note)
        audit.record(action, policy, before=None, after=_state(policy), actor=actor)
        _send(policy, "created")
    return policy


def create_policy(
    profile: Profile | str,
    platform: str,
    name: str,
    description: str = "",
    values: Mapping[str, object] | None = None,
    assignments: Assignments | Mapping[str, Any] | None = None,
    actor: object = None,
    *,
    references: References | None = None,
    scope_tags: Iterable[ScopeTag] | None = None,
) -> Policy:
    """Create a policy (raises PolicyError listing every problem; nothing is saved then). ``references``: the
    template references of a Graph request (policies.graph.template_references), kept on the stored array.
    ``scope_tags``: None gives the creator's default (console.scopetags.initial_for)."""
    return _create(
        profile,
        platform,
        name,
        description,
        values or {},
        assignments,
        actor,
        action="policy.create",
        note="Created",
        references=references,
        scope_tags=scope_tags,
    )


def _locked(policy: Policy) -> Policy:
    return Policy.objects.select_for_update().get(pk=policy.pk)


def _finish_update(
    policy: Policy, before: dict[str, Any], actor: audit.Actor | None, action: str, note: str
) -> None:
    policy.version += 1
    policy.save()
    _snapshot(policy, actor, note)
    old, new = audit.changed(before, _state(policy))
    audit.record(action, policy, before=old, after=new, actor=actor)


def update_settings(
    policy: Policy,
    values: Mapping[str, object],
    actor: object = None,
    *,
    expected_version: int | None = None,
    references: References | None = None,
) -> Policy:
    """Replace the configured settings. No change, no new version. ``references``: the template references of a
    Graph request; None keeps the stored ones (the wizard has none to send)."""
    catalog = get_catalog()
    profile = catalog.profile(policy.profile)
    clean, problems = check_values(profile, values)
    if problems:
        raise PolicyError(problems)
    actor = _actor(actor)
    with transaction.atomic():
        policy = _locked(policy)
        _check_version(policy, expected_version)
        unchanged_references = references is None or references == template_references(policy.settings)[0]
        if policy.values == clean and list(policy.values) == list(clean) and unchanged_references:
            return policy
        before = _state(policy)
        _store_values(policy, clean, catalog, references)
        _finish_update(policy, before, actor, "policy.update", "Configuration settings updated")
        _send(policy, "updated")
    return policy


def update_basics(
    policy: Policy,
    name: str,
    description: str = "",
    actor: object = None,
    *,
    expected_version: int | None = None,
    scope_tags: Iterable[ScopeTag] | None = None,
) -> Policy:
    """Name, description and (when not None) the scope tags, as Intune's Basics step has them."""
    clean_name, clean_description, problems = check_basics(
        policy.policy_type, name, description, exclude_pk=policy.pk
    )
    actor = _actor(actor)
    clean_tags = None
    if scope_tags is not None:
        clean_tags, tag_problems = check_scope_tags(scope_tags, _user(actor))
        problems += tag_problems
    if problems:
        raise PolicyError(problems)
    with transaction.atomic():
        policy = _locked(policy)
        _check_version(policy, expected_version)
        same_tags = clean_tags is None or sorted(t.pk for t in clean_tags) == sorted(
            policy.scope_tags.values_list("pk", flat=True)
        )
        if (policy.name, policy.description) == (clean_name, clean_description) and same_tags:
            return policy
        before = _state(policy)
        policy.name, policy.description = clean_name, clean_description
        if not same_tags:
            policy.scope_tags.set(clean_tags)
        _finish_update(policy, before, actor, "policy.update", "Basics updated")
    return policy


def check_scope_tags(chosen: Iterable[ScopeTag] | None, user) -> tuple[list[ScopeTag], list[Problem]]:
    """The tags to store for a policy (console.scopetags.check_choice); None: the person's default."""
    if chosen is None:
        chosen = ScopeTag.objects.filter(pk__in=scopetags.initial_for(user))
    try:
        return scopetags.check_choice(user, chosen), []
    except scopetags.ScopeTagError as exc:
        return [], [Problem("scope_tags", str(exc))]


def set_assignments(
    policy: Policy,
    assignments: Assignments | Mapping[str, Any] | None,
    actor: object = None,
    *,
    expected_version: int | None = None,
) -> Policy:
    """Replace the assignment set (as Graph's /assign does). Devices that gain or lose the policy are signalled."""
    clean, problems = check_assignments(assignments, policy.platform)
    if problems:
        raise PolicyError(problems)
    actor = _actor(actor)
    with transaction.atomic():
        policy = _locked(policy)
        _check_version(policy, expected_version)
        old = current_assignments(policy)
        if _same_assignments(old, clean):
            return policy
        before = _state(policy)
        affected = targeted_device_ids(old.include, old.exclude)
        _write_assignments(policy, clean)
        affected |= targeted_device_ids(clean.include, clean.exclude)
        _finish_update(policy, before, actor, "policy.assign", "Assignments updated")
        _send(policy, "assigned", affected)
    return policy


def _same_assignments(a: Assignments, b: Assignments) -> bool:
    return (set(a.include), set(a.exclude), a.row_filters()) == (
        set(b.include),
        set(b.exclude),
        b.row_filters(),
    )


def _check_version(policy: Policy, expected_version: int | None) -> None:
    if expected_version is not None and policy.version != expected_version:
        raise PolicyError(
            [
                Problem(
                    "version",
                    f"“{policy.name}” was changed by someone else while you were editing it (it is now at version "
                    f"{policy.version}, you started from version {expected_version}). Nothing was saved: start "
                    "again from the current version.",
                )
            ]
        )


def available_copy_name(policy_type: str, name: str) -> str:
    base = f"{name} - Copy"
    candidate, n = base, 2
    while Policy.objects.filter(policy_type=policy_type, name__iexact=candidate).exists():
        candidate, n = f"{base} ({n})", n + 1
    return candidate[:NAME_MAX]


def duplicate(
    policy: Policy, name: str | None = None, description: str | None = None, actor: object = None
) -> Policy:
    """A new policy with the same profile and settings; like Intune, assignments are not copied."""
    return _create(
        policy.profile,
        policy.platform,
        name if name is not None else available_copy_name(policy.policy_type, policy.name),
        policy.description if description is None else description,
        policy.values,
        None,
        actor,
        action="policy.duplicate",
        note=f"Duplicated from “{policy.name}” version {policy.version}"[:200],
    )


def delete(policy: Policy, actor: object = None) -> set[int]:
    """Delete the policy; returns (and signals) the pks of the devices that had it."""
    actor = _actor(actor)
    with transaction.atomic():
        policy = _locked(policy)
        current = current_assignments(policy)
        device_ids = targeted_device_ids(current.include, current.exclude)
        before = _state(policy)
        pk = policy.pk
        audit.record("policy.delete", policy, before=before, after=None, actor=actor)
        policy.delete()
        policy.pk = pk  # receivers still learn which policy it was
        _send(policy, "deleted", device_ids)
    return device_ids


@dataclass
class RestoreResult:
    policy: Policy
    skipped_groups: list[str] = field(default_factory=list)


def restore_version(
    policy: Policy, number: int, actor: object = None, *, may_assign: bool = True
) -> RestoreResult:
    """Make version ``number``'s basics, settings and assignments current again, as a new version.

    Groups of that version that no longer exist are skipped (and reported). Without ``may_assign`` (a role
    without Assign) a version whose assignments differ from the current ones is refused.
    """
    version = policy.versions.filter(number=number).first()
    if version is None:
        raise PolicyError([Problem("version", f"Version {number} of “{policy.name}” doesn't exist.")])
    decoded = exports.decode_document(version.snapshot, missing_groups_are_errors=False)
    problems = list(decoded.problems)
    if decoded.profile is not None and decoded.profile.name != policy.profile:
        problems.append(Problem("version", "That version belongs to another profile."))
    catalog = get_catalog()
    profile = catalog.profile(policy.profile)
    clean_name, clean_description, basics_problems = check_basics(
        policy.policy_type, decoded.name, decoded.description, exclude_pk=policy.pk
    )
    clean_values, value_problems = check_values(profile, decoded.values)
    clean_assignments, assignment_problems = check_assignments(decoded.assignments, policy.platform)
    problems += basics_problems + value_problems + assignment_problems
    if (
        not problems
        and not may_assign
        and not _same_assignments(current_assignments(policy), clean_assignments)
    ):
        problems.append(Problem("include", f"{NO_ASSIGN} Version {number} has other assignments."))
    if problems:
        raise PolicyError(problems)
    actor = _actor(actor)
    with transaction.atomic():
        policy = _locked(policy)
        before = _state(policy)
        old = current_assignments(policy)
        affected = targeted_device_ids(old.include, old.exclude)
        policy.name, policy.description = clean_name, clean_description
        _store_values(policy, clean_values, catalog)
        _write_assignments(policy, clean_assignments)
        affected |= targeted_device_ids(clean_assignments.include, clean_assignments.exclude)
        _finish_update(policy, before, actor, "policy.restore", f"Restored version {number}")
        _send(policy, "updated", affected)
    return RestoreResult(policy, decoded.assignments.missing_groups)


def import_policy(
    document: object, actor: object = None, *, name: str | None = None, with_assignments: bool = True
) -> Policy:
    """Create a policy from an exported (Graph-shaped) document.

    Every problem is reported at once (each setting problem under its settingDefinitionId); nothing is saved then.
    """
    decoded = exports.decode_document(document, with_assignments=with_assignments)
    problems = list(decoded.problems)
    raw_settings = document.get("settings") if isinstance(document, Mapping) else None
    references, reference_problems = template_references(raw_settings)
    problems += [Problem("settings", message) for message in reference_problems]
    chosen_name = name.strip() if name and name.strip() else decoded.name
    if decoded.profile is not None:
        if decoded.platform:
            bad_platform = platform_problem(decoded.profile, decoded.platform)
            if bad_platform is not None:
                problems.append(bad_platform)
        problems += check_basics(decoded.profile.policy_type, chosen_name, decoded.description)[2]
        if with_assignments:
            problems += check_assignments(decoded.assignments, decoded.platform or "windows")[1]
    if problems:
        raise PolicyError(list(dict.fromkeys(problems)))
    assert decoded.profile is not None
    return _create(
        decoded.profile,
        decoded.platform,
        chosen_name,
        decoded.description,
        decoded.values,
        decoded.assignments if with_assignments else None,
        actor,
        action="policy.import",
        note="Imported",
        references=references,
    )


# --------------------------------------------------------------------------------------------------------------
# reading values for people (labels) and diffs between versions


def option_label(setting: SettingDef, value: object) -> str:
    option = setting.option_for(value)
    return option.label if option is not None else str(value)


def value_text(setting: SettingDef, value: object) -> str:
    """A one-line, human reading of a flat value."""
    if setting.type == "choice":
        return option_label(setting, value)
    if setting.type == "choice_collection" and isinstance(value, list):
        return ", ".join(option_label(setting, item) for item in value)
    if setting.is_instance_collection and setting.is_managed_config:
        return managed_items_text(setting, value)
    if setting.is_instance_collection and isinstance(value, list):
        names = [str(rule.get(f"{setting.id}_name", "?")) for rule in value if isinstance(rule, Mapping)]
        return f"{len(names)} rule{'s' if len(names) != 1 else ''}: " + ", ".join(names)
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class Change:
    kind: str  # "added" | "removed" | "changed"
    label: str  # what changed, for people
    before: str = ""
    after: str = ""
    key: str = ""  # setting id when it is a setting
    category: str = ""


@dataclass
class VersionDiff:
    basics: list[Change]
    settings: list[Change]
    assignments: list[Change]

    @property
    def empty(self) -> bool:
        return not (self.basics or self.settings or self.assignments)

    @property
    def count(self) -> int:
        return len(self.basics) + len(self.settings) + len(self.assignments)


def _diff_rules(setting: SettingDef, old: list[Any], new: list[Any], catalog: Catalog) -> list[Change]:
    name_key = f"{setting.id}_name"

    def by_name(rules: list[Any]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for index, rule in enumerate(rules):
            if isinstance(rule, Mapping):
                out[str(rule.get(name_key) or f"Rule {index + 1}")] = dict(rule)
        return out

    before, after = by_name(old), by_name(new)
    changes: list[Change] = []
    for rule_name in [n for n in before if n not in after]:
        changes.append(
            Change("removed", f"Firewall rule “{rule_name}”", "Defined", "", setting.id, setting.category)
        )
    for rule_name in [n for n in after if n not in before]:
        changes.append(
            Change("added", f"Firewall rule “{rule_name}”", "", "Defined", setting.id, setting.category)
        )
    for rule_name in [n for n in after if n in before and after[n] != before[n]]:
        for child_id in dict.fromkeys([*before[rule_name], *after[rule_name]]):
            child = catalog.get(child_id)
            label = f"Firewall rule “{rule_name}” › {child.display_name if child else child_id}"
            old_v, new_v = before[rule_name].get(child_id), after[rule_name].get(child_id)
            if old_v == new_v:
                continue
            read = lambda v, c=child: value_text(c, v) if c is not None else str(v)  # noqa: E731
            if old_v is None:
                changes.append(Change("added", label, "", read(new_v), setting.id, setting.category))
            elif new_v is None:
                changes.append(Change("removed", label, read(old_v), "", setting.id, setting.category))
            else:
                changes.append(
                    Change("changed", label, read(old_v), read(new_v), setting.id, setting.category)
                )
    return changes


def diff_values(profile: Profile, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    catalog = get_catalog()
    changes: list[Change] = []
    order = {s.id: i for i, s in enumerate(profile.settings)}
    for key in sorted(set(old) | set(new), key=lambda k: order.get(k, len(order))):
        setting = profile.get(key) or catalog.get(key)
        if setting is None:
            continue
        label = setting.display_name
        if (
            setting.parent_id
            and (parent := catalog.get(setting.parent_id)) is not None
            and parent.type == "choice"
        ):
            label = f"{parent.display_name} › {setting.display_name}"
        if setting.is_instance_collection:
            changes += _diff_rules(setting, list(old.get(key) or []), list(new.get(key) or []), catalog)
        elif key not in old:
            changes.append(
                Change("added", label, "Not configured", value_text(setting, new[key]), key, setting.category)
            )
        elif key not in new:
            changes.append(
                Change(
                    "removed", label, value_text(setting, old[key]), "Not configured", key, setting.category
                )
            )
        elif old[key] != new[key]:
            changes.append(
                Change(
                    "changed",
                    label,
                    value_text(setting, old[key]),
                    value_text(setting, new[key]),
                    key,
                    setting.category,
                )
            )
    return changes


def _assignment_rows(document: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """group id -> (intent, filter text) of a document."""
    from .models import AssignmentFilter

    rows: dict[str, tuple[str, str]] = {}
    filter_names = {str(f.filter_id): f.name for f in AssignmentFilter.objects.all()}
    for item in document.get("assignments") or []:
        target = item.get("target", {}) if isinstance(item, Mapping) else {}
        intent = "Excluded" if "exclusion" in str(target.get("@odata.type", "")).lower() else "Included"
        mode = target.get("deviceAndAppManagementAssignmentFilterType") or "none"
        filter_text = ""
        if mode != "none":
            fid = str(target.get("deviceAndAppManagementAssignmentFilterId"))
            filter_text = f"filter “{filter_names.get(fid, fid)}” ({mode})"
        rows[str(target.get("groupId"))] = (intent, filter_text)
    return rows


def diff_snapshots(old: Mapping[str, Any], new: Mapping[str, Any]) -> VersionDiff:
    """Setting-level, basics and assignment changes between two export documents (two versions)."""
    old_decoded = exports.decode_document(old, with_assignments=False)
    new_decoded = exports.decode_document(new, with_assignments=False)
    basics: list[Change] = []
    for key, label in (("name", "Name"), ("description", "Description")):
        if (old.get(key) or "") != (new.get(key) or ""):
            basics.append(Change("changed", label, old.get(key) or "", new.get(key) or ""))
    profile = new_decoded.profile or old_decoded.profile
    settings = diff_values(profile, old_decoded.values, new_decoded.values) if profile else []
    before, after = _assignment_rows(old), _assignment_rows(new)
    names = {str(g.group_id): g.name for g in Group.objects.filter(group_id__in=[*before, *after])}
    assignments: list[Change] = []
    for group_id in dict.fromkeys([*before, *after]):
        label = names.get(group_id, f"Deleted group ({group_id})")
        old_row, new_row = before.get(group_id), after.get(group_id)
        read = lambda row: " ".join(part for part in row if part)  # noqa: E731
        if old_row is None:
            assignments.append(Change("added", label, "", read(new_row)))
        elif new_row is None:
            assignments.append(Change("removed", label, read(old_row), ""))
        elif old_row != new_row:
            assignments.append(Change("changed", label, read(old_row), read(new_row)))
    return VersionDiff(basics, settings, assignments)
