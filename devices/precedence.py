"""Effective settings on a Windows device: which management source wins, per setting, ASR rule and exclusion entry.

Pure module: no Django, no database, no catalog. :func:`resolve` is the one place that decides the effective value;
the simulated agent's ``Get-MpPreference`` view (devices.agent) and the check-in's effective report both come from
it, so they cannot disagree.

Order of precedence (reference "effective-settings.md", Microsoft Learn "Troubleshoot Microsoft Defender Antivirus
settings"), strongest first, as ranks (:data:`RANK`):

0. ``gpo`` Group Policy. The documented order puts security settings management (MDE) first, but both write the
   same Policy registry key and the doc warns that MDE's value "can be overridden by other configuration tools
   that write to the same registry location". Group Policy refreshes every 90 minutes and re-writes its values
   after any MDE sync, so in practice the GPO's value is the one left in the key. We model that refresh (the
   reference's unverified note) because it is exactly the case the feature exists for: "the Intune report showed
   green but a Group Policy took precedence". ``MDMWinsOverGP`` is not modelled (it does not cover ASR rules).
1. ``mde`` Defender for Endpoint security settings management (this console's channel).
2. ``configmgr_co`` Configuration Manager co-management.
3. ``configmgr`` Configuration Manager (standalone).
4. ``mdm`` Microsoft Intune (MDM).
5. ``configmgr_attach`` Configuration Manager with tenant attach.
6. ``local`` Local admin: ``Set-MpPreference``, ``MpCmdRun.exe``, WMI.

Modifiers, applied in this order:

* **Local setting override** (a GPO-only switch per setting): when on and a local value exists, the local value
  wins over every policy source for that one setting.
* **Unknown**: when the two strongest attempts have the same rank and link order but different values, the
  sources conflict: "Configured by" is *Unknown* and the effective value is the attempt whose name sorts first
  (deterministic, so the same inputs always give the same answer).
* **Tamper Protection**: with Tamper Protection on, an attempt that would turn a tamper-protected feature off
  (value 0) is ignored, whatever its source; the feature stays on (1) and "Configured by" reads *Tamper
  Protection*; the ignored attempt is listed under the other attempts.
* **Exclusions** (:data:`EXCLUSION_SETTINGS`) are resolved entry by entry and merge across sources: an entry is in
  effect when any source lists it, configured by the strongest one. With ``DisableLocalAdminMerge`` in effect
  (itself resolved first, like any setting), entries only a local admin added are not in effect: value ``None``,
  configured by *Default*, the local attempt listed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT",
    "DISABLE_LOCAL_ADMIN_MERGE",
    "EXCLUSION_SETTINGS",
    "GROUP_POLICY",
    "INTUNE",
    "KINDS",
    "LOCAL_ADMIN",
    "RANK",
    "SOURCE_OF_KIND",
    "SOURCES",
    "TAMPER_PROTECTION",
    "UNKNOWN",
    "Attempt",
    "EffectiveEntry",
    "OtherAttempt",
    "replay_local_changes",
    "resolve",
]

# "Configured by" codes (devices.models.ConfigSource has the same strings and their labels).
INTUNE = "intune"
GROUP_POLICY = "group_policy"
CONFIGMGR = "configmgr"
TAMPER_PROTECTION = "tamper_protection"
LOCAL_ADMIN = "local_admin"
DEFAULT = "default"
UNKNOWN = "unknown"
SOURCES: tuple[str, ...] = (INTUNE, GROUP_POLICY, CONFIGMGR, TAMPER_PROTECTION, LOCAL_ADMIN, DEFAULT, UNKNOWN)

#: Attempt kinds by strength (lower rank wins), see the module docstring.
RANK: dict[str, int] = {
    "gpo": 0,
    "mde": 1,
    "configmgr_co": 2,
    "configmgr": 3,
    "mdm": 4,
    "configmgr_attach": 5,
    "local": 6,
}
KINDS: tuple[str, ...] = tuple(RANK)
SOURCE_OF_KIND: dict[str, str] = {
    "gpo": GROUP_POLICY,
    "mde": INTUNE,
    "configmgr_co": CONFIGMGR,
    "configmgr": CONFIGMGR,
    "mdm": INTUNE,
    "configmgr_attach": CONFIGMGR,
    "local": LOCAL_ADMIN,
}

_P = "device_vendor_msft_policy_config_defender_"
#: Exclusion lists, resolved entry by entry.
EXCLUSION_SETTINGS: frozenset[str] = frozenset(
    {_P + "excludedpaths", _P + "excludedextensions", _P + "excludedprocesses"}
)
DISABLE_LOCAL_ADMIN_MERGE = "device_vendor_msft_defender_configuration_disablelocaladminmerge"


@dataclass(frozen=True)
class Attempt:
    """One source's value for one setting. For an exclusion setting ``value`` is the list of its entries."""

    setting_id: str
    kind: str  # a key of RANK
    value: Any
    name: str = ""  # the GPO's or baseline's name ("" for this console's policies and local admin)
    order: int = 0  # link order within the same kind (GPO link order: 1 is the strongest)

    @property
    def source(self) -> str:
        return SOURCE_OF_KIND[self.kind]

    @property
    def strength(self) -> tuple[int, int]:
        return (RANK[self.kind], self.order)


@dataclass(frozen=True)
class OtherAttempt:
    source: str
    value: Any
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "value": self.value, "name": self.name}


@dataclass(frozen=True)
class EffectiveEntry:
    """The effective value of one setting / ASR rule (``entry`` = "") or one exclusion entry."""

    setting_id: str
    entry: str
    value: Any
    configured_by: str
    other_attempts: tuple[OtherAttempt, ...] = field(default_factory=tuple)
    winner_kind: str = ""  # the attempt kind that won ("" for Default, Tamper Protection or Unknown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting_id,
            "entry": self.entry,
            "value": self.value,
            "source": self.configured_by,
            "attempts": [attempt.to_dict() for attempt in self.other_attempts],
        }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    return str(a).lower() == str(b).lower()


def _turns_off(value: Any) -> bool:
    try:
        return int(value) == 0
    except (TypeError, ValueError):
        return False


def _others(attempts: Sequence[Attempt], winner: Attempt | None) -> tuple[OtherAttempt, ...]:
    return tuple(OtherAttempt(a.source, a.value, a.name) for a in attempts if a is not winner)


def _resolve_scalar(
    setting_id: str,
    attempts: Sequence[Attempt],
    *,
    tamper_protection: bool,
    tamper_protected: Collection[str],
    local_override: bool,
) -> EffectiveEntry:
    ordered = sorted(attempts, key=lambda a: (a.strength, a.name))
    local = [a for a in ordered if a.kind == "local"]
    winner: Attempt | None
    configured_by: str
    if local_override and local:
        winner = local[0]
        configured_by = winner.source
    else:
        winner = ordered[0]
        configured_by = winner.source
        rivals = [
            a for a in ordered[1:] if a.strength == winner.strength and not _same(a.value, winner.value)
        ]
        if rivals:
            configured_by = UNKNOWN
    value = winner.value
    if tamper_protection and setting_id in tamper_protected and _turns_off(value):
        return EffectiveEntry(setting_id, "", 1, TAMPER_PROTECTION, _others(ordered, None), "")
    kind = "" if configured_by == UNKNOWN else winner.kind
    return EffectiveEntry(setting_id, "", value, configured_by, _others(ordered, winner), kind)


def _entries(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if str(item) != ""]
    return [str(value)] if str(value) else []


def _resolve_exclusions(
    setting_id: str, attempts: Sequence[Attempt], *, merge_local: bool
) -> list[EffectiveEntry]:
    ordered = sorted(attempts, key=lambda a: (a.strength, a.name))
    by_entry: dict[str, list[Attempt]] = {}
    for attempt in ordered:
        for item in dict.fromkeys(_entries(attempt.value)):
            by_entry.setdefault(item, []).append(attempt)
    results = []
    for item in sorted(by_entry):
        listing = by_entry[item]
        counted = listing if merge_local else [a for a in listing if a.kind != "local"]
        if not counted:
            others = tuple(OtherAttempt(a.source, item, a.name) for a in listing)
            results.append(EffectiveEntry(setting_id, item, None, DEFAULT, others, ""))
            continue
        winner = counted[0]
        others = tuple(OtherAttempt(a.source, item, a.name) for a in listing if a is not winner)
        results.append(EffectiveEntry(setting_id, item, item, winner.source, others, winner.kind))
    return results


def resolve(
    attempts: Iterable[Attempt],
    *,
    tamper_protection: bool,
    tamper_protected: Collection[str],
    local_overrides: Collection[str] = (),
) -> list[EffectiveEntry]:
    """The effective entries of one device, sorted by (setting id, entry).

    ``attempts``: every source's value per setting (this console's applied values, GPOs, ConfigMgr baselines, the
    local admin's preferences). ``tamper_protected``: the setting ids Tamper Protection guards.
    ``local_overrides``: setting ids whose local setting override switch is on. A setting no source configures
    gets no entry (its effective value is the Defender default).
    """
    by_setting: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        if attempt.kind not in RANK:
            raise ValueError(f"unknown source kind {attempt.kind!r}")
        if attempt.value is None:
            continue
        by_setting.setdefault(attempt.setting_id, []).append(attempt)
    overrides = frozenset(local_overrides)
    results: list[EffectiveEntry] = []
    scalars: dict[str, EffectiveEntry] = {}
    for setting_id in sorted(s for s in by_setting if s not in EXCLUSION_SETTINGS):
        scalars[setting_id] = _resolve_scalar(
            setting_id,
            by_setting[setting_id],
            tamper_protection=tamper_protection,
            tamper_protected=tamper_protected,
            local_override=setting_id in overrides,
        )
    merge_off = scalars.get(DISABLE_LOCAL_ADMIN_MERGE)
    merge_local = merge_off is None or not _same(merge_off.value, 1)
    for setting_id in sorted(by_setting):
        if setting_id in EXCLUSION_SETTINGS:
            results.extend(_resolve_exclusions(setting_id, by_setting[setting_id], merge_local=merge_local))
        else:
            results.append(scalars[setting_id])
    return results


def replay_local_changes(changes: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """The local preference per setting from ``(setting_id, operation, value)`` changes in time order.

    ``set`` replaces the value (for an exclusion setting, the whole list); ``add`` / ``remove`` add or remove
    entries of a list (``Add-MpPreference`` / ``Remove-MpPreference``). A ``set`` to ``None`` clears the value.
    """
    local: dict[str, Any] = {}
    for setting_id, operation, value in changes:
        if operation == "set":
            if value is None:
                local.pop(setting_id, None)
            else:
                local[setting_id] = list(_entries(value)) if setting_id in EXCLUSION_SETTINGS else value
        elif operation in ("add", "remove"):
            current = _entries(local.get(setting_id))
            items = _entries(value)
            if operation == "add":
                current.extend(item for item in items if item not in current)
            else:
                current = [item for item in current if item not in items]
            local[setting_id] = current
        else:
            raise ValueError(f"unknown local operation {operation!r}")
    return local
