"""The managed configuration Microsoft Defender for Endpoint reads on Linux and macOS (pure: no Django, no I/O).

On a Linux device the MDE security-settings-management channel leaves the effective managed settings in
``/etc/opt/microsoft/mdatp/managed/mdatp_managed.json``; on macOS the same key tree is a property list in the
managed-preferences domain ``com.microsoft.wdav`` (reference: macos-linux-managed-config.md §1-2). This module

* builds that key tree from flat values (setting id -> value, the shared contract) through each setting's
  ``managed_key_path`` in the catalog (:func:`managed_tree`) - nothing is typed in here,
* renders it as the JSON file (:func:`render_linux`) or the plist (:func:`render_macos`),
* checks a rendered file: valid JSON / plist, only documented key paths, only documented literals
  (:func:`check_linux`, :func:`check_macos`),
* decides what is effective on the device from the managed values, the local ``mdatp config`` values and the
  defaults, honouring ``exclusionsMergePolicy`` and ``threatTypeSettingsMergePolicy`` (:func:`effective`), and
* prints an ``mdatp health``-style summary of the effective values (:func:`health`).

:func:`effective` returns one row per key path with its value and its source ("Security settings management",
"Local (mdatp config)" or "Default") so an Effective settings view can show it.
"""

from __future__ import annotations

import copy
import json
import plistlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.catalog import Catalog, SettingDef, get_catalog

__all__ = [
    "FILE_LOCATION",
    "LOCAL_COMMANDS",
    "SOURCE_DEFAULT",
    "SOURCE_LOCAL",
    "SOURCE_MANAGED",
    "EffectiveRow",
    "HealthField",
    "MdatpConfigError",
    "check_linux",
    "check_macos",
    "documented_paths",
    "effective",
    "format_health",
    "health",
    "managed_tree",
    "mdatp_config",
    "render",
    "render_linux",
    "render_macos",
]

# Where the agent finds the file (Linux: linux-preferences.md; macOS: the managed-preferences domain).
FILE_LOCATION = {
    "linux": "/etc/opt/microsoft/mdatp/managed/mdatp_managed.json",
    "macos": "com.microsoft.wdav (managed preferences domain)",
}
FILE_NAME = {"linux": "mdatp_managed.json", "macos": "com.microsoft.wdav.plist"}
PLATFORMS = ("linux", "macos")

SOURCE_MANAGED = "Security settings management"
SOURCE_LOCAL = "Local (mdatp config)"
SOURCE_DEFAULT = "Default"

# List keys whose local entries the device-side merge policy admits or drops (reference §4; global exclusions
# have their own exclusionSettings.mergePolicy, §3).
_MERGE_POLICY_OF = {
    "antivirusEngine.exclusions": "antivirusEngine.exclusionsMergePolicy",
    "antivirusEngine.threatTypeSettings": "antivirusEngine.threatTypeSettingsMergePolicy",
    "exclusionSettings.exclusions": "exclusionSettings.mergePolicy",
}


def _platform_settings(platform: str, catalog: Catalog) -> list[SettingDef]:
    """Every managed-configuration setting of the platform's profiles (first occurrence of an id)."""
    seen: set[str] = set()
    found: list[SettingDef] = []
    for profile in catalog.profiles.values():
        if platform not in profile.platforms:
            continue
        for setting in profile.settings:
            if setting.is_managed_config and setting.id not in seen:
                seen.add(setting.id)
                found.append(setting)
    return found


def documented_paths(platform: str, catalog: Catalog | None = None) -> set[str]:
    """The reference's documented key paths of the platform ("antivirusEngine.exclusions[].path" for list items)."""
    return {
        s.managed_key_path
        for s in _platform_settings(platform, catalog or get_catalog())
        if s.managed_key_path
    }


# Sections in the order the documentation's examples write them; keys within a section in catalog order.
_SECTIONS = (
    "antivirusEngine",
    "cloudService",
    "networkProtection",
    "edr",
    "exclusionSettings",
    "tamperProtection",
    "userInterface",
)


def _section_order(platform: str, catalog: Catalog) -> dict[str, tuple[int, int]]:
    order: dict[str, tuple[int, int]] = {}
    for setting in _platform_settings(platform, catalog):
        path = (setting.managed_key_path or "").replace("[]", "")
        section = path.split(".", 1)[0]
        rank = _SECTIONS.index(section) if section in _SECTIONS else len(_SECTIONS)
        if path and path not in order:
            order[path] = (rank, len(order))
    return order


def _item(group: SettingDef, element: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """One element of a list setting (child setting id -> value) as the agent writes it (JSON key -> value)."""
    out: dict[str, Any] = {}
    for child_id in group.children:  # "$type" first, as the documentation writes exclusions
        if child_id in element:
            out[catalog.setting(child_id).managed_key] = copy.deepcopy(element[child_id])
    return out


def managed_tree(values: Mapping[str, Any], platform: str, catalog: Catalog | None = None) -> dict[str, Any]:
    """The managed configuration (sections -> keys -> values) for the flat ``values`` that reach a device of
    ``platform``; settings of other platforms and Windows CSP settings are not part of it."""
    catalog = catalog or get_catalog()
    if platform not in PLATFORMS:
        raise ValueError(f"{platform!r} has no Defender managed configuration file (use linux or macos)")
    own = {s.id: s for s in _platform_settings(platform, catalog)}
    order = _section_order(platform, catalog)
    leaves: list[tuple[str, Any]] = []
    for key, value in values.items():
        setting = own.get(key)
        if setting is None or setting.parent_id is not None or value is None:
            continue
        if setting.is_instance_collection:
            value = [_item(setting, element, catalog) for element in value if isinstance(element, Mapping)]
        leaves.append((setting.managed_key_path or "", copy.deepcopy(value)))
    tree: dict[str, Any] = {}
    for path, value in sorted(leaves, key=lambda leaf: order.get(leaf[0], (len(_SECTIONS), 0))):
        node = tree
        *sections, leaf = path.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return tree


def render_linux(tree: Mapping[str, Any]) -> str:
    """``mdatp_managed.json`` as the agent reads it: one JSON object, two-space indent, UTF-8."""
    return json.dumps(tree, indent=2, ensure_ascii=False) + "\n"


def render_macos(tree: Mapping[str, Any]) -> str:
    """The ``com.microsoft.wdav`` preferences as an XML property list."""
    return plistlib.dumps(dict(tree), fmt=plistlib.FMT_XML, sort_keys=False).decode("utf-8")


def render(values: Mapping[str, Any], platform: str, catalog: Catalog | None = None) -> str:
    tree = managed_tree(values, platform, catalog)
    return render_linux(tree) if platform == "linux" else render_macos(tree)


# --------------------------------------------------------------------------------------------------------------
# checking a rendered file


def _literal_ok(setting: SettingDef, value: Any) -> bool:
    if setting.options:
        return any(type(o.value) is type(value) and o.value == value for o in setting.options)
    kind = setting.type
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return (setting.min is None or value >= setting.min) and (setting.max is None or value <= setting.max)
    if kind == "string":
        return isinstance(value, str)
    if kind == "string_collection":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def _check_tree(tree: Any, platform: str, catalog: Catalog) -> list[str]:
    by_path = {s.managed_key_path: s for s in _platform_settings(platform, catalog) if s.managed_key_path}
    problems: list[str] = []
    if not isinstance(tree, dict):
        return ["The file must hold one object (a dictionary) of sections."]

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            setting = by_path.get(path)
            if setting is None:
                if isinstance(value, dict) and any(p.startswith(path + ".") for p in by_path):
                    walk(value, path)
                else:
                    problems.append(f"“{path}” isn't a documented key.")
                continue
            if setting.is_instance_collection:
                if not isinstance(value, list):
                    problems.append(f"“{path}” must be an array of objects.")
                    continue
                for index, element in enumerate(value):
                    if not isinstance(element, dict):
                        problems.append(f"“{path}[{index}]” must be an object.")
                        continue
                    for child_key, child_value in element.items():
                        child = by_path.get(f"{path}[].{child_key}")
                        if child is None:
                            problems.append(f"“{path}[{index}].{child_key}” isn't a documented key.")
                        elif not _literal_ok(child, child_value):
                            problems.append(
                                f"“{path}[{index}].{child_key}” has an undocumented value {child_value!r}."
                            )
            elif not _literal_ok(setting, value):
                problems.append(f"“{path}” has an undocumented value {value!r}.")

    walk(tree, "")
    return problems


def check_linux(text: str, catalog: Catalog | None = None) -> list[str]:
    """Problems of an ``mdatp_managed.json`` text (empty = valid JSON with documented keys and literals only)."""
    try:
        tree = json.loads(text)
    except ValueError as exc:
        return [f"The file isn't valid JSON: {exc}."]
    return _check_tree(tree, "linux", catalog or get_catalog())


def check_macos(text: str, catalog: Catalog | None = None) -> list[str]:
    """Problems of a ``com.microsoft.wdav`` property list text."""
    try:
        tree = plistlib.loads(text.encode("utf-8"))
    except (plistlib.InvalidFileException, ValueError) as exc:
        return [f"The file isn't a valid property list: {exc}."]
    return _check_tree(tree, "macos", catalog or get_catalog())


def unverified_notes(
    values: Mapping[str, Any], platform: str, catalog: Catalog | None = None
) -> list[tuple[str, str]]:
    """(key path, note) for each key in the file that the reference data marks unverified (the key itself, or the
    option literal written), so the file view can say so where it matters."""
    catalog = catalog or get_catalog()
    present = set(values)
    notes: list[tuple[str, str]] = []
    for setting in _platform_settings(platform, catalog):
        if setting.id not in present or setting.parent_id is not None:
            continue
        path = setting.managed_key_path or ""
        if setting.unverified_reason and not setting.option_notes:  # else the mark is about one option only
            notes.append((path, setting.unverified_reason))
        value = values[setting.id]
        for literal, note in setting.option_notes:
            if str(value).lower() == literal.lower():
                notes.append((f"{path} = {value}", note))
    return notes


# --------------------------------------------------------------------------------------------------------------
# effective values


@dataclass(frozen=True)
class EffectiveRow:
    path: str  # managed key path, e.g. "antivirusEngine.enforcementLevel"
    name: str  # Intune's display name of the setting
    value: Any  # JSON literal (None = not set anywhere and no documented default)
    source: str  # SOURCE_MANAGED | SOURCE_LOCAL | SOURCE_DEFAULT, or "A + B" for merged lists
    note: str = ""  # e.g. why local entries were ignored


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def _identity(path: str, element: Any) -> str:
    if path.endswith("threatTypeSettings") and isinstance(element, Mapping):
        return "key:" + str(element.get("key"))
    return json.dumps(element, sort_keys=True)


def effective(
    platform: str,
    managed: Mapping[str, Any],
    local: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
) -> list[EffectiveRow]:
    """What is in effect on the device, per documented key path.

    ``managed`` are the flat values the channel applied (setting id -> value); ``local`` the values set on the
    device with ``mdatp config`` (key path -> JSON literal). Managed values take precedence over local ones; for
    exclusions and threat type settings the merge policy decides whether local entries still count
    (``merge``: admin and local entries; ``admin_only``: admin entries only).
    """
    catalog = catalog or get_catalog()
    local = dict(local or {})
    admin = _flatten(managed_tree(managed, platform, catalog))
    rows: list[EffectiveRow] = []
    settings = [
        s for s in _platform_settings(platform, catalog) if s.parent_id is None and s.managed_key_path
    ]

    def scalar(path: str) -> tuple[Any, str]:
        if path in admin:
            return admin[path], SOURCE_MANAGED
        if path in local:
            return local[path], SOURCE_LOCAL
        setting = next((s for s in settings if s.managed_key_path == path), None)
        return (setting.default if setting is not None else None), SOURCE_DEFAULT

    for setting in settings:
        path = setting.managed_key_path or ""
        if not setting.is_instance_collection:
            value, source = scalar(path)
            rows.append(EffectiveRow(path, setting.display_name, value, source))
            continue
        ours = list(admin.get(path) or [])
        theirs = list(local.get(path) or [])
        policy_path = _MERGE_POLICY_OF.get(path)
        policy = scalar(policy_path)[0] if policy_path else "merge"
        note = ""
        if theirs and policy == "admin_only":
            note = (
                f"{len(theirs)} local entr{'y' if len(theirs) == 1 else 'ies'} ignored: "
                f"{policy_path.rsplit('.', 1)[-1] if policy_path else 'the merge policy'} is admin_only."
            )
            theirs = []
        merged = list(ours)
        seen = {_identity(path, e) for e in ours}
        for element in theirs:
            if _identity(path, element) not in seen:
                seen.add(_identity(path, element))
                merged.append(element)
        added_local = len(merged) > len(ours)
        if ours and added_local:
            source = f"{SOURCE_MANAGED} + {SOURCE_LOCAL}"
        elif ours:
            source = SOURCE_MANAGED
        elif added_local:
            source = SOURCE_LOCAL
        else:
            source = SOURCE_DEFAULT
        rows.append(EffectiveRow(path, setting.display_name, merged, source, note))
    return rows


# --------------------------------------------------------------------------------------------------------------
# mdatp health


@dataclass(frozen=True)
class HealthField:
    name: str
    value: Any
    managed: bool


def health(rows: Iterable[EffectiveRow]) -> list[HealthField]:
    """The ``mdatp health`` fields that linux-preferences.md says show ``[managed]`` when the managed file works."""
    by_path = {row.path: row for row in rows}

    def get(path: str) -> EffectiveRow | None:
        return by_path.get(path)

    level = get("antivirusEngine.enforcementLevel")
    rtp = get("antivirusEngine.enableRealTimeProtection")
    passive = get("antivirusEngine.passiveMode")
    # An explicitly set enforcement level wins; else the deprecated booleans; else the default level.
    if level is not None and (
        level.source != SOURCE_DEFAULT or (rtp is None or rtp.source == SOURCE_DEFAULT)
    ):
        real_time = HealthField(
            "real_time_protection_enabled", level.value == "real_time", level.source == SOURCE_MANAGED
        )
        passive_mode = HealthField(
            "passive_mode_enabled", level.value == "passive", level.source == SOURCE_MANAGED
        )
    else:
        real_time = HealthField(
            "real_time_protection_enabled",
            bool(rtp.value) if rtp else None,
            bool(rtp and rtp.source == SOURCE_MANAGED),
        )
        passive_mode = HealthField(
            "passive_mode_enabled",
            bool(passive.value) if passive else None,
            bool(passive and passive.source == SOURCE_MANAGED),
        )
    fields = [real_time, passive_mode]
    for name, paths in (
        ("cloud_enabled", ("cloudService.enabled",)),
        (
            "cloud_automatic_sample_submission_consent",
            ("cloudService.automaticSampleSubmissionConsent", "cloudService.automaticSampleSubmission"),
        ),
        ("automatic_definition_update_enabled", ("cloudService.automaticDefinitionUpdateEnabled",)),
    ):
        row = next((r for r in (get(p) for p in paths) if r is not None), None)
        if row is not None:
            fields.append(HealthField(name, row.value, row.source == SOURCE_MANAGED))
    return fields


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "unavailable"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def format_health(fields: Iterable[HealthField]) -> str:
    """``name : value [managed]`` lines (the exact layout of ``mdatp health`` is unverified in the reference)."""
    lines = [f"{f.name:<42}: {_text(f.value)}{' [managed]' if f.managed else ''}" for f in fields]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# mdatp config (local changes on the device)

# mdatp config <property> --value <value>: the properties reference §6 documents, the key they set and the
# literal of each accepted value. real-time-protection -> enableRealTimeProtection is this console's mapping
# (the reference documents the command, not the key it writes).
LOCAL_COMMANDS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "linux": {
        "real-time-protection": (
            "antivirusEngine.enableRealTimeProtection",
            {"enabled": True, "disabled": False},
        ),
        "cloud": ("cloudService.enabled", {"enabled": True, "disabled": False}),
        "cloud-diagnostic": (
            "cloudService.diagnosticLevel",
            {"optional": "optional", "required": "required"},
        ),
        "cloud-automatic-sample-submission": (
            "cloudService.automaticSampleSubmissionConsent",
            {"none": "none", "safe": "safe", "all": "all"},
        ),
    },
    "macos": {
        "real-time-protection": (
            "antivirusEngine.enableRealTimeProtection",
            {"enabled": True, "disabled": False},
        ),
        "cloud": ("cloudService.enabled", {"enabled": True, "disabled": False}),
        "cloud-diagnostic": (
            "cloudService.diagnosticLevel",
            {"optional": "optional", "required": "required"},
        ),
        "cloud-automatic-sample-submission": (
            "cloudService.automaticSampleSubmission",
            {"enabled": True, "disabled": False},
        ),
    },
}
CONFIG_UPDATED = "Configuration property updated"


class MdatpConfigError(ValueError):
    """A local change the device refuses (unknown property or value, or a key the managed profile sets)."""


def mdatp_config(
    platform: str,
    local: Mapping[str, Any],
    managed: Mapping[str, Any],
    prop: str,
    value: str,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """``mdatp config <prop> --value <value>`` on the device: the new local values, or ``MdatpConfigError``.

    A key set by the managed profile can't be changed locally (reference §6; the device's exact error text is
    unverified)."""
    commands = LOCAL_COMMANDS.get(platform)
    if commands is None:
        raise MdatpConfigError(f"mdatp config isn't available on {platform}.")
    if prop not in commands:
        raise MdatpConfigError(f"Unknown property “{prop}”. Use one of: {', '.join(sorted(commands))}.")
    path, literals = commands[prop]
    if value not in literals:
        raise MdatpConfigError(f"“{value}” isn't a value of {prop}. Use one of: {', '.join(literals)}.")
    if path in _flatten(managed_tree(managed, platform, catalog)):
        raise MdatpConfigError(
            f"{prop} is set by your organization's security settings management policy and can't be changed "
            "locally."
        )
    return {**dict(local), path: literals[value]}
