"""The setting catalog of the Endpoint security profiles (pure Python, no Django).

Everything comes from ``policies/data/setting-catalog.json`` (Windows) and
``policies/data/setting-catalog-macos-linux.json`` (macOS and Linux, the Defender managed-configuration keys), byte
copies of the shared reference data: setting ids, names, CSP / managed key paths, options, defaults and ranges are
never typed in here. This module only adds what the data
leaves implicit: per-profile metadata (policy type, template, platforms), the parent/child structure of group
collections, a UI category per setting and the CSP documentation link.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "setting-catalog.json"
MAC_LINUX_DATA_FILE = Path(__file__).resolve().parent / "data" / "setting-catalog-macos-linux.json"

# A canonical flat value (see /tmp/team/contract.md "Canonical flat values"). macOS / Linux choices are the
# managed-configuration literals, booleans included; their group collections are lists of dicts.
Scalar = bool | int | str
Value = bool | int | str | list[Any]
PolicyValues = dict[str, Value]

# Group collections of the data file (ids as in setting-catalog.json).
ASR_RULES_GROUP_ID = "device_vendor_msft_policy_config_defender_attacksurfacereductionrules"
THREAT_SEVERITY_GROUP_ID = "device_vendor_msft_policy_config_defender_threatseveritydefaultaction"
FIREWALL_RULE_GROUP_ID = "vendor_msft_firewall_mdmstore_firewallrules_{firewallrulename}"

MDM_DOCS = "https://learn.microsoft.com/windows/client-management/mdm/"
DEFENDER_DOCS = "https://learn.microsoft.com/defender-endpoint/"

# Windows 10/11/Server ASR rules template (graph-api-shapes.md §1); `_meta.templates` only holds the ConfigMgr one.
ASR_TEMPLATE_ID = "e8c053d6-9f95-42b1-a7f1-ebfd71c67a4b_1"

ALL_PLATFORMS = ("windows", "macos", "linux")
WINDOWS_ONLY = ("windows",)
MACOS_ONLY = ("macos",)
LINUX_ONLY = ("linux",)


@dataclass(frozen=True)
class _ProfileMeta:
    policy_type: str
    template_family: str
    platforms: tuple[str, ...]
    mde_supported: bool = True
    template_id: str | None = None  # None: taken from `_meta.templates`


_PROFILE_META: dict[str, _ProfileMeta] = {
    "Microsoft Defender Antivirus": _ProfileMeta("antivirus", "endpointSecurityAntivirus", WINDOWS_ONLY),
    "Microsoft Defender Antivirus exclusions": _ProfileMeta(
        "antivirus", "endpointSecurityAntivirus", WINDOWS_ONLY
    ),
    "Windows Security Experience": _ProfileMeta(
        "antivirus", "endpointSecurityAntivirus", WINDOWS_ONLY, mde_supported=False
    ),
    "Microsoft Defender Firewall": _ProfileMeta("firewall", "endpointSecurityFirewall", WINDOWS_ONLY),
    "Microsoft Defender Firewall Rules": _ProfileMeta("firewall", "endpointSecurityFirewall", WINDOWS_ONLY),
    "Endpoint detection and response": _ProfileMeta(
        "edr", "endpointSecurityEndpointDetectionAndResponse", WINDOWS_ONLY
    ),
    "Attack Surface Reduction Rules": _ProfileMeta(
        "asr", "endpointSecurityAttackSurfaceReduction", WINDOWS_ONLY, template_id=ASR_TEMPLATE_ID
    ),
    # macOS and Linux (setting-catalog-macos-linux.json; template ids from its `_meta.templates`).
    "Microsoft Defender Antivirus (macOS)": _ProfileMeta(
        "antivirus", "endpointSecurityAntivirus", MACOS_ONLY
    ),
    "Microsoft Defender Antivirus exclusions (macOS)": _ProfileMeta(
        "antivirus", "endpointSecurityAntivirus", MACOS_ONLY
    ),
    "Endpoint detection and response (macOS)": _ProfileMeta(
        "edr", "endpointSecurityEndpointDetectionAndResponse", MACOS_ONLY
    ),
    "Microsoft Defender Antivirus (Linux)": _ProfileMeta(
        "antivirus", "endpointSecurityAntivirus", LINUX_ONLY
    ),
    "Microsoft Defender Antivirus exclusions (Linux)": _ProfileMeta(
        "antivirus", "endpointSecurityAntivirus", LINUX_ONLY
    ),
    "Endpoint detection and response (Linux)": _ProfileMeta(
        "edr", "endpointSecurityEndpointDetectionAndResponse", LINUX_ONLY
    ),
    "Microsoft Defender Global Exclusions (AV+EDR) (Linux)": _ProfileMeta(
        "edr", "endpointSecurityEndpointDetectionAndResponse", LINUX_ONLY
    ),
}

# Intune's settings-catalog categories of the macOS / Linux Defender settings, by managed-configuration section.
_SECTION_CATEGORY = {
    "antivirusEngine": "Antivirus engine",
    "cloudService": "Cloud delivered protection preferences",
    "networkProtection": "Network protection",
    "edr": "EDR preferences",
    "exclusionSettings": "Exclusion Settings",
    "tamperProtection": "Tamper protection",
    "userInterface": "User interface preferences",
}

_NETWORK_PROFILE_CATEGORY = {
    "domain": "Domain profile",
    "private": "Private profile",
    "public": "Public profile",
    "global": "Global",
}


@dataclass(frozen=True)
class Option:
    value: int | str
    label: str
    item_id: str


@dataclass(frozen=True)
class SettingDef:
    id: str
    profile: str
    display_name: str
    description: str
    csp_path: str
    type: str
    options: tuple[Option, ...]
    default: object = field(hash=False)
    min: int | None
    max: int | None
    technologies: tuple[str, ...]
    unsupported_in_mde_channel: bool
    merges: bool
    parent_id: str | None
    children: tuple[str, ...]
    category: str
    supports_warn: bool | None
    asr_guid: str | None
    network_profile: str | None
    max_length: int | None
    input_validation: str | None
    unverified: bool
    learn_more_url: str
    hidden: bool = False  # the catalog definition has no display name (not shown in the Intune UI)
    # macOS / Linux: the dot path into mdatp_managed.json / com.microsoft.wdav ("[]" marks an array of objects).
    managed_key_path: str | None = None
    unverified_reason: str = ""  # why the reference data marks the entry unverified
    note: str = ""  # the reference data's note (documented behaviour, defaults, agent versions)
    option_notes: tuple[
        tuple[str, str], ...
    ] = ()  # (option value as text, note) for options marked unverified

    @property
    def is_managed_config(self) -> bool:
        """A macOS / Linux setting: a key of Defender's managed configuration, not a Windows CSP node."""
        return self.managed_key_path is not None

    @property
    def managed_key(self) -> str:
        """The last key of the managed key path (``path`` for ``antivirusEngine.exclusions[].path``)."""
        return (self.managed_key_path or "").rsplit(".", 1)[-1]

    @property
    def mde_supported(self) -> bool:
        return not self.unsupported_in_mde_channel and "microsoftSense" in self.technologies

    @property
    def is_group(self) -> bool:
        return self.type == "group_collection"

    @property
    def is_instance_collection(self) -> bool:
        """A group collection with one element per instance (firewall rules; the macOS / Linux exclusions, threat
        type settings and device tags): its value is a list of dicts keyed by the children's setting ids."""
        return self.is_group and (self.csp_path.endswith("{0}") or self.is_managed_config)

    @property
    def is_value_key(self) -> bool:
        """Whether this id is a key of the flat values (ASR / threat severity group parents are not)."""
        return not self.is_group or self.is_instance_collection

    def option_by_item_id(self, item_id: str) -> Option | None:
        for option in self.options:
            if option.item_id == item_id:
                return option
        lowered = item_id.lower()
        for option in self.options:
            if option.item_id.lower() == lowered:
                return option
        return None

    def option_for(self, value: object) -> Option | None:
        """The option whose catalog value is ``value`` (same type), else whose str form matches."""
        for option in self.options:
            if type(option.value) is type(value) and option.value == value:
                return option
        if isinstance(value, bool) or not isinstance(value, int | str):
            return None
        text = str(value).strip()
        for option in self.options:
            if str(option.value) == text:
                return option
        return None


@dataclass(frozen=True)
class Profile:
    name: str
    slug: str
    policy_type: str
    template_id: str
    template_family: str
    platforms: tuple[str, ...]
    mde_supported: bool
    settings: tuple[SettingDef, ...]
    technologies: str = "mdm,microsoftSense"  # the template's technologies (Linux: microsoftSense only)
    # The name Intune shows (without the platform suffix the data adds to macOS / Linux names).
    label: str = ""
    _index: dict[str, SettingDef] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.id: s for s in self.settings})
        if not self.label:
            object.__setattr__(self, "label", re.sub(r" \((?:macOS|Linux)\)$", "", self.name))

    def get(self, setting_id: str) -> SettingDef | None:
        return self._index.get(setting_id)

    def setting(self, setting_id: str) -> SettingDef:
        try:
            return self._index[setting_id]
        except KeyError:
            raise KeyError(f"{setting_id!r} is not a setting of the {self.name!r} profile") from None

    def __contains__(self, setting_id: object) -> bool:
        return setting_id in self._index


class Catalog:
    def __init__(self, profiles: dict[str, Profile]) -> None:
        self.profiles: dict[str, Profile] = dict(profiles)
        self._by_slug = {p.slug: p for p in self.profiles.values()}
        self._by_template = {p.template_id: p for p in self.profiles.values()}
        self._settings: dict[str, SettingDef] = {}
        self._profiles_of: dict[str, list[Profile]] = {}
        for profile in self.profiles.values():
            for setting in profile.settings:
                self._settings.setdefault(setting.id, setting)
                self._profiles_of.setdefault(setting.id, []).append(profile)

    def profile(self, name_or_slug: str) -> Profile:
        found = self.profiles.get(name_or_slug) or self._by_slug.get(name_or_slug)
        if found is None:
            raise KeyError(f"unknown profile {name_or_slug!r}")
        return found

    def profile_for_template(self, template_id: str) -> Profile:
        try:
            return self._by_template[template_id]
        except KeyError:
            raise KeyError(f"no profile uses template {template_id!r}") from None

    def setting(self, setting_id: str) -> SettingDef:
        """The setting definition; for an id shared by two profiles, the one of the first profile."""
        try:
            return self._settings[setting_id]
        except KeyError:
            raise KeyError(f"unknown setting {setting_id!r}") from None

    def get(self, setting_id: str) -> SettingDef | None:
        return self._settings.get(setting_id)

    def profile_of(self, setting_id: str) -> Profile:
        return self.profiles_of(setting_id)[0]

    def profiles_of(self, setting_id: str) -> tuple[Profile, ...]:
        """Every profile holding this id (a few Defender CSP settings are in both AV profiles)."""
        try:
            return tuple(self._profiles_of[setting_id])
        except KeyError:
            raise KeyError(f"unknown setting {setting_id!r}") from None

    def all_settings(self) -> Iterator[SettingDef]:
        for profile in self.profiles.values():
            yield from profile.settings


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def learn_more_url(csp_path: str, platforms: tuple[str, ...] = WINDOWS_ONLY) -> str:
    """The CSP documentation page of a setting (Policy CSP settings get an anchor); for macOS / Linux settings the
    Defender preferences page."""
    if not csp_path.startswith("./"):
        if "linux" in platforms:
            return f"{DEFENDER_DOCS}linux-preferences"
        if "macos" in platforms:
            return f"{DEFENDER_DOCS}mac-preferences"
    policy = re.match(r"^\./(?:Device|User)/Vendor/MSFT/Policy/Config/([^/]+)/([^/]+)", csp_path)
    if policy:
        area, name = policy.groups()
        return f"{MDM_DOCS}policy-csp-{area.lower()}#{name.lower()}"
    csp = re.match(r"^\./(?:Device/)?Vendor/MSFT/([^/]+)", csp_path)
    if csp and csp.group(1) in {"Defender", "Firewall", "WindowsAdvancedThreatProtection"}:
        return f"{MDM_DOCS}{csp.group(1).lower()}-csp"
    return f"{MDM_DOCS}configuration-service-provider-reference"


def _category(raw: dict[str, Any]) -> str:
    csp = raw["csp_path"]
    if raw.get("managed_key_path"):
        section = raw["managed_key_path"].split(".", 1)[0]
        return _SECTION_CATEGORY.get(section, section)
    network_profile = raw.get("network_profile")
    if network_profile:
        return _NETWORK_PROFILE_CATEGORY.get(network_profile, network_profile.title())
    if "/Firewall/MdmStore/FirewallRules/" in csp:
        return "Firewall rules"
    if "AttackSurfaceReduction" in csp or "ASROnlyPerRuleExclusions" in csp:
        return "Attack Surface Reduction Rules"
    if "ControlledFolderAccess" in csp:
        return "Controlled Folder Access"
    if "ThreatSeverityDefaultAction" in csp:
        return "Remediation"
    if "/WindowsAdvancedThreatProtection/" in csp:
        return "Endpoint Detection and Response"
    if "/WindowsDefenderSecurityCenter/" in csp:
        return "Windows Security"
    if "TamperProtection" in csp or "/ControlledConfiguration/" in csp:
        return "Tamper Protection"
    if "/Policy/Config/Defender/" in csp:
        return "Defender"
    if "/Vendor/MSFT/Defender/" in csp:
        return "Defender configuration"
    return "Settings"


def _display_name(raw: dict[str, Any]) -> str:
    name = (raw.get("display_name") or "").strip()
    if name:
        return name
    leaf = raw["csp_path"].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", leaf) or raw["id"]


def _options(setting_id: str, raw_options: list[dict[str, Any]]) -> tuple[Option, ...]:
    return tuple(
        Option(
            value=o["value"],
            label=str(o.get("label") or o["value"]),
            item_id=o.get("item_id") or f"{setting_id}_{o['value']}".lower(),
        )
        for o in raw_options
    )


def _match_option(options: tuple[Option, ...], value: object) -> object:
    for option in options:
        if option.value == value and type(option.value) is type(value):
            return option.value
    for option in options:
        if str(option.value) == str(value):
            return option.value
    return value


def _default(setting_type: str, options: tuple[Option, ...], default: object) -> object:
    """Defaults typed like the options (the data has int 0 for options "0"/"1" in places)."""
    if default is None or not options:
        return default
    if setting_type == "choice_collection":
        items = default if isinstance(default, list) else [default]
        return [_match_option(options, item) for item in items]
    return _match_option(options, default)


def _structure(raw_settings: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """parent_id per child and children per group collection, derived from ids (the data's lists are partial)."""
    parents: dict[str, str] = {}
    children: dict[str, tuple[str, ...]] = {}
    for raw in raw_settings:
        if raw.get("parent_rule"):
            parents[raw["id"]] = raw["parent_rule"]
    for group in raw_settings:
        if group["type"] != "group_collection":
            continue
        if group.get("managed_key_path") and group.get("children"):  # macOS / Linux: the data's structure
            children[group["id"]] = tuple(group["children"])
            for kid in group["children"]:
                parents[kid] = group["id"]
            continue
        prefix = group["id"] + "_"
        kids = tuple(
            raw["id"] for raw in raw_settings if raw["id"].startswith(prefix) and not raw.get("parent_rule")
        )
        children[group["id"]] = kids
        for kid in kids:
            parents[kid] = group["id"]
    return parents, children


def _setting(
    profile: str,
    raw: dict[str, Any],
    parents: dict[str, str],
    children: dict[str, tuple[str, ...]],
    platforms: tuple[str, ...] = WINDOWS_ONLY,
):
    options = _options(raw["id"], raw.get("options") or [])
    technologies = tuple(t for t in (raw.get("technologies") or "").split(",") if t)
    return SettingDef(
        id=raw["id"],
        profile=profile,
        display_name=_display_name(raw),
        description=raw.get("description") or "",
        csp_path=raw["csp_path"],
        type=raw["type"],
        options=options,
        default=_default(raw["type"], options, raw.get("default")),
        min=raw.get("min"),
        max=raw.get("max"),
        technologies=technologies,
        unsupported_in_mde_channel=bool(raw.get("unsupported_in_mde_channel")),
        merges=bool(raw.get("merges")),
        parent_id=parents.get(raw["id"]),
        children=children.get(raw["id"], ()),
        category=_category(raw),
        supports_warn=raw.get("supports_warn"),
        asr_guid=raw.get("asr_guid"),
        network_profile=raw.get("network_profile"),
        max_length=raw.get("max_length"),
        input_validation=raw.get("input_validation"),
        unverified=bool(raw.get("unverified")),
        learn_more_url=learn_more_url(raw["csp_path"], platforms),
        hidden=not (raw.get("display_name") or "").strip(),
        managed_key_path=raw.get("managed_key_path"),
        unverified_reason=str(raw.get("unverified_reason") or "") if raw.get("unverified") else "",
        note=str(raw.get("note") or ""),
        option_notes=tuple((str(k), str(v)) for k, v in (raw.get("option_notes") or {}).items()),
    )


def _template_ids(meta: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Profile name -> (template id, technologies) (`_meta.templates` maps to an id, or to a record holding
    ``templateId`` and ``technologies``)."""
    found: dict[str, tuple[str, str | None]] = {}
    for name, entry in (meta.get("templates") or {}).items():
        template_id = entry.get("templateId") if isinstance(entry, dict) else entry
        technologies = entry.get("technologies") if isinstance(entry, dict) else None
        if isinstance(template_id, str) and template_id:
            found[name] = (template_id, technologies)
    return found


def build_catalog(data: dict[str, Any], *more: dict[str, Any]) -> Catalog:
    """One catalog from one or more data files (Windows, then macOS and Linux)."""
    templates: dict[str, tuple[str, str | None]] = {}
    items: list[tuple[str, Any]] = []
    for document in (data, *more):
        templates.update(_template_ids(document.get("_meta", {})))
        items += [(name, raw) for name, raw in document.items() if not name.startswith("_")]
    profiles: dict[str, Profile] = {}
    for name, raw_settings in items:
        meta = _PROFILE_META.get(name)
        if meta is None:
            raise ValueError(f"setting-catalog.json has a profile this console doesn't know: {name!r}")
        template_id, technologies = templates.get(name, (None, None))
        template_id = meta.template_id or template_id
        if not template_id:
            raise ValueError(f"no template id for profile {name!r}")
        parents, children = _structure(raw_settings)
        profiles[name] = Profile(
            name=name,
            slug=slugify(name),
            policy_type=meta.policy_type,
            template_id=template_id,
            template_family=meta.template_family,
            platforms=meta.platforms,
            mde_supported=meta.mde_supported,
            settings=tuple(_setting(name, raw, parents, children, meta.platforms) for raw in raw_settings),
            technologies=technologies or "mdm,microsoftSense",
        )
    return Catalog(profiles)


def load_catalog(path: Path | str = DATA_FILE, *more: Path | str) -> Catalog:
    documents = []
    for each in (path, *more):
        with open(each, encoding="utf-8") as handle:
            documents.append(json.load(handle))
    return build_catalog(*documents)


@cache
def get_catalog() -> Catalog:
    return load_catalog(DATA_FILE, MAC_LINUX_DATA_FILE)


def asr_rules(catalog: Catalog) -> tuple[tuple[SettingDef, SettingDef | None], ...]:
    """Each ASR rule (catalog order) with its "ASR Only Per Rule Exclusions" setting (None when it has none)."""
    group = catalog.setting(ASR_RULES_GROUP_ID)
    profile = catalog.profile(group.profile)
    exclusions = {s.parent_id: s for s in profile.settings if s.parent_id in group.children}
    return tuple((catalog.setting(rule_id), exclusions.get(rule_id)) for rule_id in group.children)


def managed_items_text(group: SettingDef, value: Any, catalog: Catalog | None = None) -> str:
    """A macOS / Linux list setting in one line: "2 entries: Path /run (directory); File extension .pdf"."""
    catalog = catalog or get_catalog()
    parts: list[str] = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        by_key: dict[str, tuple[SettingDef, Any]] = {}
        for child_id, child_value in item.items():
            child = catalog.get(child_id)
            if child is not None:
                by_key[child.managed_key] = (child, child_value)

        def label(key: str, found: dict[str, tuple[SettingDef, Any]] = by_key) -> str:
            child, raw = found[key]
            return next((o.label for o in child.options if o.value == raw), str(raw))

        if "$type" in by_key:
            text = label("$type")
            for key in ("path", "extension", "name"):
                if key in by_key:
                    text += f" {by_key[key][1]}"
            if "isDirectory" in by_key:
                text += " (directory)" if by_key["isDirectory"][1] is True else " (file)"
        else:
            text = ": ".join(label(k) if k in by_key else "?" for k in ("key", "value"))
        parts.append(text)
    count = len(parts)
    return f"{count} entr{'y' if count == 1 else 'ies'}: " + "; ".join(parts)


def display_value(key: str, value: Any, catalog: Catalog | None = None) -> str:
    """A setting value as the admin center shows it: option labels, lists joined, firewall rules by name."""
    if value is None:
        return "Not configured"
    sdef = (catalog or get_catalog()).get(key)
    if sdef is not None and sdef.is_managed_config and sdef.is_instance_collection:
        return managed_items_text(sdef, value, catalog)
    if sdef is not None and sdef.options:
        labels = {str(o.value).lower(): o.label for o in sdef.options}
        if isinstance(value, list):
            return ", ".join(labels.get(str(v).lower(), str(v)) for v in value)
        return labels.get(str(value).lower(), str(value))
    if isinstance(value, list):
        if all(isinstance(v, dict) for v in value):
            names = [str(next((x for k, x in v.items() if k.endswith("_name")), "rule")) for v in value]
            return f"{len(names)} rule{'s' if len(names) != 1 else ''}: {', '.join(names)}"
        return ", ".join(str(v) for v in value) or "(empty list)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


# What a setting's row says is in effect on the device, for statuses where the device applies nothing of it.
NOT_IN_EFFECT = {
    "conflict": "None applied (conflict)",
    "pending": "Not in effect yet",
    "not_applicable": "Not applied",
}


def device_value(key: str, status: str, value: Any, catalog=None) -> str:
    """The value in effect on the device, never the policy's: a row's stored value is the applied value when
    Succeeded and the value still in effect when in Error (agent contract), but the policy's own value for a
    Conflict or Pending row - which the device does not apply - so those say so instead."""
    if status in ("succeeded", "error"):
        return display_value(key, value, catalog)
    return NOT_IN_EFFECT.get(status, "")
