"""Validation of policy setting values (pure Python, no Django).

``parse_value`` turns wizard/form input (strings, lists of strings) or already-typed JSON values into the
canonical flat value of one setting (see the shared contract) or raises ``SettingValidationError`` with a
sentence an admin can act on. ``validate_firewall_rule`` checks one firewall rule as a whole and
``validate_policy_values`` a whole flat-values dict of one profile.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from policies.catalog import (
    FIREWALL_RULE_GROUP_ID,
    Catalog,
    Option,
    PolicyValues,
    Profile,
    SettingDef,
    Value,
    get_catalog,
)


class SettingValidationError(ValueError):
    """A value an admin must correct; ``message`` is shown beside the setting ``setting_id``."""

    def __init__(self, setting_id: str, message: str, *, rule_index: int | None = None) -> None:
        super().__init__(f"{setting_id}: {message}" if setting_id else message)
        self.setting_id = setting_id
        self.message = message
        self.rule_index = rule_index  # which firewall rule (0-based) when the setting is a rule field


class RuleValidationError(SettingValidationError):
    """A firewall rule with problems; ``errors`` holds (child setting id, message) for each field."""

    def __init__(
        self,
        errors: list[tuple[str, str]],
        *,
        setting_id: str = FIREWALL_RULE_GROUP_ID,
        rule_index: int | None = None,
    ) -> None:
        self.errors = list(errors)
        summary = " ".join(message for _, message in self.errors)
        super().__init__(setting_id, summary or "The firewall rule isn't valid.", rule_index=rule_index)


# --------------------------------------------------------------------------------------------------------------
# helpers


def _name(setting: SettingDef) -> str:
    return setting.display_name or setting.id


def _is_blank(raw: object) -> bool:
    """Not configured: None, an empty/blank string or an empty list."""
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, list | tuple):
        return all(isinstance(item, str) and not item.strip() for item in raw)
    return False


def _short(label: str, limit: int = 48) -> str:
    label = " ".join(label.split())
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _choices_text(setting: SettingDef) -> str:
    return "; ".join(f"{option.value} ({_short(option.label)})" for option in setting.options)


def _is_warn(option: Option) -> bool:
    return option.label.strip().lower() == "warn" or str(option.value).endswith("=6")


def is_off(option_value: object) -> bool:
    """ASR rule value "GUID=0" (Off)."""
    return isinstance(option_value, str) and option_value.endswith("=0")


# --------------------------------------------------------------------------------------------------------------
# semantic validators for strings / string-collection elements: (value) -> canonical value, ValueError(message)

_ILLEGAL_PATH_CHARS = set('<>"|') | {chr(c) for c in range(32)}
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_UNC = re.compile(r"^\\\\[^\\/]+[\\/][^\\/]+")
_ENV = re.compile(r"^%[A-Za-z_][A-Za-z0-9_()# .{}-]*%(?:[\\/]|$)")
_GUID = re.compile(r"^\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?$")

# Remote address keywords of the Firewall CSP (RemoteAddressRanges), matched case-insensitively.
FIREWALL_ADDRESS_KEYWORDS = (
    "Defaultgateway",
    "DHCP",
    "DNS",
    "WINS",
    "Intranet",
    "RmtIntranet",
    "Internet",
    "Ply2Renders",
    "LocalSubnet",
)
_KEYWORDS = {keyword.lower() for keyword in FIREWALL_ADDRESS_KEYWORDS}


def validate_windows_path(value: str, *, allow_posix: bool = False) -> str:
    if allow_posix and value.startswith("/"):
        if "\x00" in value:
            raise ValueError(f"“{value}” contains a character that isn't allowed in a path.")
        return value
    if not (_DRIVE.match(value) or _UNC.match(value) or _ENV.match(value)):
        starts = ["a drive letter (C:\\…)", "a network share (\\\\server\\share)"]
        starts.append("an environment variable such as %ProgramFiles%")
        if allow_posix:
            starts.append("/ (macOS and Linux)")
        raise ValueError(
            f"“{value}” isn't a full path. Start it with {', '.join(starts[:-1])} or {starts[-1]}."
        )
    bad = sorted({c for c in value if c in _ILLEGAL_PATH_CHARS})
    if bad or ":" in value[2:]:
        shown = " ".join(repr(c)[1:-1] for c in bad) or ":"
        raise ValueError(f"“{value}” contains characters that aren't allowed in a Windows path ({shown}).")
    return value


def validate_path(value: str) -> str:
    return validate_windows_path(value)


def validate_exclusion_path(value: str) -> str:
    """Antivirus path exclusions; the profile also targets macOS and Linux, so absolute POSIX paths pass."""
    return validate_windows_path(value, allow_posix=True)


def validate_extension(value: str) -> str:
    core = value[1:] if value.startswith(".") else value
    if not core:
        raise ValueError("Enter a file extension such as .log or log.")
    if any(c in core for c in "\\/"):
        raise ValueError(f"“{value}” looks like a path. Enter only the extension, such as .log.")
    if any(c in core for c in ':<>"|') or any(c.isspace() for c in core):
        raise ValueError(f"“{value}” isn't a file extension. Enter one extension per entry, such as .log.")
    return value


def validate_process(value: str) -> str:
    if value.startswith("/"):
        validate_windows_path(value, allow_posix=True)
        if value.endswith("/"):
            raise ValueError(f"“{value}” is a folder. Enter the process's executable path.")
        return value
    if "\\" in value or "/" in value:
        validate_windows_path(value)
        file_name = re.split(r"[\\/]", value)[-1]
    else:
        if any(c in value for c in ':<>"|'):
            raise ValueError(f"“{value}” contains characters that aren't allowed in a file name.")
        file_name = value
    if not re.fullmatch(r".+\.[A-Za-z0-9*?]+", file_name):
        raise ValueError(
            f"“{value}” doesn't end with an executable file name. Enter a process name such as notepad.exe or a"
            " full path such as C:\\Program Files\\App\\app.exe."
        )
    return value


def validate_port_range(value: str) -> str:
    match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", value)
    if not match:
        raise ValueError(
            f"“{value}” isn't a port or a port range. Enter a port such as 443 or a range such as 1000-2000."
        )
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    for port in (low, high):
        if not 1 <= port <= 65535:
            raise ValueError(f"Port {port} in “{value}” is out of range; ports go from 1 to 65535.")
    if low > high:
        raise ValueError(
            f"The range “{value}” starts after it ends; write the lower port first ({high}-{low})."
        )
    return str(low) if match.group(2) is None else f"{low}-{high}"


def _address(value: str) -> str:
    if "-" in value:
        start_text, end_text = (part.strip() for part in value.split("-", 1))
        try:
            start, end = ipaddress.ip_address(start_text), ipaddress.ip_address(end_text)
        except ValueError:
            raise ValueError(
                f"“{value}” isn't a valid address range; write it as start-end, e.g. 10.0.0.1-10.0.0.50."
            ) from None
        if start.version != end.version:
            raise ValueError(f"The range “{value}” mixes IPv4 and IPv6 addresses.")
        if int(start) > int(end):
            raise ValueError(f"The range “{value}” starts after it ends; write the lower address first.")
        return f"{start_text}-{end_text}"
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"“{value}” isn't an IP address, subnet (10.0.0.0/24 or 10.0.0.0/255.255.255.0) or range (a-b)."
        ) from None
    return value


def validate_local_address(value: str) -> str:
    if value == "*":
        return value
    return _address(value)


def validate_remote_address(value: str) -> str:
    if value == "*" or value.lower() in _KEYWORDS:
        return value
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", value):
        raise ValueError(
            f"“{value}” isn't a keyword the Firewall CSP accepts. Use an address or one of: *, "
            + ", ".join(FIREWALL_ADDRESS_KEYWORDS)
            + "."
        )
    return _address(value)


def validate_icmp(value: str) -> str:
    if value == "*":
        return value
    match = re.fullmatch(r"(\d{1,3}):(\d{1,3}|\*)", value)
    if not match:
        raise ValueError(
            f"“{value}” isn't an ICMP type and code. Write type:code, such as 3:4 or 3:* (any code), or * for all."
        )
    if int(match.group(1)) > 255 or (match.group(2) != "*" and int(match.group(2)) > 255):
        raise ValueError(f"“{value}”: ICMP types and codes go from 0 to 255.")
    return value


def validate_guid(value: str) -> str:
    match = _GUID.match(value)
    if not match:
        raise ValueError(f"“{value}” isn't a GUID such as 5f1d3c2a-9b7e-4c1d-8a2b-3c4d5e6f7a8b.")
    return match.group(1)


def validate_service_name(value: str) -> str:
    if any(c in value for c in "\\/"):
        raise ValueError(
            f"“{value}” isn't a service name. Enter the service's short name (see Get-Service), not a path."
        )
    return value


def validate_rule_identifier(value: str) -> str:
    if "/" in value:
        raise ValueError("The rule identifier can't contain a forward slash (/).")
    return value


_Validator = Callable[[str], str]


class _Kind:
    """How a string setting's values are checked, split and deduplicated."""

    def __init__(
        self,
        validate: _Validator | None = None,
        *,
        comma_separated: bool = False,
        dedupe_key: Callable[[str], str] = lambda v: v,
        sole_token: str | None = None,
        accepts_ints: bool = False,
    ) -> None:
        self.validate = validate
        self.comma_separated = comma_separated
        self.dedupe_key = dedupe_key
        self.sole_token = sole_token
        self.accepts_ints = accepts_ints


def _lower(value: str) -> str:
    return value.lower()


_GENERIC = _Kind()
_PATH = _Kind(validate_path, dedupe_key=_lower)
_KINDS: tuple[tuple[tuple[str, ...], _Kind], ...] = (
    (
        ("_localportranges", "_remoteportranges"),
        _Kind(validate_port_range, comma_separated=True, accepts_ints=True),
    ),
    (
        ("_remoteaddressranges",),
        _Kind(validate_remote_address, comma_separated=True, dedupe_key=_lower, sole_token="*"),
    ),
    (
        ("_localaddressranges",),
        _Kind(validate_local_address, comma_separated=True, dedupe_key=_lower, sole_token="*"),
    ),
    (("_icmptypesandcodes",), _Kind(validate_icmp, comma_separated=True, sole_token="*")),
    (("_remoteaddressdynamickeywords",), _Kind(validate_guid, comma_separated=True, dedupe_key=_lower)),
    (("_excludedextensions",), _Kind(validate_extension, dedupe_key=lambda v: v.lower().lstrip("."))),
    (("_excludedprocesses",), _Kind(validate_process, dedupe_key=_lower)),
    (("_excludedpaths",), _Kind(validate_exclusion_path, dedupe_key=_lower)),
    (
        (
            "_perruleexclusions",
            "_attacksurfacereductiononlyexclusions",
            "_controlledfolderaccessallowedapplications",
            "_controlledfolderaccessprotectedfolders",
            "_app_filepath",
            "_logfilepath",
        ),
        _PATH,
    ),
    (("_app_servicename",), _Kind(validate_service_name)),
    (("_firewallrulename",), _Kind(validate_rule_identifier)),
)


def _kind(setting: SettingDef) -> _Kind:
    for suffixes, kind in _KINDS:
        if setting.id.endswith(suffixes):
            return kind
    return _GENERIC


# --------------------------------------------------------------------------------------------------------------
# parse_value


def _parse_choice(setting: SettingDef, raw: object) -> int | str:
    candidate = ("true" if raw else "false") if isinstance(raw, bool) else raw
    option = setting.option_for(candidate)
    if option is None and isinstance(candidate, str):
        text = candidate.strip().lower()
        option = next(
            (o for o in setting.options if str(o.value).lower() == text or o.item_id.lower() == text), None
        )
    if option is None:
        raise SettingValidationError(
            setting.id,
            f"“{raw}” isn't an option of “{_name(setting)}”. Choose one of: {_choices_text(setting)}.",
        )
    if setting.supports_warn is False and _is_warn(option):
        raise SettingValidationError(
            setting.id,
            f"“{_name(setting)}” doesn't support Warn mode. Choose Block, Audit or Off instead.",
        )
    return option.value


def _parse_choice_collection(setting: SettingDef, raw: object) -> list[int | str]:
    items = raw if isinstance(raw, list | tuple) else [raw]
    result: list[int | str] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        value = _parse_choice(setting, item)
        if value not in result:
            result.append(value)
    if not result:
        raise SettingValidationError(setting.id, f"Select at least one option for “{_name(setting)}”.")
    return result


def _parse_integer(setting: SettingDef, raw: object) -> int:
    value: int | None = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif (isinstance(raw, float) and raw.is_integer()) or (
        isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw)
    ):
        value = int(raw)
    if value is None:
        raise SettingValidationError(
            setting.id, f"“{_name(setting)}” must be a whole number; “{raw}” isn't one."
        )
    low, high = setting.min, setting.max
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            rule = f"between {low} and {high}"
        elif low is not None:
            rule = f"at least {low}"
        else:
            rule = f"at most {high}"
        raise SettingValidationError(
            setting.id, f"“{_name(setting)}” must be {rule}; {value} is out of range."
        )
    return value


def _check_text(setting: SettingDef, value: str, kind: _Kind) -> str:
    if setting.max_length is not None and len(value) > setting.max_length:
        raise SettingValidationError(
            setting.id,
            f"“{_short(value, 40)}” is too long for “{_name(setting)}”: at most {setting.max_length} characters.",
        )
    if setting.input_validation and not re.fullmatch(setting.input_validation, value):
        extra = ""
        if setting.input_validation == "^[^|=>]+$":
            extra = " It can't contain |, = or >."
        raise SettingValidationError(
            setting.id, f"“{_short(value, 40)}” isn't accepted by “{_name(setting)}”.{extra}"
        )
    if kind.validate is not None:
        try:
            return kind.validate(value)
        except ValueError as exc:
            raise SettingValidationError(setting.id, str(exc)) from None
    return value


def _parse_string(setting: SettingDef, raw: object) -> str:
    if not isinstance(raw, str):
        raise SettingValidationError(setting.id, f"“{_name(setting)}” must be text.")
    value = raw.strip()
    if not value:
        raise SettingValidationError(
            setting.id, f"Enter a value for “{_name(setting)}” or leave it Not configured."
        )
    return _check_text(setting, value, _kind(setting))


def _collection_items(setting: SettingDef, raw: object, kind: _Kind) -> list[str]:
    if isinstance(raw, str):
        raw_items: Iterable[object] = raw.splitlines()
    elif isinstance(raw, list | tuple):
        raw_items = raw
    elif kind.accepts_ints and isinstance(raw, int) and not isinstance(raw, bool):
        raw_items = [raw]
    else:
        raise SettingValidationError(setting.id, f"“{_name(setting)}” must be a list of values.")
    items: list[str] = []
    for item in raw_items:
        if kind.accepts_ints and isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise SettingValidationError(
                setting.id, f"Every entry of “{_name(setting)}” must be text; {item!r} isn't."
            )
        parts = item.split(",") if kind.comma_separated else [item]
        items.extend(part.strip() for part in parts if part.strip())
    return items


def _parse_string_collection(setting: SettingDef, raw: object) -> list[str]:
    kind = _kind(setting)
    items = _collection_items(setting, raw, kind)
    if not items:
        raise SettingValidationError(setting.id, f"Enter at least one value for “{_name(setting)}”.")
    result: list[str] = []
    seen: set[str] = set()
    for item in items:
        value = _check_text(setting, item, kind)
        key = kind.dedupe_key(value)
        if key not in seen:
            seen.add(key)
            result.append(value)
    if kind.sole_token is not None and kind.sole_token in result and len(result) > 1:
        raise SettingValidationError(
            setting.id,
            f"“{kind.sole_token}” (any) must be the only entry of “{_name(setting)}”; remove the others.",
        )
    return result


def parse_value(setting: SettingDef, raw: object) -> Value:
    """The canonical flat value of ``setting`` for ``raw`` or ``SettingValidationError``."""
    if raw is None:
        raise SettingValidationError(
            setting.id, f"Enter a value for “{_name(setting)}” or leave it Not configured."
        )
    if setting.type == "choice":
        return _parse_choice(setting, raw)
    if setting.type == "choice_collection":
        return _parse_choice_collection(setting, raw)
    if setting.type == "integer":
        return _parse_integer(setting, raw)
    if setting.type == "string":
        return _parse_string(setting, raw)
    if setting.type == "string_collection":
        return _parse_string_collection(setting, raw)
    if setting.is_instance_collection and setting.is_managed_config:
        return _parse_managed_items(setting, raw)
    if setting.is_instance_collection:
        return _parse_rules(setting, raw)
    if setting.is_group:
        raise SettingValidationError(
            setting.id, f"“{_name(setting)}” is a group: configure the settings inside it instead."
        )
    raise SettingValidationError(
        setting.id, f"“{_name(setting)}” has a type this console can't edit ({setting.type})."
    )


# --------------------------------------------------------------------------------------------------------------
# firewall rules

_TCP_UDP = (6, 17)
_ICMP = (1, 58)


def _rule_child_id(group: SettingDef, key: object) -> str | None:
    if not isinstance(key, str):
        return None
    if key in group.children:
        return key
    candidate = f"{group.id}_{key}"
    return candidate if candidate in group.children else None


def _rule_label(rule: Mapping[str, Any], index: int) -> str:
    name = None
    if isinstance(rule, Mapping):
        name = rule.get(f"{FIREWALL_RULE_GROUP_ID}_name", rule.get("name"))
    return f"Rule {index + 1} (“{name}”)" if isinstance(name, str) and name.strip() else f"Rule {index + 1}"


def validate_firewall_rule(rule: Mapping[str, Any], *, catalog: Catalog | None = None) -> dict[str, Value]:
    """The cleaned rule (child setting id -> value) or ``RuleValidationError`` listing each field's problem.

    Keys are the children's full setting ids (their suffix after the group id, e.g. ``name``, is accepted too).
    """
    catalog = catalog or get_catalog()
    group = catalog.setting(FIREWALL_RULE_GROUP_ID)
    if not isinstance(rule, Mapping):
        raise RuleValidationError([(group.id, "A firewall rule must be a set of fields (a JSON object).")])
    errors: list[tuple[str, str]] = []
    clean: dict[str, Value] = {}
    for key, raw in rule.items():
        child_id = _rule_child_id(group, key)
        if child_id is None:
            errors.append((str(key), f"“{key}” isn't a field of a firewall rule."))
            continue
        if _is_blank(raw):
            continue
        try:
            clean[child_id] = parse_value(catalog.setting(child_id), raw)
        except SettingValidationError as exc:
            errors.append((child_id, exc.message))

    failed = {child_id for child_id, _ in errors}
    prefix = group.id + "_"
    name_id = prefix + "name"
    if name_id not in clean and name_id not in failed:
        errors.append((name_id, "Enter a name for the rule."))

    protocol_id = prefix + "protocol"
    if protocol_id not in failed:
        protocol = clean.get(protocol_id)
        for port_id in (prefix + "localportranges", prefix + "remoteportranges"):
            if port_id in clean and protocol not in _TCP_UDP:
                errors.append(
                    (
                        port_id,
                        "Port ranges can only be used when Protocol is TCP (6) or UDP (17). Set the protocol "
                        "or clear the ports.",
                    )
                )
        icmp_id = prefix + "icmptypesandcodes"
        if icmp_id in clean and protocol not in _ICMP:
            errors.append(
                (icmp_id, "ICMP types and codes can only be used when Protocol is ICMPv4 (1) or ICMPv6 (58).")
            )

    service_id = prefix + "app_servicename"
    if service_id in clean:
        app_id = prefix + "policyappid"
        if app_id in clean:
            message = "Policy App Id and Service Name can't be used in the same rule; clear one of them."
            errors.append((app_id, message))
            errors.append((service_id, message))
        users_id = prefix + "localuserauthorizedlist"
        if users_id in clean:
            errors.append(
                (users_id, "Local User Authorized List can't be used in a rule that targets a service.")
            )

    if errors:
        raise RuleValidationError(errors)
    return clean


def _parse_rules(setting: SettingDef, raw: object) -> list[dict[str, Value]]:
    if not isinstance(raw, list | tuple):
        raise SettingValidationError(setting.id, "Firewall rules must be a list of rules.")
    rules: list[dict[str, Value]] = []
    problems: list[tuple[str, str]] = []
    for index, rule in enumerate(raw):
        try:
            rules.append(validate_firewall_rule(rule))
        except RuleValidationError as exc:
            label = _rule_label(rule, index)
            problems.extend((child_id, f"{label}: {message}") for child_id, message in exc.errors)
    if problems:
        raise RuleValidationError(problems, setting_id=setting.id)
    if not rules:
        raise SettingValidationError(setting.id, "Add at least one firewall rule.")
    return rules


# --------------------------------------------------------------------------------------------------------------
# macOS / Linux list settings (exclusions, threat type settings, device tags): lists of objects

_EXCLUSION_FIELDS = {
    "excludedPath": ("path", "isDirectory"),
    "excludedFileExtension": ("extension",),
    "excludedFileName": ("name",),
}
_EXCLUSION_TYPE_LABEL = {
    "excludedPath": "Path",
    "excludedFileExtension": "File extension",
    "excludedFileName": "Process name",
}


def item_noun(group: SettingDef) -> str:
    """What one element of a macOS / Linux list is called in messages."""
    key = group.managed_key
    return {"exclusions": "Exclusion", "threatTypeSettings": "Threat type setting", "tags": "Tag"}.get(
        key, "Entry"
    )


def item_child_id(group: SettingDef, key: object, catalog: Catalog) -> str | None:
    """The child setting id for ``key``: the full id, the managed-configuration key (``$type``, ``path``) or the
    id's suffix (``isdirectory``)."""
    if not isinstance(key, str):
        return None
    if key in group.children:
        return key
    for child_id in group.children:
        child = catalog.get(child_id)
        if child is not None and (child.managed_key == key or child_id.lower().endswith("_" + key.lower())):
            return child_id
    return None


def _posix_path(value: str, *, what: str, wildcards: bool) -> str:
    if not value.startswith("/"):
        raise ValueError(f"“{_short(value)}” isn't a full path: {what} on macOS and Linux start with /.")
    if "\x00" in value or "\\" in value:
        raise ValueError(f"“{_short(value)}” contains a character that isn't allowed in a path.")
    if not wildcards and any(c in value for c in "*?"):
        raise ValueError(
            f"“{_short(value)}” has a wildcard: global exclusions (AV+EDR) don't support * or ?; enter the exact "
            "path."
        )
    return value


def validate_managed_item(
    group: SettingDef, item: object, *, catalog: Catalog | None = None
) -> dict[str, Value]:
    """One element of a macOS / Linux list setting, cleaned (child setting id -> value), or
    ``RuleValidationError`` with (child id, message) per problem."""
    catalog = catalog or get_catalog()
    noun = item_noun(group)
    if not isinstance(item, Mapping):
        raise RuleValidationError(
            [(group.id, f"{noun}: must be a set of fields (a JSON object).")], setting_id=group.id
        )
    errors: list[tuple[str, str]] = []
    clean: dict[str, Value] = {}
    by_key: dict[str, str] = {}
    for key, raw in item.items():
        child_id = item_child_id(group, key, catalog)
        if child_id is None:
            errors.append((group.id, f"“{key}” isn't a field of {group.display_name}."))
            continue
        child = catalog.setting(child_id)
        by_key[child.managed_key] = child_id
        if _is_blank(raw):
            continue
        if isinstance(raw, str) and child.type == "string":
            raw = raw.strip()
        try:
            clean[child_id] = parse_value(child, raw)
        except SettingValidationError as exc:
            errors.append((child_id, exc.message))
    keys = {catalog.setting(cid).managed_key: cid for cid in group.children if catalog.get(cid) is not None}
    failed = {cid for cid, _ in errors}
    is_global = group.managed_key_path == "exclusionSettings.exclusions"

    def need(key: str, message: str) -> None:
        cid = keys.get(key)
        if cid is not None and cid not in clean and cid not in failed:
            errors.append((cid, message))

    if "$type" in keys:  # exclusions
        type_id = keys["$type"]
        kind = clean.get(type_id)
        if kind is None and type_id not in failed:
            errors.append(
                (type_id, "Choose the type of the exclusion (Path, File extension or Process name).")
            )
        if isinstance(kind, str):
            wanted = _EXCLUSION_FIELDS.get(kind, ())
            for key, cid in keys.items():
                if key in ("$type", *wanted) or cid not in clean:
                    continue
                errors.append(
                    (
                        cid,
                        f"“{catalog.setting(cid).display_name}” doesn't apply to a {_EXCLUSION_TYPE_LABEL.get(kind, kind)} "
                        "exclusion; clear it.",
                    )
                )
                del clean[cid]
            need(
                wanted[0] if wanted else "",
                f"Enter the {_EXCLUSION_TYPE_LABEL.get(kind, kind).lower()} to exclude.",
            )
            checks = {
                "path": lambda v: _posix_path(v, what="paths", wildcards=not is_global),
                "extension": validate_extension,
            }
            if kind == "excludedFileName":
                checks["name"] = (
                    (lambda v: _posix_path(v, what="processes in global exclusions", wildcards=False))
                    if is_global
                    else (
                        lambda v: v if "\x00" not in v else _posix_path(v, what="processes", wildcards=True)
                    )
                )
            for key, check in checks.items():
                cid = keys.get(key)
                if cid in clean and isinstance(clean[cid], str):
                    try:
                        clean[cid] = check(clean[cid])
                    except ValueError as exc:
                        errors.append((cid, str(exc)))
                        del clean[cid]
    else:  # key / value pairs: threat type settings, device tags
        need("key", "Choose the key.")
        need("value", "Enter the value." if group.managed_key == "tags" else "Choose the value.")
    if errors:
        raise RuleValidationError(errors, setting_id=group.id)
    return {cid: clean[cid] for cid in group.children if cid in clean}


def _parse_managed_items(
    setting: SettingDef, raw: object, catalog: Catalog | None = None
) -> list[dict[str, Value]]:
    """A whole macOS / Linux list setting: every element checked; identical elements kept once; a key given twice
    (threat type settings) is refused. One ``SettingValidationError`` naming each element's problems."""
    noun = item_noun(setting)
    if not isinstance(raw, list | tuple):
        raise SettingValidationError(setting.id, f"“{_name(setting)}” must be a list of entries.")
    items: list[dict[str, Value]] = []
    problems: list[str] = []
    for index, element in enumerate(raw):
        try:
            clean = validate_managed_item(setting, element, catalog=catalog)
        except RuleValidationError as exc:
            problems.extend(f"{noun} {index + 1}: {message}" for _, message in exc.errors)
            continue
        if clean not in items:
            items.append(clean)
    if setting.managed_key == "threatTypeSettings":
        seen: dict[object, int] = {}
        for index, item in enumerate(items):
            key = next((v for k, v in item.items() if k.endswith("_key")), None)
            if key in seen:
                problems.append(
                    f"{noun} {index + 1}: “{key}” is already set by {noun.lower()} {seen[key] + 1}; set each threat type once."
                )
            seen.setdefault(key, index)
    if problems:
        raise SettingValidationError(setting.id, " ".join(problems))
    if not items:
        raise SettingValidationError(
            setting.id, f"Add at least one entry to “{_name(setting)}” or leave it Not configured."
        )
    return items


# --------------------------------------------------------------------------------------------------------------
# whole policies


def validate_values_with(
    lookup: Callable[[str], SettingDef | None],
    scope: str,
    values: Mapping[str, object],
    catalog: Catalog | None = None,
) -> tuple[PolicyValues, list[SettingValidationError]]:
    """``validate_policy_values`` over any id lookup (``scope`` names it in messages, e.g. "the X profile")."""
    clean: PolicyValues = {}
    errors: list[SettingValidationError] = []
    for key, raw in values.items():
        setting = lookup(key) if isinstance(key, str) else None
        if setting is None:
            errors.append(SettingValidationError(str(key), f"“{key}” isn't a setting of {scope}."))
            continue
        if _is_blank(raw):
            continue  # Not configured
        if not setting.is_value_key:
            errors.append(
                SettingValidationError(
                    key, f"“{_name(setting)}” is a group: configure the settings inside it instead."
                )
            )
            continue
        group = lookup(setting.parent_id) if setting.parent_id else None
        if group is not None and group.is_instance_collection:
            errors.append(
                SettingValidationError(
                    key,
                    f"“{_name(setting)}” is a field of “{_name(group)}”: set it inside one of its entries.",
                )
            )
            continue
        if setting.is_instance_collection and setting.is_managed_config:
            try:
                clean[key] = _parse_managed_items(setting, raw, catalog)
            except SettingValidationError as exc:
                errors.append(exc)
            continue
        if setting.is_instance_collection:
            if not isinstance(raw, list | tuple):
                errors.append(SettingValidationError(key, "Firewall rules must be a list of rules."))
                continue
            rules = []
            for index, rule in enumerate(raw):
                try:
                    rules.append(validate_firewall_rule(rule, catalog=catalog))
                except RuleValidationError as exc:
                    label = _rule_label(rule, index)
                    errors.extend(
                        SettingValidationError(child_id, f"{label}: {message}", rule_index=index)
                        for child_id, message in exc.errors
                    )
            if rules:
                clean[key] = rules
            continue
        try:
            clean[key] = parse_value(setting, raw)
        except SettingValidationError as exc:
            errors.append(exc)

    # Per-rule ASR exclusions only apply to a rule in Block, Audit or Warn mode.
    for key in list(clean):
        setting = lookup(key)
        parent = lookup(setting.parent_id) if setting and setting.parent_id else None
        if parent is None or parent.type != "choice":
            continue
        rule_value = clean.get(parent.id)
        if rule_value is None or is_off(rule_value):
            state = "Off" if rule_value is not None else "Not configured"
            errors.append(
                SettingValidationError(
                    key,
                    f"Exclusions for “{_name(parent)}” only apply when the rule is set to Block, Audit or Warn; "
                    f"the rule is {state}.",
                )
            )
            del clean[key]
    return clean, errors


def validate_policy_values(
    profile: Profile, values: Mapping[str, object], *, catalog: Catalog | None = None
) -> tuple[PolicyValues, list[SettingValidationError]]:
    """Clean values and every problem of a whole flat-values dict of ``profile``.

    Blank values (None, "", []) mean Not configured and are dropped. Ids that aren't settings of the profile,
    group parents that are not value keys and invalid values are errors; valid entries are kept in the clean
    values even when others fail (invalid firewall rules are left out, valid ones kept).
    """
    return validate_values_with(profile.get, f"the {profile.name} profile", values, catalog)
