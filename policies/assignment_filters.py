"""Intune assignment filters (Tenant administration › Filters): the one place that writes them.

A filter has a name, a description, a platform and a rule in Intune's filter syntax (``devices.rules`` parses it:
``parse_filter_rule``). Policies choose a filter per group assignment (``PolicyAssignment.filter``/``filter_mode``);
Intune-enrolled devices honour it, devices managed by Defender for Endpoint security settings management ignore it.

Every write is audited with before/after. Changing the rule or the platform of a filter in use re-marks the devices of
the policies that use it Pending (``policy_changed``, kind ``assigned``), because which of them receive the policy
may have changed. A filter in use can't be deleted (Intune refuses too): the refusal lists the policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from console import audit, text
from devices.models import Device
from devices.rules import FILTER_PROPERTIES, RuleSyntaxError, parse_filter_rule
from policies import engine
from policies.exports import Problem
from policies.models import AssignmentFilter, Policy, PolicyAssignment, PolicyPlatform
from policies.services import DESCRIPTION_MAX, NAME_MAX, PolicyError, targeted_device_ids
from policies.signals import policy_changed

PREVIEW_LIMIT = 50  # Intune's "Preview devices" lists a page of matching devices
SUPPORTED_PROPERTIES = tuple(f"device.{name}" for name in FILTER_PROPERTIES)
OPERATORS = ("-eq", "-ne", "-startsWith", "-endsWith", "-contains", "-notContains", "-in", "-notIn", "-match",
             "-notMatch")  # fmt: skip


@dataclass(frozen=True)
class RuleProblem:
    """A rule that doesn't parse: the message and the 1-based column it points at."""

    message: str
    column: int


def check_rule(rule: object) -> RuleProblem | None:
    if not isinstance(rule, str) or not rule.strip():
        return RuleProblem('Enter a rule, for example (device.deviceName -startsWith "CONTOSO").', 1)
    try:
        parse_filter_rule(rule)
    except RuleSyntaxError as exc:
        return RuleProblem(f"Column {exc.column}: {exc.reason}", exc.column)
    return None


def _state(assignment_filter: AssignmentFilter) -> dict[str, Any]:
    return {
        "name": assignment_filter.name,
        "description": assignment_filter.description,
        "platform": assignment_filter.platform,
        "rule": assignment_filter.rule,
    }


def policies_using(assignment_filter: AssignmentFilter) -> list[Policy]:
    return list(
        Policy.objects.filter(assignments__filter=assignment_filter).distinct().order_by("name", "pk")
    )


def check(
    *,
    name: object,
    description: object,
    platform: object,
    rule: object,
    instance: AssignmentFilter | None = None,
) -> list[Problem]:
    """Every problem with these values (nothing is saved)."""
    problems: list[Problem] = []
    clean_name = " ".join(str(name or "").split())
    if not clean_name:
        problems.append(Problem("name", "Enter a name for the filter."))
    elif len(clean_name) > NAME_MAX:
        problems.append(Problem("name", f"The name can be at most {NAME_MAX} characters long."))
    else:
        try:
            text.validate_name(clean_name)
        except Exception as exc:
            problems.append(Problem("name", " ".join(getattr(exc, "messages", [str(exc)]))))
        taken = AssignmentFilter.objects.filter(name__iexact=clean_name)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            problems.append(
                Problem("name", f"A filter named “{clean_name}” already exists; choose another name.")
            )
    if len(str(description or "")) > DESCRIPTION_MAX:
        problems.append(
            Problem("description", f"The description can be at most {DESCRIPTION_MAX} characters.")
        )
    if platform not in PolicyPlatform.values:
        problems.append(Problem("platform", "Choose a platform."))
    elif instance is not None and platform != instance.platform:
        other = [p.name for p in policies_using(instance) if p.platform != platform]
        if other:
            problems.append(
                Problem(
                    "platform",
                    "The platform can't change while policies for another platform use this filter: "
                    + ", ".join(f"“{n}”" for n in other)
                    + ".",
                )
            )
    problem = check_rule(rule)
    if problem is not None:
        problems.append(Problem("rule", problem.message))
    return problems


def save(
    instance: AssignmentFilter | None,
    *,
    name: object,
    description: object,
    platform: object,
    rule: object,
    actor: audit.Actor | None = None,
) -> AssignmentFilter:
    """Create (``instance`` None) or update a filter; PolicyError lists the problems and nothing is saved."""
    with transaction.atomic():
        if instance is not None:
            instance = AssignmentFilter.objects.select_for_update().get(pk=instance.pk)
        problems = check(name=name, description=description, platform=platform, rule=rule, instance=instance)
        if problems:
            raise PolicyError(problems)
        before = _state(instance) if instance is not None else None
        target = instance or AssignmentFilter()
        target.name = " ".join(str(name).split())
        target.description = str(description or "").strip()
        target.platform = str(platform)
        target.rule = str(rule).strip()
        target.save()
        if before is None:
            audit.record("filter.create", target, before=None, after=_state(target), actor=actor)
            return target
        old, new = audit.changed(before, _state(target))
        if not new:
            return target
        audit.record("filter.update", target, before=old, after=new, actor=actor)
        if "rule" in new or "platform" in new:
            for policy in policies_using(target):
                include = PolicyAssignment.objects.filter(policy=policy, intent="include")
                exclude = PolicyAssignment.objects.filter(policy=policy, intent="exclude")
                devices = targeted_device_ids(
                    include.values_list("group_id", flat=True), exclude.values_list("group_id", flat=True)
                )
                policy_changed.send(sender=Policy, policy=policy, kind="assigned", device_ids=devices)
        return target


def delete(assignment_filter: AssignmentFilter, actor: audit.Actor | None = None) -> None:
    """Delete a filter no policy uses; PolicyError names the policies that use it."""
    with transaction.atomic():
        locked = AssignmentFilter.objects.select_for_update().get(pk=assignment_filter.pk)
        using = policies_using(locked)
        if using:
            names = ", ".join(f"“{p.name}”" for p in using)
            raise PolicyError(
                [
                    Problem(
                        "filter",
                        f"“{locked.name}” can't be deleted: {len(using)} "
                        f"polic{'y uses' if len(using) == 1 else 'ies use'} it ({names}). Remove the filter from "
                        "their assignments first.",
                    )
                ]
            )
        audit.record("filter.delete", locked, before=_state(locked), after=None, actor=actor)
        locked.delete()


@dataclass(frozen=True)
class PreviewDevice:
    device: Device
    channel: str  # the engine's vocabulary: "intune" honours the filter, "mde" ignores it

    @property
    def honours_filter(self) -> bool:
        return self.channel == "intune"


@dataclass(frozen=True)
class Preview:
    devices: list[PreviewDevice]  # the first PREVIEW_LIMIT matching devices, by name
    matched: int  # every matching device of the platform
    examined: int  # the devices of the platform


_PREVIEW_FIELDS = (
    "id", "display_name", "os", "os_version", "os_edition", "join_type", "intune_enrolled", "managed_by",
    "management_type",
)  # fmt: skip


def preview(rule: str, platform: str, limit: int = PREVIEW_LIMIT) -> Preview:
    """The devices of ``platform`` the rule matches (raises RuleSyntaxError for a rule that doesn't parse)."""
    parsed = parse_filter_rule(rule)
    oses = engine.PLATFORM_OSES.get(platform, frozenset())
    listed: list[PreviewDevice] = []
    matched = examined = 0
    rows = Device.objects.filter(os__in=sorted(oses)).only(*_PREVIEW_FIELDS).order_by("display_name", "pk")
    for device in rows.iterator(chunk_size=2000):
        examined += 1
        if not parsed.matches(device.filter_properties()):
            continue
        matched += 1
        if len(listed) < limit:
            listed.append(PreviewDevice(device, _channel(device)))
    return Preview(listed, matched, examined)


def _channel(device: Device) -> str:
    # The same decision as the check-in's (devices.channel.channel_of), without importing the check-in pipeline.
    if device.intune_enrolled or device.managed_by in ("intune", "co_managed"):
        return "intune"
    if device.is_mde_managed:
        return "mde"
    if device.managed_by == "configmgr":
        return "configmgr"
    return "none"
