"""The one policy-resolution engine: what must a device apply?

Pure: no Django, no database, no I/O. ``resolve()`` takes the facts about one device, the endpoint-security
policies that exist (flat values, see the shared contract) and the setting catalog, and decides

* which policies target the device (device groups, exclude wins; assignment filters only for Intune devices,
  because devices managed by Microsoft Defender for Endpoint ignore filters),
* which of them apply (management channel, platform/OS, profile and per-setting MDE-channel support),
* per setting: apply, merge (exclusion lists - on macOS and Linux the exclusion objects of the Antivirus,
  Antivirus exclusions and Global Exclusions profiles -, ASR per-rule exclusions, firewall rules by Name, ASR
  rules per rule) or conflict (two policies, two different values: nothing applied),
* the ``desired`` flat values the device's agent must enforce.

The impact preview, the device check-in and the API all call this module, so it is the only place these
rules live. ``preview()`` aggregates ``resolve()`` over many devices.

Statuses per (policy, setting) here are ``apply`` | ``conflict`` | ``not_applicable``; "apply" becomes
``pending`` until the agent reports ``succeeded`` or ``error``. ``worst_status()`` rolls statuses up for
reports.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from policies.catalog import Catalog, SettingDef

__all__ = [
    "CHANNELS",
    "DEVICE_OSES",
    "PLATFORMS",
    "REPORT_STATUS_ORDER",
    "STATUS_APPLY",
    "STATUS_CONFLICT",
    "STATUS_NOT_APPLICABLE",
    "STATUS_NOT_TARGETED",
    "ConflictImpact",
    "DeviceFacts",
    "ImpactPreview",
    "MergeImpact",
    "PolicyImpact",
    "PolicyInput",
    "PolicyOutcome",
    "Resolution",
    "SettingOutcome",
    "desired_fingerprint",
    "preview",
    "resolve",
    "worst_status",
]

# ---------------------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------------------

CHANNELS: tuple[str, ...] = ("mde", "intune", "configmgr", "none")
DEVICE_OSES: tuple[str, ...] = ("windows", "windows_server", "macos", "linux")
PLATFORMS: tuple[str, ...] = ("windows", "macos", "linux")
FILTER_MODES: tuple[str, ...] = ("include", "exclude")

#: Which device operating systems a policy platform covers.
PLATFORM_OSES: dict[str, frozenset[str]] = {
    "windows": frozenset({"windows", "windows_server"}),
    "macos": frozenset({"macos"}),
    "linux": frozenset({"linux"}),
}
PLATFORM_LABELS: dict[str, str] = {
    "windows": "Windows 10, Windows 11, and Windows Server",
    "macos": "macOS",
    "linux": "Linux",
}
OS_LABELS: dict[str, str] = {
    "windows": "Windows",
    "windows_server": "Windows Server",
    "macos": "macOS",
    "linux": "Linux",
}
CHANNEL_LABELS: dict[str, str] = {
    "mde": "Microsoft Defender for Endpoint security settings management",
    "intune": "Microsoft Intune (MDM enrollment)",
    "configmgr": "Configuration Manager",
    "none": "not managed",
}

# Per (policy, setting) statuses produced by resolve().
STATUS_APPLY = "apply"
STATUS_CONFLICT = "conflict"
STATUS_NOT_APPLICABLE = "not_applicable"
# Policy-level only: the assignment does not reach the device.
STATUS_NOT_TARGETED = "not_targeted"

#: Report statuses, worst first. "apply" (decided, not yet reported) counts as "pending".
REPORT_STATUS_ORDER: tuple[str, ...] = ("error", "conflict", "pending", "succeeded", "not_applicable")
_REPORT_RANK = {status: rank for rank, status in enumerate(REPORT_STATUS_ORDER)}
_REPORT_RANK[STATUS_APPLY] = _REPORT_RANK["pending"]

# Resolution-level roll-up order, worst first.
_RESOLVE_RANK = {STATUS_CONFLICT: 0, STATUS_APPLY: 1, STATUS_NOT_APPLICABLE: 2}

_LIST_TYPES = frozenset({"string_collection", "choice_collection"})

# Setting kinds (how values from several policies combine).
_KIND_SCALAR = "scalar"  # one value; different values -> conflict
_KIND_ASR_RULE = "asr_rule"  # one ASR rule = one key; same mode fine, different modes -> conflict
_KIND_UNION = "union"  # ordered union of list elements (exclusions, per-rule exclusions)
_KIND_KEYED = "keyed"  # group collection of dicts keyed by the child "<key>_name" (firewall rules)


def worst_status(statuses: Iterable[str], default: str = "not_applicable") -> str:
    """Roll up report statuses: error > conflict > pending > succeeded > not_applicable (worst wins).

    ``apply`` (decided by the engine, not yet reported by the device) counts as ``pending``. An empty input
    returns ``default``. Unknown statuses raise ``ValueError``.
    """
    worst: str | None = None
    for status in statuses:
        if status not in _REPORT_RANK:
            raise ValueError(f"Unknown status {status!r}; expected one of {sorted(_REPORT_RANK)}")
        normalised = "pending" if status == STATUS_APPLY else status
        if worst is None or _REPORT_RANK[normalised] < _REPORT_RANK[worst]:
            worst = normalised
    return default if worst is None else worst


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFacts:
    device_id: str
    os: str  # "windows" | "windows_server" | "macos" | "linux"
    channel: str  # who delivers endpoint-security policy: "mde" | "intune" | "configmgr" | "none"
    group_ids: frozenset[int]  # device groups only
    filter_matches: Mapping[int, bool] = field(default_factory=dict)  # filter id -> device matches it


@dataclass(frozen=True)
class PolicyInput:
    id: int
    name: str
    profile: str
    platform: str  # "windows" | "macos" | "linux"
    values: Mapping[str, object]  # flat values (contract)
    include_groups: frozenset[int]
    exclude_groups: frozenset[int]
    # One filter for every included group (the older shape; ``include_filters`` entries win over it).
    filter_id: int | None = None
    filter_mode: str | None = None  # "include" | "exclude"
    filter_name: str | None = None  # how the reasons name the filter (never by its id)
    # Intune: the filter is chosen per group assignment. Included group id -> (filter id, "include" | "exclude").
    include_filters: Mapping[int, tuple[int, str]] = field(default_factory=dict)
    filter_names: Mapping[int, str] = field(default_factory=dict)  # filter id -> its name, for the reasons

    def row_filters(self) -> dict[int, tuple[int, str]]:
        """Included group id -> (filter id, mode), for the included groups whose assignment has a filter."""
        rows: dict[int, tuple[int, str]] = {}
        if self.filter_id is not None and self.filter_mode is not None:
            rows = dict.fromkeys(self.include_groups, (self.filter_id, self.filter_mode))
        rows.update({g: f for g, f in self.include_filters.items() if g in self.include_groups})
        return rows


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyOutcome:
    """What happens to one policy on one device.

    ``status``: ``not_targeted`` (the assignment doesn't reach the device), ``not_applicable`` (targeted but
    the device can't or won't process it, or none of its settings apply), ``conflict`` (at least one of its
    settings conflicts with another policy) or ``apply``.
    """

    policy_id: int
    name: str
    profile: str
    targeted: bool
    applicable: bool
    status: str
    reason: str
    filter_ignored: bool = False  # the policy has an assignment filter the device ignores (MDE channel)


@dataclass(frozen=True)
class SettingOutcome:
    """The decision for one setting key on one device.

    ``value`` is what the device applies (None for conflict / not applicable). ``sources`` are the ids of
    the policies that configure the key and reach the device (sorted). ``merged`` is True when the value is
    the combination of two or more policies' values. ``conflicting_values`` maps policy id -> its value when
    the status is ``conflict``.

    Firewall rules are the one partial case: the collection is keyed by rule Name, so a Name defined
    differently by two policies is a conflict for that rule only (``conflicting_items`` holds the Names,
    ``conflicting_values`` each involved policy's conflicting rules) while the other rules still apply and
    are in ``value`` and ``desired``.
    """

    key: str
    value: object
    status: str
    sources: tuple[int, ...]
    merged: bool
    reason: str
    conflicting_values: dict[int, object] = field(default_factory=dict)
    conflicting_items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resolution:
    device_id: str
    policies: dict[int, PolicyOutcome]  # every policy given, by id
    settings: dict[str, SettingOutcome]  # every key configured by a targeted policy
    per_policy_settings: dict[int, dict[str, str]]  # targeted policy id -> setting key -> status
    desired: dict[str, object]  # setting key -> value to apply (flat values)
    channel: str = ""

    @property
    def conflicts(self) -> dict[str, SettingOutcome]:
        return {k: s for k, s in self.settings.items() if s.status == STATUS_CONFLICT}

    @property
    def targeted_policy_ids(self) -> tuple[int, ...]:
        return tuple(pid for pid, outcome in self.policies.items() if outcome.targeted)


def desired_fingerprint(resolution: Resolution) -> str:
    """Stable sha256 hex digest of ``resolution.desired`` (key order independent) for "nothing changed"."""
    payload = json.dumps(
        resolution.desired, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    return repr(value)


# ---------------------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gate:
    targeted: bool
    applicable: bool
    reason: str
    filter_ignored: bool


def resolve(device: DeviceFacts, policies: Sequence[PolicyInput], catalog: Catalog) -> Resolution:
    """Decide, for one device, the status of every policy and setting and the ``desired`` values."""
    _validate_device(device)
    ordered = sorted(policies, key=lambda p: p.id)
    seen_ids: set[int] = set()
    for policy in ordered:
        if policy.id in seen_ids:
            raise ValueError(f"Policy id {policy.id} was given twice")
        seen_ids.add(policy.id)

    gates: dict[int, _Gate] = {p.id: _gate(device, p, catalog) for p in ordered}
    by_id = {p.id: p for p in ordered}

    # key -> [(policy, value)] from applicable policies; key -> [(policy, reason)] not applicable.
    contributions: dict[str, list[tuple[PolicyInput, object]]] = defaultdict(list)
    not_applicable: dict[str, list[tuple[PolicyInput, str]]] = defaultdict(list)
    per_policy: dict[int, dict[str, str]] = {}

    for policy in ordered:
        gate = gates[policy.id]
        if not gate.targeted:
            continue
        per_policy[policy.id] = {}
        for key in sorted(policy.values):
            if not gate.applicable:
                not_applicable[key].append((policy, gate.reason))
                continue
            reason = _setting_not_applicable_reason(device, key, catalog)
            if reason:
                not_applicable[key].append((policy, reason))
            else:
                contributions[key].append((policy, policy.values[key]))

    settings: dict[str, SettingOutcome] = {}
    for key in sorted(set(contributions) | set(not_applicable)):
        if key in contributions:
            outcome, statuses = _combine(device, key, contributions[key], catalog)
        else:
            entries = not_applicable[key]
            outcome = SettingOutcome(
                key=key,
                value=None,
                status=STATUS_NOT_APPLICABLE,
                sources=tuple(p.id for p, _ in entries),
                merged=False,
                reason=_unique_join(reason for _, reason in entries),
            )
            statuses = {}
        settings[key] = outcome
        for policy, _ in contributions.get(key, ()):
            per_policy[policy.id][key] = statuses[policy.id]
        for policy, _ in not_applicable.get(key, ()):
            per_policy[policy.id][key] = STATUS_NOT_APPLICABLE

    per_policy = {pid: dict(sorted(statuses.items())) for pid, statuses in per_policy.items()}

    policy_outcomes: dict[int, PolicyOutcome] = {}
    for pid, gate in gates.items():
        policy = by_id[pid]
        if not gate.targeted:
            status, reason = STATUS_NOT_TARGETED, gate.reason
        elif not gate.applicable:
            status, reason = STATUS_NOT_APPLICABLE, gate.reason
        else:
            status, reason = _roll_up(policy, per_policy[pid], settings)
        policy_outcomes[pid] = PolicyOutcome(
            policy_id=pid,
            name=policy.name,
            profile=policy.profile,
            targeted=gate.targeted,
            applicable=gate.targeted and gate.applicable,
            status=status,
            reason=reason,
            filter_ignored=gate.filter_ignored,
        )

    desired = {
        key: copy.deepcopy(outcome.value)
        for key, outcome in settings.items()
        if outcome.status == STATUS_APPLY or (outcome.status == STATUS_CONFLICT and outcome.value)
    }
    return Resolution(
        device_id=device.device_id,
        policies=policy_outcomes,
        settings=settings,
        per_policy_settings=per_policy,
        desired=desired,
        channel=device.channel,
    )


def _validate_device(device: DeviceFacts) -> None:
    if device.channel not in CHANNELS:
        raise ValueError(
            f"Unknown channel {device.channel!r} for device {device.device_id}; expected {CHANNELS}"
        )
    if device.os not in DEVICE_OSES:
        raise ValueError(f"Unknown OS {device.os!r} for device {device.device_id}; expected {DEVICE_OSES}")


def _filter_label(policy: PolicyInput, filter_id: int | None = None) -> str:
    name = policy.filter_names.get(filter_id) if filter_id is not None else None
    if name is None and filter_id == policy.filter_id:
        name = policy.filter_name
    return f"assignment filter '{name}'" if name else "its assignment filter"


def _filter_miss(policy: PolicyInput, misses: list[tuple[int, str]]) -> str:
    """Why no assignment of ``policy`` that reaches the device lets it through its filter."""
    sentences = []
    for filter_id, mode in dict.fromkeys(misses):
        if mode == "include":
            sentences.append(
                f"The device doesn't match {_filter_label(policy, filter_id)}, which this policy uses to include "
                "devices."
            )
        else:
            sentences.append(
                f"The device matches {_filter_label(policy, filter_id)}, which this policy uses to exclude devices."
            )
    return " ".join(sentences)


def _label(policy: PolicyInput) -> str:
    """A policy as a person reads it: its name (internal ids never reach the UI)."""
    return f"'{policy.name}'"


def _labels(policies: Iterable[PolicyInput]) -> str:
    names = [_label(p) for p in policies]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _unique_join(reasons: Iterable[str]) -> str:
    out: list[str] = []
    for reason in reasons:
        if reason not in out:
            out.append(reason)
    return " ".join(out)


def _gate(device: DeviceFacts, policy: PolicyInput, catalog: Catalog) -> _Gate:
    """Targeting (groups, filters) and policy-level applicability (channel, platform, profile)."""
    if policy.filter_mode is not None and policy.filter_mode not in FILTER_MODES:
        raise ValueError(f"Policy {policy.id} has unknown filter mode {policy.filter_mode!r}")
    row_filters = policy.row_filters()
    for _filter_id, mode in row_filters.values():
        if mode not in FILTER_MODES:
            raise ValueError(f"Policy {policy.id} has unknown filter mode {mode!r}")

    # 1. Device groups: included and not excluded; exclusion wins.
    if not policy.include_groups:
        return _Gate(False, False, "This policy isn't assigned to any device group yet.", False)
    if not set(device.group_ids) & set(policy.include_groups):
        return _Gate(
            False, False, "The device isn't a member of any group this policy is assigned to.", False
        )
    if set(device.group_ids) & set(policy.exclude_groups):
        return _Gate(
            False,
            False,
            "The device is a member of a group excluded from this policy's assignment; exclusions take "
            "precedence over inclusions.",
            False,
        )

    # 2. Assignment filters, chosen per group assignment: honoured for Intune-enrolled devices only (MDE-managed
    # devices ignore them). The device receives the policy when one assignment that reaches it lets it through:
    # one without a filter, or one whose filter it matches (include mode) or doesn't match (exclude mode).
    filter_ignored = False
    reaching = [row_filters.get(g) for g in sorted(set(device.group_ids) & set(policy.include_groups))]
    if any(f is not None for f in reaching):
        if device.channel == "mde":
            filter_ignored = True
        elif device.channel == "intune":
            misses: list[tuple[int, str]] = []
            for row in reaching:
                if row is None:
                    break
                filter_id, mode = row
                matches = bool(device.filter_matches.get(filter_id, False))
                if matches == (mode == "include"):
                    break
                misses.append(row)
            else:
                return _Gate(False, False, _filter_miss(policy, misses), False)

    # 3. Management channel.
    if device.channel == "configmgr":
        return _Gate(
            True,
            False,
            "Configuration Manager is the authority for this device's security settings, so it doesn't "
            "process endpoint security policies from this console.",
            filter_ignored,
        )
    if device.channel == "none":
        return _Gate(
            True,
            False,
            "The device isn't managed by Microsoft Defender for Endpoint security settings management or by "
            "Intune, so it can't receive this policy.",
            filter_ignored,
        )

    # 4. Platform and profile.
    if policy.platform not in PLATFORM_OSES:
        return _Gate(True, False, f"The policy platform '{policy.platform}' isn't supported.", filter_ignored)
    if device.os not in PLATFORM_OSES[policy.platform]:
        return _Gate(
            True,
            False,
            f"This policy is for {PLATFORM_LABELS[policy.platform]} devices and this device runs "
            f"{OS_LABELS[device.os]}.",
            filter_ignored,
        )
    try:
        profile = catalog.profile(policy.profile)
    except KeyError:
        return _Gate(
            True,
            False,
            f"The profile '{policy.profile}' is unknown, so this policy can't be delivered.",
            filter_ignored,
        )
    if policy.platform not in profile.platforms:
        return _Gate(
            True,
            False,
            f"The '{profile.name}' profile isn't available for the {PLATFORM_LABELS[policy.platform]} "
            "platform.",
            filter_ignored,
        )
    if device.channel == "mde" and not profile.mde_supported:
        return _Gate(
            True,
            False,
            f"The '{profile.name}' profile only applies to devices enrolled in Intune; devices managed by "
            "Microsoft Defender for Endpoint security settings management don't process it.",
            filter_ignored,
        )
    return _Gate(True, True, "", filter_ignored)


def _setting_def(key: str, catalog: Catalog) -> SettingDef | None:
    try:
        return catalog.setting(key)
    except KeyError:
        return None


def _display(key: str, catalog: Catalog) -> str:
    sdef = _setting_def(key, catalog)
    name = (sdef.display_name or "").strip() if sdef is not None else ""
    return name or key


def _setting_not_applicable_reason(device: DeviceFacts, key: str, catalog: Catalog) -> str:
    sdef = _setting_def(key, catalog)
    if sdef is None:
        return f"The setting '{key}' isn't in the settings catalog, so it can't be sent to devices."
    name = (sdef.display_name or "").strip() or key
    if device.channel == "mde" and not sdef.mde_supported:
        return (
            f"'{name}' isn't supported for devices managed by Microsoft Defender for Endpoint security "
            "settings management; only devices enrolled in Intune apply it."
        )
    technologies = tuple(getattr(sdef, "technologies", ()) or ())
    if device.channel == "intune" and technologies and "mdm" not in technologies:
        return f"'{name}' can't be delivered to devices enrolled in Intune (MDM)."
    return ""


def _kind(sdef: SettingDef | None, catalog: Catalog) -> str:
    if sdef is None:
        return _KIND_SCALAR
    if sdef.type == "group_collection" and getattr(sdef, "managed_key_path", None):
        # macOS / Linux lists of objects: exclusions merge into a superset across policies; threat type
        # settings and device tags conflict when two policies give different lists.
        return _KIND_UNION if sdef.merges else _KIND_SCALAR
    if sdef.type == "group_collection":
        return _KIND_KEYED
    if sdef.asr_guid:
        return _KIND_ASR_RULE
    if sdef.type in _LIST_TYPES:
        if sdef.merges:
            return _KIND_UNION
        if sdef.parent_id:
            parent = _setting_def(sdef.parent_id, catalog)
            if parent is not None and parent.asr_guid:  # ASR per-rule exclusions of one rule union
                return _KIND_UNION
    return _KIND_SCALAR


def _combine(
    device: DeviceFacts, key: str, entries: list[tuple[PolicyInput, object]], catalog: Catalog
) -> tuple[SettingOutcome, dict[int, str]]:
    """Combine the values of ``key`` from applicable policies (entries sorted by policy id)."""
    sdef = _setting_def(key, catalog)
    kind = _kind(sdef, catalog)
    if kind == _KIND_UNION:
        return _combine_union(device, key, entries, sdef)
    if kind == _KIND_KEYED:
        return _combine_keyed(key, entries, catalog)
    return _combine_scalar(key, entries, sdef, case_insensitive=kind == _KIND_ASR_RULE)


def _sources(entries: Sequence[tuple[PolicyInput, object]]) -> tuple[int, ...]:
    return tuple(sorted({p.id for p, _ in entries}))


def _combine_scalar(
    key: str, entries: list[tuple[PolicyInput, object]], sdef: SettingDef | None, case_insensitive: bool
) -> tuple[SettingOutcome, dict[int, str]]:
    sources = _sources(entries)
    distinct = {_canonical_key(value, case_insensitive) for _, value in entries}
    if len(distinct) > 1:
        policies = [p for p, _ in entries]
        described = "; ".join(f"{_label(p)} sets {_describe(sdef, v)}" for p, v in entries)
        what = (
            "this attack surface reduction rule to different modes"
            if sdef and sdef.asr_guid
            else "different values for this setting"
        )
        outcome = SettingOutcome(
            key=key,
            value=None,
            status=STATUS_CONFLICT,
            sources=sources,
            merged=False,
            reason=(
                f"Conflict: {_labels(policies)} set {what} ({described}), so none of them is applied. "
                "Change the policies so that only one value is configured."
            ),
            conflicting_values={p.id: copy.deepcopy(v) for p, v in entries},
        )
        return outcome, dict.fromkeys(sources, STATUS_CONFLICT)

    first_policy, first_value = entries[0]
    if len(entries) == 1:
        reason = f"Configured by {_label(first_policy)}."
    else:
        reason = f"{_labels(p for p, _ in entries)} set the same value, so there's no conflict."
    outcome = SettingOutcome(
        key=key,
        value=copy.deepcopy(first_value),
        status=STATUS_APPLY,
        sources=sources,
        merged=False,
        reason=reason,
    )
    return outcome, dict.fromkeys(sources, STATUS_APPLY)


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _combine_union(
    device: DeviceFacts, key: str, entries: list[tuple[PolicyInput, object]], sdef: SettingDef | None
) -> tuple[SettingOutcome, dict[int, str]]:
    """Ordered union: by policy id, then list order; duplicates dropped keeping the first spelling.

    Strings compare case-insensitively on Windows (paths, extensions and process names are case-insensitive
    there); on macOS and Linux file systems are case-sensitive, so strings compare exactly.
    """
    fold = device.os in PLATFORM_OSES["windows"] and (sdef is None or sdef.type == "string_collection")
    merged: list[object] = []
    seen: set[str] = set()
    for _, value in entries:
        for element in _as_list(value):
            marker = _element_key(element, fold)
            if marker not in seen:
                seen.add(marker)
                merged.append(copy.deepcopy(element))
    sources = _sources(entries)
    contributing = [p for p, v in entries if _as_list(v)]
    if len(sources) == 1:
        reason = f"Configured by {_label(entries[0][0])}."
    else:
        reason = (
            f"Merged: {_labels(p for p, _ in entries)} configure this list, and the device applies the "
            f"combined list of {len(merged)} entr{'y' if len(merged) == 1 else 'ies'}."
        )
    outcome = SettingOutcome(
        key=key,
        value=merged,
        status=STATUS_APPLY,
        sources=sources,
        merged=len(contributing) > 1,
        reason=reason,
    )
    return outcome, dict.fromkeys(sources, STATUS_APPLY)


def _element_key(element: object, fold: bool) -> str:
    if fold and isinstance(element, str):
        return "s:" + element.casefold()
    return "j:" + _canonical_key(element, False)


def _combine_keyed(
    key: str, entries: list[tuple[PolicyInput, object]], catalog: Catalog
) -> tuple[SettingOutcome, dict[int, str]]:
    """Group collection keyed by the "<key>_name" child (firewall rules): union of rules by Name.

    The same Name with the same definition from several policies is one rule; the same Name with different
    definitions is a conflict for that rule (named after every involved policy) and the rule isn't applied.
    """
    name_key = f"{key}_name"
    # rule identity -> list of (policy, rule, canonical definition), in policy id then list order
    groups: dict[str, list[tuple[PolicyInput, object, str]]] = {}
    order: list[str] = []
    for policy, value in entries:
        for rule in _as_list(value):
            identity, definition = _rule_identity(rule, name_key)
            if identity not in groups:
                groups[identity] = []
                order.append(identity)
            groups[identity].append((policy, rule, definition))

    applied: list[object] = []
    conflict_names: list[str] = []
    conflict_policies: set[int] = set()
    conflicting_values: dict[int, list[object]] = defaultdict(list)
    reasons: list[str] = []
    for identity in order:
        group = groups[identity]
        if len({definition for _, _, definition in group}) == 1:
            applied.append(copy.deepcopy(group[0][1]))
            continue
        first_rule = group[0][1]
        name = first_rule.get(name_key) if isinstance(first_rule, Mapping) else None
        display = str(name) if name is not None else identity
        conflict_names.append(display)
        involved = sorted({p.id: p for p, _, _ in group}.values(), key=lambda p: p.id)
        conflict_policies.update(p.id for p in involved)
        for policy, rule, _ in group:
            conflicting_values[policy.id].append(copy.deepcopy(rule))
        reasons.append(
            f"Conflict: firewall rule '{display}' is defined differently by {_labels(involved)}, so that "
            "rule isn't applied."
        )

    sources = _sources(entries)
    contributing = {p.id for p, v in entries if _as_list(v)}
    merged = len(contributing) > 1
    if conflict_names:
        if applied:
            reasons.append(f"The other {len(applied)} rule{'s' if len(applied) != 1 else ''} still apply.")
        outcome = SettingOutcome(
            key=key,
            value=applied,
            status=STATUS_CONFLICT,
            sources=sources,
            merged=merged,
            reason=" ".join(reasons),
            conflicting_values=dict(sorted(conflicting_values.items())),
            conflicting_items=tuple(conflict_names),
        )
        statuses = {pid: STATUS_CONFLICT if pid in conflict_policies else STATUS_APPLY for pid in sources}
        return outcome, statuses

    if len(sources) == 1:
        reason = f"Configured by {_label(entries[0][0])}."
    else:
        reason = (
            f"Merged: the firewall rules of {_labels(p for p, _ in entries)} are combined by rule name "
            f"({len(applied)} rule{'s' if len(applied) != 1 else ''})."
        )
    outcome = SettingOutcome(
        key=key, value=applied, status=STATUS_APPLY, sources=sources, merged=merged, reason=reason
    )
    return outcome, dict.fromkeys(sources, STATUS_APPLY)


def _rule_identity(rule: object, name_key: str) -> tuple[str, str]:
    """(identity, canonical definition) of one group-collection entry; Names compare case-insensitively."""
    if isinstance(rule, Mapping):
        name = rule.get(name_key)
        if isinstance(name, str) and name.strip():
            normalised = dict(rule)
            normalised[name_key] = name.strip().casefold()
            return "name:" + name.strip().casefold(), _canonical_key(normalised, False)
    definition = _canonical_key(rule, False)
    return "anon:" + definition, definition


def _canonical(value: object, case_insensitive: bool) -> object:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, case_insensitive) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_canonical(v, case_insensitive) for v in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=_json_default))
    if case_insensitive and isinstance(value, str):
        return value.casefold()
    return value


def _canonical_key(value: object, case_insensitive: bool) -> str:
    """Equality key for "same value?": type-aware (1 != "1"), list order and key order ignored."""
    return json.dumps(
        _canonical(value, case_insensitive), sort_keys=True, separators=(",", ":"), default=_json_default
    )


def _describe(sdef: SettingDef | None, value: object) -> str:
    if sdef is not None:
        for option in sdef.options:
            if option.value == value or (
                isinstance(option.value, str)
                and isinstance(value, str)
                and option.value.lower() == value.lower()
            ):
                return f"'{option.label}'"
    return json.dumps(value, default=_json_default)


def _roll_up(
    policy: PolicyInput, statuses: Mapping[str, str], settings: Mapping[str, SettingOutcome]
) -> tuple[str, str]:
    if not statuses:
        return STATUS_APPLY, "The policy applies; it doesn't configure any settings."
    worst = min(statuses.values(), key=lambda s: _RESOLVE_RANK[s])
    if worst == STATUS_CONFLICT:
        keys = [k for k, s in statuses.items() if s == STATUS_CONFLICT]
        return (
            STATUS_CONFLICT,
            f"{len(keys)} setting{'s' if len(keys) != 1 else ''} of this policy conflict with other policies "
            "on this device.",
        )
    if worst == STATUS_NOT_APPLICABLE:
        return (
            STATUS_NOT_APPLICABLE,
            "None of the settings this policy configures apply to this device. "
            + _unique_join(settings[k].reason for k in statuses),
        )
    skipped = sum(1 for s in statuses.values() if s == STATUS_NOT_APPLICABLE)
    if skipped:
        return (
            STATUS_APPLY,
            f"The policy applies; {skipped} of its settings don't apply to this device.",
        )
    return STATUS_APPLY, "The policy applies."


# ---------------------------------------------------------------------------------------------------------
# Impact preview
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyImpact:
    policy_id: int
    name: str
    targeted: dict[str, int]  # channel -> devices the assignment reaches
    applies: dict[str, int]  # channel -> devices that process the policy (status apply or conflict)
    not_applicable: dict[str, int]  # policy-level reason -> devices
    conflict_devices: int  # devices where at least one of its settings conflicts
    filter_ignored_devices: int  # MDE devices that ignore the policy's assignment filter


@dataclass(frozen=True)
class ConflictImpact:
    setting_key: str
    display_name: str
    policy_ids: tuple[int, ...]
    device_ids: tuple[str, ...]
    items: tuple[str, ...] = ()  # firewall rule names, when the conflict is per rule


@dataclass(frozen=True)
class MergeImpact:
    setting_key: str
    display_name: str
    policy_ids: tuple[int, ...]
    device_ids: tuple[str, ...]


@dataclass(frozen=True)
class ImpactPreview:
    device_count: int
    devices_by_channel: dict[str, int]  # all devices given, by channel
    policies: dict[int, PolicyImpact]
    not_applicable: dict[str, tuple[str, ...]]  # reason (policy- or setting-level) -> device ids
    conflicts: tuple[ConflictImpact, ...]
    merges: tuple[MergeImpact, ...]
    resolutions: dict[str, Resolution]


def preview(
    devices: Iterable[DeviceFacts], policies: Sequence[PolicyInput], catalog: Catalog
) -> ImpactPreview:
    """Aggregate ``resolve()`` over many devices for the impact preview (independent of input order)."""
    ordered_policies = sorted(policies, key=lambda p: p.id)
    ordered_devices = sorted(devices, key=lambda d: d.device_id)
    by_channel = dict.fromkeys(CHANNELS, 0)
    targeted = {p.id: dict.fromkeys(CHANNELS, 0) for p in ordered_policies}
    applies = {p.id: dict.fromkeys(CHANNELS, 0) for p in ordered_policies}
    policy_na: dict[int, dict[str, int]] = {p.id: {} for p in ordered_policies}
    conflict_devices = dict.fromkeys(targeted, 0)
    filter_ignored = dict.fromkeys(targeted, 0)
    na_devices: dict[str, set[str]] = defaultdict(set)
    conflicts: dict[tuple[str, tuple[int, ...], tuple[str, ...]], set[str]] = defaultdict(set)
    merges: dict[tuple[str, tuple[int, ...]], set[str]] = defaultdict(set)
    resolutions: dict[str, Resolution] = {}

    for device in ordered_devices:
        if device.device_id in resolutions:
            raise ValueError(f"Device {device.device_id} was given twice")
        resolution = resolve(device, ordered_policies, catalog)
        resolutions[device.device_id] = resolution
        by_channel[device.channel] += 1
        for pid, outcome in resolution.policies.items():
            if not outcome.targeted:
                continue
            targeted[pid][device.channel] += 1
            if outcome.filter_ignored:
                filter_ignored[pid] += 1
            if outcome.status in (STATUS_APPLY, STATUS_CONFLICT):
                applies[pid][device.channel] += 1
            else:
                policy_na[pid][outcome.reason] = policy_na[pid].get(outcome.reason, 0) + 1
                na_devices[outcome.reason].add(device.device_id)
            if outcome.status == STATUS_CONFLICT:
                conflict_devices[pid] += 1
        for key, setting in resolution.settings.items():
            if setting.status == STATUS_CONFLICT:
                involved = tuple(sorted(setting.conflicting_values))
                conflicts[(key, involved, setting.conflicting_items)].add(device.device_id)
            elif setting.status == STATUS_NOT_APPLICABLE and any(
                resolution.policies[pid].applicable for pid in setting.sources
            ):  # a setting-level reason (policy-level reasons are counted above)
                na_devices[_setting_not_applicable_reason(device, key, catalog)].add(device.device_id)
            if setting.merged:
                merges[(key, setting.sources)].add(device.device_id)

    names = {p.id: p.name for p in ordered_policies}
    return ImpactPreview(
        device_count=len(ordered_devices),
        devices_by_channel=by_channel,
        policies={
            pid: PolicyImpact(
                policy_id=pid,
                name=names[pid],
                targeted=targeted[pid],
                applies=applies[pid],
                not_applicable=dict(sorted(policy_na[pid].items())),
                conflict_devices=conflict_devices[pid],
                filter_ignored_devices=filter_ignored[pid],
            )
            for pid in targeted
        },
        not_applicable={reason: tuple(sorted(ids)) for reason, ids in sorted(na_devices.items())},
        conflicts=tuple(
            ConflictImpact(
                setting_key=key,
                display_name=_display(key, catalog),
                policy_ids=pids,
                device_ids=tuple(sorted(ids)),
                items=items,
            )
            for (key, pids, items), ids in sorted(conflicts.items())
        ),
        merges=tuple(
            MergeImpact(
                setting_key=key,
                display_name=_display(key, catalog),
                policy_ids=pids,
                device_ids=tuple(sorted(ids)),
            )
            for (key, pids), ids in sorted(merges.items())
        ),
        resolutions=resolutions,
    )
