"""Impact preview: what a policy would do before it is saved. The decisions come from ``policies.engine.preview``.

Only the devices in the candidate policy's included groups are read, in chunks. Devices whose facts are the same
for every policy involved (OS, channel, the relevant group memberships and filter results) get the same answer
from the engine, so each such class is resolved once through ``engine.preview`` with one representative and the
results are counted for all its members: a fleet of 100,000 devices usually collapses to a few dozen classes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from devices.models import Device, GroupMember
from devices.rules import RuleSyntaxError, parse_filter_rule, properties_used
from policies import engine
from policies.catalog import get_catalog
from policies.models import AssignmentFilter, Policy, PolicyAssignment

CHUNK = 2000
DEVICE_LIST_CAP = 50
SAMPLE_CAP = 10
NEW_POLICY_ID = 0  # the id the engine sees for a policy that isn't saved yet

CHANNEL_LABELS = {
    "mde": "Microsoft Defender for Endpoint",
    "intune": "Microsoft Intune",
    "configmgr": "Configuration Manager",
    "none": "Not managed",
}
OS_LABELS = {"windows": "Windows", "windows_server": "Windows Server", "macos": "macOS", "linux": "Linux"}


# --------------------------------------------------------------------------------------------------------------
# engine inputs from the database


def device_channel(device) -> str:
    """Who delivers endpoint security policy to ``device`` (the engine's channel vocabulary)."""
    if device.is_mde_managed:
        return "mde"
    if device.intune_enrolled:
        return "intune"
    if device.managed_by == "configmgr":
        return "configmgr"
    return "none"


def policy_input(
    *,
    policy_id: int,
    name: str,
    profile: str,
    platform: str,
    values: Mapping[str, object],
    include: Iterable[int],
    exclude: Iterable[int],
    filter_id: int | None = None,
    filter_mode: str = "",
    filter_name: str | None = None,
    include_filters: Mapping[int, tuple[int, str]] | None = None,
    filter_names: Mapping[int, str] | None = None,
) -> engine.PolicyInput:
    """The engine's input; ``include_filters``: included group pk -> (filter pk, mode), per group assignment."""
    has_filter = filter_id is not None and filter_mode in ("include", "exclude")
    rows = {g: (f, m) for g, (f, m) in (include_filters or {}).items() if f and m in ("include", "exclude")}
    if rows and filter_names is None:
        filter_names = _filter_names({f for f, _ in rows.values()})
    return engine.PolicyInput(
        id=policy_id,
        name=name,
        profile=profile,
        platform=platform,
        values=dict(values),
        include_groups=frozenset(include),
        exclude_groups=frozenset(exclude),
        filter_id=filter_id if has_filter else None,
        filter_mode=filter_mode if has_filter else None,
        filter_name=(filter_name or _filter_name(filter_id)) if has_filter else None,
        include_filters=rows,
        filter_names=dict(filter_names or {}),
    )


def _filter_names(filter_ids: Iterable[int]) -> dict[int, str]:
    return dict(AssignmentFilter.objects.filter(pk__in=list(filter_ids)).values_list("pk", "name"))


def _filter_name(filter_id: int | None) -> str | None:
    """The filter's name for the engine's reasons (one query, only for a policy that has a filter)."""
    return AssignmentFilter.objects.filter(pk=filter_id).values_list("name", flat=True).first()


def saved_policy_inputs(exclude_ids: Iterable[int] = ()) -> list[engine.PolicyInput]:
    """Every saved policy as the engine sees it (two queries)."""
    groups: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"include": [], "exclude": []})
    filters: dict[int, dict[int, tuple[int, str]]] = defaultdict(dict)
    for policy_id, group_id, intent, filter_id, filter_mode in PolicyAssignment.objects.values_list(
        "policy_id", "group_id", "intent", "filter_id", "filter_mode"
    ):
        groups[policy_id][intent].append(group_id)
        if intent == "include" and filter_id and filter_mode:
            filters[policy_id][group_id] = (filter_id, filter_mode)
    names = _filter_names({f for rows in filters.values() for f, _ in rows.values()}) if filters else {}
    inputs = []
    for policy in Policy.objects.exclude(pk__in=list(exclude_ids)).only(
        "id", "name", "profile", "platform", "values"
    ):
        inputs.append(
            policy_input(
                policy_id=policy.pk,
                name=policy.name,
                profile=policy.profile,
                platform=policy.platform,
                values=policy.values,
                include=groups[policy.pk]["include"],
                exclude=groups[policy.pk]["exclude"],
                include_filters=filters.get(policy.pk, {}),
                filter_names=names,
            )
        )
    return inputs


def _filter_rules(filter_ids: Iterable[int]) -> dict[int, object]:
    from .models import AssignmentFilter

    rules: dict[int, object] = {}
    for assignment_filter in AssignmentFilter.objects.filter(pk__in=list(filter_ids)):
        try:
            rules[assignment_filter.pk] = parse_filter_rule(assignment_filter.rule)
        except RuleSyntaxError:
            rules[assignment_filter.pk] = None  # an invalid filter matches no device
    return rules


_DEVICE_FIELDS = ("id", "display_name", "os", "managed_by", "management_type", "intune_enrolled")
_FILTER_FIELDS = (
    "os_version",
    "os_edition",
    "join_type",
)  # with display_name and os: Device.filter_properties()


def device_facts(
    devices: Sequence, memberships: Mapping[int, set[int]], filters: Mapping[int, object]
) -> list[engine.DeviceFacts]:
    """DeviceFacts for model instances; ``memberships`` maps device pk -> group pks."""
    facts = []
    for device in devices:
        matches: dict[int, bool] = {}
        if filters:
            properties = device.filter_properties()
            matches = {
                fid: bool(rule is not None and rule.matches(properties)) for fid, rule in filters.items()
            }
        facts.append(
            engine.DeviceFacts(
                device_id=str(device.pk),
                os=device.os,
                channel=device_channel(device),
                group_ids=frozenset(memberships.get(device.pk, ())),
                filter_matches=matches,
            )
        )
    return facts


class _FactReader:
    """Channel and filter results for raw device rows, computed once per distinct set of the fields they depend on.

    Each distinct combination is turned into a real Device once and asked the same questions as ``device_facts``
    (``device_channel``; ``parse_filter_rule(...).matches(device.filter_properties())``), so the answers stay those
    of the devices app; only the repetition across a large fleet is skipped. Filters that read a per-device
    property (deviceName) are evaluated for every device.
    """

    _UNIQUE_PROPERTIES = frozenset({"deviceName"})

    def __init__(self, filters: Mapping[int, object]) -> None:
        self.filters = dict(filters)
        per_device = any(
            rule is not None and properties_used(rule) & self._UNIQUE_PROPERTIES
            for rule in self.filters.values()
        )
        self.fields = _DEVICE_FIELDS + (_FILTER_FIELDS if self.filters else ())
        shared = [i for i, name in enumerate(self.fields) if name not in ("id", "display_name")]
        self._filter_key = itemgetter(*(range(len(self.fields)) if per_device else shared))
        self._channel_idx = tuple(
            self.fields.index(f) for f in ("managed_by", "management_type", "intune_enrolled")
        )
        self._channels: dict[tuple, str] = {}
        self._matches: dict[tuple, tuple[tuple[int, bool], ...]] = {}

    def _device(self, row: tuple):
        return Device(**dict(zip(self.fields, row, strict=True)))

    def facts(self, row: tuple) -> tuple[str, tuple[tuple[int, bool], ...]]:
        a, b, c = self._channel_idx
        channel_key = (row[a], row[b], row[c])
        channel = self._channels.get(channel_key)
        if channel is None:
            channel = self._channels[channel_key] = device_channel(self._device(row))
        if not self.filters:
            return channel, ()
        filter_key = self._filter_key(row)
        matches = self._matches.get(filter_key)
        if matches is None:
            properties = self._device(row).filter_properties()
            matches = tuple(
                sorted(
                    (fid, bool(rule is not None and rule.matches(properties)))
                    for fid, rule in self.filters.items()
                )
            )
            self._matches[filter_key] = matches
        return channel, matches


# --------------------------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True)
class DeviceRow:
    pk: int
    name: str
    os: str
    channel: str
    outcome: str  # "receives" | "conflict" | "not_applicable" | "excluded"
    reason: str


@dataclass(frozen=True)
class PolicyRef:
    id: int
    name: str
    policy_id: str  # uuid, for links ("" for the policy being previewed)


@dataclass
class ConflictRow:
    setting_key: str
    display_name: str
    policies: list[PolicyRef]
    device_count: int
    devices: list[str]
    items: tuple[str, ...] = ()


@dataclass
class MergeRow:
    setting_key: str
    display_name: str
    policies: list[PolicyRef]
    device_count: int
    devices: list[str]


@dataclass
class Impact:
    assigned: bool
    in_groups: int = 0  # devices in the included groups
    excluded: int = 0  # ...of which in an excluded group (or filtered out on Intune devices)
    receive: dict[str, int] = field(default_factory=dict)  # channel -> devices that will process the policy
    not_applicable: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, reason, devices)
    not_targeted: list[tuple[str, int]] = field(default_factory=list)  # (reason, devices)
    conflicts: list[ConflictRow] = field(default_factory=list)
    merges: list[MergeRow] = field(default_factory=list)
    skipped_settings: list[tuple[str, str, int]] = field(default_factory=list)  # (setting, reason, devices)
    filter_ignored: int = 0
    devices: list[DeviceRow] = field(default_factory=list)
    device_classes: int = 0

    @property
    def receive_total(self) -> int:
        return sum(self.receive.values())

    @property
    def not_applicable_total(self) -> int:
        return sum(count for _, _, count in self.not_applicable)

    @property
    def targeted(self) -> int:
        return self.in_groups - self.excluded

    @property
    def devices_truncated(self) -> bool:
        return len(self.devices) < self.in_groups

    @property
    def receive_rows(self) -> list[tuple[str, str, int]]:
        return [(c, CHANNEL_LABELS[c], self.receive.get(c, 0)) for c in ("mde", "intune")]


# --------------------------------------------------------------------------------------------------------------
# the preview


def impact(candidate: engine.PolicyInput, *, others: Sequence[engine.PolicyInput] | None = None) -> Impact:
    """What ``candidate`` would do on the devices of its included groups, next to every other saved policy.

    ``candidate.id`` is the saved policy's pk when editing (its saved self is left out of ``others``) or
    NEW_POLICY_ID for a policy that doesn't exist yet.
    """
    if not candidate.include_groups:
        return Impact(assigned=False)
    catalog = get_catalog()
    if others is None:
        others = saved_policy_inputs(exclude_ids=[candidate.id])
    others = [p for p in others if p.id != candidate.id]
    relevant_groups = set(candidate.include_groups) | set(candidate.exclude_groups)
    for policy in others:
        relevant_groups |= policy.include_groups | policy.exclude_groups
    filter_ids = {f for p in [candidate, *others] for f, _ in p.row_filters().values()}
    reader = _FactReader(_filter_rules(filter_ids))

    # Two streams in device order, read in chunks: the devices of the included groups, and their memberships of
    # the groups any policy involved targets (merged below). Subqueries, so no id list travels to the database.
    in_groups = GroupMember.objects.filter(group_id__in=candidate.include_groups).values("device_id")
    rows = (
        Device.objects.filter(pk__in=in_groups)
        .order_by("pk")
        .values_list(*reader.fields)
        .iterator(chunk_size=CHUNK)
    )
    member_rows = (
        GroupMember.objects.filter(device_id__in=in_groups, group_id__in=relevant_groups)
        .order_by("device_id")
        .values_list("device_id", "group_id")
        .iterator(chunk_size=CHUNK * 4)
    )
    pending = next(member_rows, None)
    # device class -> (representative facts, member pks); and the first devices for the capped list
    classes: dict[tuple, tuple[engine.DeviceFacts, list[int]]] = {}
    listed: list[tuple[int, str, str, tuple]] = []
    names: dict[str, list[str]] = defaultdict(list)  # class -> the first device names, for samples
    in_group_count = 0
    for row in rows:
        pk, name, os_name = row[0], row[1], row[2]
        in_group_count += 1
        group_ids: set[int] = set()
        while pending is not None and pending[0] <= pk:
            if pending[0] == pk:
                group_ids.add(pending[1])
            pending = next(member_rows, None)
        channel, matches = reader.facts(row)
        groups = frozenset(group_ids)
        key = (os_name, channel, groups, matches)
        if key not in classes:
            representative = engine.DeviceFacts(
                device_id=f"class-{len(classes)}",
                os=os_name,
                channel=channel,
                group_ids=groups,
                filter_matches=dict(matches),
            )
            classes[key] = (representative, [])
        classes[key][1].append(pk)
        if len(names[classes[key][0].device_id]) < SAMPLE_CAP:
            names[classes[key][0].device_id].append(name)
        if len(listed) < DEVICE_LIST_CAP:
            listed.append((pk, name, os_name, key))

    representatives = [rep for rep, _ in classes.values()]
    result = engine.preview(representatives, [candidate, *others], catalog)
    members = {rep.device_id: pks for rep, pks in classes.values()}
    class_of_key = {key: rep.device_id for key, (rep, _) in classes.items()}
    refs = {p.id: p for p in others}
    uuids = dict(Policy.objects.filter(pk__in=list(refs)).values_list("pk", "policy_id"))

    def ref(policy_id: int) -> PolicyRef:
        if policy_id == candidate.id:
            return PolicyRef(policy_id, candidate.name, "")
        return PolicyRef(policy_id, refs[policy_id].name, str(uuids.get(policy_id, "")))

    def sample(rep_ids: Iterable[str]) -> tuple[int, list[str]]:
        rep_ids = list(rep_ids)
        shown = sorted(name for rep_id in rep_ids for name in names[rep_id])[:SAMPLE_CAP]
        return sum(len(members[rep_id]) for rep_id in rep_ids), shown

    outcome = Impact(assigned=True, in_groups=in_group_count, device_classes=len(classes))
    receive: dict[str, int] = defaultdict(int)
    not_applicable: dict[tuple[str, str], int] = defaultdict(int)
    not_targeted: dict[str, int] = defaultdict(int)
    skipped: dict[tuple[str, str], int] = defaultdict(int)
    for rep, pks in classes.values():
        resolution = result.resolutions[rep.device_id]
        mine = resolution.policies[candidate.id]
        count = len(pks)
        if mine.filter_ignored:
            outcome.filter_ignored += count
        if not mine.targeted:
            outcome.excluded += count
            not_targeted[mine.reason] += count
        elif mine.status in (engine.STATUS_APPLY, engine.STATUS_CONFLICT):
            receive[rep.channel] += count
            for key, status in resolution.per_policy_settings.get(candidate.id, {}).items():
                if status == engine.STATUS_NOT_APPLICABLE:
                    setting = catalog.get(key)
                    skipped[(setting.display_name if setting else key, resolution.settings[key].reason)] += (
                        count
                    )
        else:
            kind = "scope" if rep.channel in ("configmgr", "none") else "platform"
            not_applicable[(kind, mine.reason)] += count
    outcome.receive = dict(receive)
    outcome.not_applicable = sorted(((k, r, n) for (k, r), n in not_applicable.items()), key=lambda x: -x[2])
    outcome.not_targeted = sorted(not_targeted.items(), key=lambda x: -x[1])
    outcome.skipped_settings = sorted(((s, r, n) for (s, r), n in skipped.items()), key=lambda x: -x[2])

    for conflict in result.conflicts:
        if candidate.id not in conflict.policy_ids:
            continue
        count, shown = sample(conflict.device_ids)
        outcome.conflicts.append(
            ConflictRow(
                conflict.setting_key,
                conflict.display_name,
                [ref(pid) for pid in conflict.policy_ids if pid != candidate.id],
                count,
                shown,
                conflict.items,
            )
        )
    for merge in result.merges:
        if candidate.id not in merge.policy_ids:
            continue
        count, shown = sample(merge.device_ids)
        outcome.merges.append(
            MergeRow(
                merge.setting_key,
                merge.display_name,
                [ref(pid) for pid in merge.policy_ids if pid != candidate.id],
                count,
                shown,
            )
        )

    for pk, name, os_name, key in listed:
        rep_id = class_of_key[key]
        mine = result.resolutions[rep_id].policies[candidate.id]
        channel = classes[key][0].channel
        if not mine.targeted:
            state = "excluded"
        elif mine.status == engine.STATUS_CONFLICT:
            state = "conflict"
        elif mine.status == engine.STATUS_APPLY:
            state = "receives"
        else:
            state = "not_applicable"
        outcome.devices.append(
            DeviceRow(pk, name, OS_LABELS.get(os_name, os_name), channel, state, mine.reason)
        )
    outcome.devices.sort(key=lambda row: row.name.lower())
    return outcome
