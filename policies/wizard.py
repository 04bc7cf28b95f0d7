"""The Create policy wizard (and the edit pages that reuse its steps): drafts, editor rows, reading form posts.

A draft (PolicyDraft) holds everything entered so far and is saved at every step, so the URL (which carries the
draft id) can be reloaded or opened in a second tab without losing anything. Nothing here writes a policy: the
Review step hands the draft to ``policies.services``.

Draft data::

    {"mode": "create" | "basics" | "settings" | "assignments", "profile": name, "platform": "windows",
     "name": str, "description": str, "values": flat values, "assignments": Assignments.as_dict(),
     "base_version": int (edits), "done": [steps completed]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from console.models import ScopeTag
from devices.models import Group
from devices.scope import targetable_groups
from policies import services
from policies.catalog import FIREWALL_RULE_GROUP_ID, Profile, SettingDef, get_catalog
from policies.exports import Problem
from policies.models import AssignmentFilter, Policy, PolicyDraft
from policies.preview import NEW_POLICY_ID, policy_input
from policies.validation import RuleValidationError, validate_firewall_rule

CREATE = "create"
EDIT_SECTIONS = ("basics", "settings", "assignments")
STEP_LABELS = {
    "basics": "Basics",
    "settings": "Configuration settings",
    "assignments": "Assignments",
    "review": "Review + create",
}
UNSUPPORTED_IN_MDE = "Not supported by Microsoft Defender for Endpoint security settings management"
INTUNE_ONLY_PROFILE = (
    "This profile only applies to devices enrolled in Intune. Devices managed by Microsoft Defender for "
    "Endpoint security settings management don't process it."
)
GROUP_LIST_CAP = 300


def steps_for(mode: str) -> list[str]:
    return ["basics", "settings", "assignments", "review"] if mode == CREATE else [mode, "review"]


def step_label(mode: str, step: str) -> str:
    if step == "review":
        return "Review + create" if mode == CREATE else "Review + save"
    return STEP_LABELS[step]


# --------------------------------------------------------------------------------------------------------------
# drafts


def state(draft: PolicyDraft) -> dict[str, Any]:
    data = dict(draft.data or {})
    data.setdefault("mode", CREATE)
    data.setdefault("name", "")
    data.setdefault("description", "")
    data.setdefault("values", {})
    data.setdefault("assignments", services.Assignments().as_dict())
    data.setdefault("done", [])
    return data


def profile_of(draft: PolicyDraft) -> Profile:
    return get_catalog().profile(state(draft)["profile"])


DRAFT_MAX_AGE = timedelta(days=30)


def new_create_draft(owner, profile: Profile, platform: str) -> PolicyDraft:
    # Abandoned wizards are dropped after a month (a cheap delete, only when someone starts a new one).
    PolicyDraft.objects.filter(updated_at__lt=timezone.now() - DRAFT_MAX_AGE).delete()
    return PolicyDraft.objects.create(
        owner=owner,
        step="basics",
        data={
            "mode": CREATE,
            "profile": profile.name,
            "platform": platform,
            "name": "",
            "description": "",
            "values": {},
            "assignments": services.Assignments().as_dict(),
            "done": [],
        },
    )


def _policy_data(policy: Policy) -> dict[str, Any]:
    return {
        "profile": policy.profile,
        "platform": policy.platform,
        "name": policy.name,
        "description": policy.description,
        "values": policy.values,
        "assignments": services.current_assignments(policy).as_dict(),
        "scope_tags": sorted(policy.scope_tags.values_list("pk", flat=True)),
        "base_version": policy.version,
    }


def edit_draft(owner, policy: Policy, section: str) -> PolicyDraft:
    """The user's open edit draft of this section if it still starts from the current version, else a new one."""
    if section not in EDIT_SECTIONS:
        raise ValueError(section)
    for draft in PolicyDraft.objects.filter(owner=owner, policy=policy).order_by("-updated_at"):
        data = state(draft)
        if (
            data["mode"] == section
            and data.get("base_version") == policy.version
            and not data.get("finished")
        ):
            return draft
    return PolicyDraft.objects.create(
        owner=owner, policy=policy, step=section, data={"mode": section, "done": [], **_policy_data(policy)}
    )


def finish(draft: PolicyDraft, policy: Policy) -> None:
    """Mark the draft done instead of deleting it: its URLs then redirect to the policy (Back and reload after
    Create or Save never dead-end). Finished drafts go with the month-old ones."""
    data = state(draft)
    data["finished"] = True
    data.pop("typing", None)
    PolicyDraft.objects.filter(pk=draft.pk).update(policy=policy, data=data, updated_at=timezone.now())


def is_finished(draft: PolicyDraft) -> bool:
    return bool(state(draft).get("finished"))


def save_section(
    draft: PolicyDraft,
    updates: Mapping[str, Any],
    *,
    done: str | None = None,
    step: str,
    typed_in: str | None = None,
) -> PolicyDraft:
    """Merge ``updates`` into the draft under a row lock, so two tabs writing different steps both keep theirs.
    ``typed_in``: the place whose autosaved input these updates confirm (it is dropped)."""
    with transaction.atomic():
        locked = PolicyDraft.objects.select_for_update().get(pk=draft.pk)
        data = state(locked)
        data.update(updates)
        if typed_in and typed_in in (data.get("typing") or {}):
            data["typing"] = {k: v for k, v in data["typing"].items() if k != typed_in}
        if done and done not in data["done"]:
            data["done"] = [*data["done"], done]
        locked.data = data
        locked.step = step
        locked.save(update_fields=["data", "step", "updated_at"])
    return locked


# --------------------------------------------------------------------------------------------------------------
# What the admin has typed but not yet confirmed with Next/Save: kept in the draft as they type (debounced
# autosave), shown again on reload, and dropped once the step (or the rule) is saved or cancelled. It is raw
# input, never validated here, so a half-typed value is kept exactly as typed.

TYPING_PLACES = ("basics", "settings", "assignments")


def typing_place(value: str) -> str | None:
    """``basics``, ``settings``, ``assignments`` or ``rule:<new|index>``; anything else is refused (None)."""
    if value in TYPING_PLACES:
        return value
    if value.startswith("rule:") and (value[5:] == "new" or value[5:].isdigit()):
        return value
    return None


def typed(draft: PolicyDraft, place: str) -> dict[str, Any] | None:
    return (state(draft).get("typing") or {}).get(place)


def keep_typing(draft: PolicyDraft, place: str, raw: Mapping[str, Any]) -> None:
    """Store the raw input of ``place`` under a row lock (the step the admin is on doesn't change)."""
    with transaction.atomic():
        locked = PolicyDraft.objects.select_for_update().get(pk=draft.pk)
        data = state(locked)
        typing = data.get("typing") or {}
        # Settings post only the fields shown (a search narrows them): earlier input of the others stays.
        kept = {**typing.get(place, {}), **raw} if place == "settings" else dict(raw)
        data["typing"] = {**typing, place: kept}
        locked.data = data
        locked.save(update_fields=["data", "updated_at"])


def read_typing(draft: PolicyDraft, place: str, post) -> dict[str, Any]:
    """The raw input of ``place`` from a POST, with the same readers the steps use."""
    data = state(draft)
    if place == "basics":
        return {"name": post.get("name", ""), "description": post.get("description", "")}
    if place == "settings":
        return read_settings_post(profile_of(draft), post, data["values"])[1]
    if place == "assignments":
        return read_assignments_post(post, data["assignments"])
    return read_rule_post(post, {})[1]


def candidate(draft: PolicyDraft) -> Any:
    """The draft as the engine sees it (for the impact preview)."""
    data = state(draft)
    assignments = services.Assignments.coerce(data["assignments"])
    policy = draft.policy
    return policy_input(
        policy_id=policy.pk if policy else NEW_POLICY_ID,
        name=data["name"] or "This policy",
        profile=data["profile"],
        platform=data["platform"],
        values=data["values"],
        include=assignments.include,
        exclude=assignments.exclude,
        include_filters=assignments.row_filters(),
    )


def problems(draft: PolicyDraft) -> dict[str, list[Problem]]:
    """Problems per step of what the draft holds now (the Review step lists them with a link to the step)."""
    data = state(draft)
    profile = profile_of(draft)
    exclude_pk = draft.policy.pk if draft.policy else None
    found: dict[str, list[Problem]] = {}
    mode = data["mode"]
    if mode in (CREATE, "basics"):
        _, _, basics = services.check_basics(
            profile.policy_type, data["name"], data["description"], exclude_pk=exclude_pk
        )
        if mode == CREATE and (bad := services.platform_problem(profile, data["platform"])):
            basics.append(bad)
        found["basics"] = basics
    if mode in (CREATE, "settings"):
        found["settings"] = services.check_values(profile, data["values"])[1]
    if mode in (CREATE, "assignments"):
        found["assignments"] = services.check_assignments(data["assignments"], data["platform"])[1]
    return {step: items for step, items in found.items() if items}


def commit(draft: PolicyDraft, actor=None) -> Policy:
    """Create the policy (or save the edited section) from the draft; PolicyError when anything is wrong."""
    data = state(draft)
    mode = data["mode"]
    tags = data.get("scope_tags")  # None: not chosen yet (the creator's default; an edit keeps the tags)
    chosen = None if tags is None else list(ScopeTag.objects.filter(pk__in=tags))
    if mode == CREATE:
        return services.create_policy(
            data["profile"],
            data["platform"],
            data["name"],
            data["description"],
            data["values"],
            data["assignments"],
            actor,
            scope_tags=chosen,
        )
    policy = draft.policy
    if policy is None:
        raise services.PolicyError([Problem("policy", "The policy being edited no longer exists.")])
    expected = data.get("base_version")
    if mode == "basics":
        return services.update_basics(
            policy, data["name"], data["description"], actor, expected_version=expected, scope_tags=chosen
        )
    if mode == "settings":
        return services.update_settings(policy, data["values"], actor, expected_version=expected)
    return services.set_assignments(policy, data["assignments"], actor, expected_version=expected)


# --------------------------------------------------------------------------------------------------------------
# configuration settings editor


@dataclass
class OptionView:
    value: str
    label: str
    selected: bool = False
    disabled: bool = False
    note: str = ""


@dataclass
class FieldView:
    setting: SettingDef
    widget: str  # select | number | text | lines | checkboxes | rules
    value: Any = ""  # str, or list[str] for checkboxes
    options: list[OptionView] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    children: list[FieldView] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)  # firewall rules (widget "rules")
    rule_errors: dict[int, list[str]] = field(default_factory=dict)
    hint: str = ""
    # macOS / Linux list settings (widget "table"): the columns (child settings) and one row of cells per entry,
    # plus an empty row to add one.
    columns: list[SettingDef] = field(default_factory=list)
    table_rows: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.setting.id

    @property
    def dom_id(self) -> str:
        return "s-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.setting.id)

    @property
    def configured(self) -> bool:
        if self.widget == "rules":
            return bool(self.rules)
        if self.widget == "table":
            return bool(self.value)
        return bool(self.value)

    @property
    def unsupported(self) -> bool:
        return not self.setting.mde_supported

    @property
    def search_text(self) -> str:
        parts = [self.setting.display_name, self.setting.description[:300], self.setting.csp_path]
        parts += [child.setting.display_name for child in self.children]
        return " ".join(parts).lower()

    @property
    def all_errors(self) -> list[str]:
        return self.errors + [e for child in self.children for e in child.errors]


@dataclass
class CategoryView:
    name: str
    fields: list[FieldView]

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def configured(self) -> int:
        return sum(1 for f in self.fields if f.configured) + sum(
            1 for f in self.fields for c in f.children if c.configured
        )

    @property
    def total(self) -> int:
        return len(self.fields) + sum(len(f.children) for f in self.fields)

    @property
    def has_errors(self) -> bool:
        return any(f.all_errors or f.rule_errors for f in self.fields)


def raw_of(setting: SettingDef, value: Any) -> Any:
    """A stored flat value as the form shows it."""
    if setting.is_instance_collection and setting.is_managed_config:
        return value if isinstance(value, list) else []
    if value is None:
        return [] if setting.type == "choice_collection" else ""
    if setting.type == "choice_collection":
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if setting.type == "string_collection":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return str(value)


def _widget(setting: SettingDef) -> str:
    if setting.is_instance_collection and setting.is_managed_config:
        return "table"
    if setting.is_instance_collection:
        return "rules"
    return {
        "choice": "select",
        "integer": "number",
        "string": "text",
        "string_collection": "lines",
        "choice_collection": "checkboxes",
    }.get(setting.type, "text")


def _is_warn(label: str, value: object) -> bool:
    return label.strip().lower() == "warn" or str(value).endswith("=6")


def _hint(setting: SettingDef) -> str:
    if setting.type == "integer":
        if setting.min is not None and setting.max is not None:
            return f"{setting.min}–{setting.max}"
        if setting.min is not None:
            return f"At least {setting.min}"
    return ""


def field_view(setting: SettingDef, raw: Any, errors: list[str] | None = None) -> FieldView:
    widget = _widget(setting)
    view = FieldView(setting=setting, widget=widget, errors=list(errors or []), hint=_hint(setting))
    if widget == "select":
        current = str(raw) if raw not in (None, "") else ""
        view.value = current
        for option in setting.options:
            option_view = OptionView(str(option.value), option.label, selected=str(option.value) == current)
            if setting.supports_warn is False and _is_warn(option.label, option.value):
                option_view.disabled = not option_view.selected
                option_view.note = "not supported by this rule"
            view.options.append(option_view)
    elif widget == "checkboxes":
        chosen = [
            str(v) for v in (raw if isinstance(raw, list) else ([raw] if raw not in (None, "") else []))
        ]
        view.value = chosen
        view.options = [
            OptionView(str(o.value), o.label, selected=str(o.value) in chosen) for o in setting.options
        ]
    elif widget == "rules":
        view.rules = list(raw) if isinstance(raw, list) else []
    elif widget == "table":
        _table(view, raw)
    else:
        view.value = "" if raw is None else raw
    return view


def table_cell_name(group_id: str, row: int, child_id: str) -> str:
    return f"{group_id}__{row}__{child_id}"


def _table(view: FieldView, raw: Any) -> None:
    """The table editor of a macOS / Linux list setting (exclusions, threat type settings, device tags): one row
    per entry with a control per field, and an empty row to add an entry (as Intune's table editor)."""
    catalog = get_catalog()
    group = view.setting
    view.columns = [c for c in (catalog.get(cid) for cid in group.children) if c is not None]
    items = [item for item in raw if isinstance(item, Mapping)] if isinstance(raw, list) else []
    view.value = items
    for index, item in enumerate([*items, {}]):
        cells = []
        for child in view.columns:
            stored = item.get(child.id)
            text = (
                "" if stored is None else (str(stored).lower() if isinstance(stored, bool) else str(stored))
            )
            cells.append(
                {
                    "name": table_cell_name(group.id, index, child.id),
                    "label": child.display_name,
                    "value": text,
                    "options": [
                        (str(o.value).lower() if isinstance(o.value, bool) else str(o.value), o.label)
                        for o in child.options
                    ],
                    "hint": child.description[:160] if child.type == "string" else "",
                }
            )
        view.table_rows.append(cells)


def read_table_post(group: SettingDef, post) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(entries to validate, raw rows) of a table editor: empty rows and rows marked Remove are left out."""
    try:
        count = min(int(post.get(f"{group.id}__rows", "0")), 500)
    except ValueError:
        count = 0
    entries: list[dict[str, Any]] = []
    for index in range(count):
        if post.get(f"{group.id}__{index}__remove"):
            continue
        row = {cid: post.get(table_cell_name(group.id, index, cid), "") for cid in group.children}
        filled = {cid: value for cid, value in row.items() if isinstance(value, str) and value.strip()}
        if filled:
            entries.append(filled)
    return entries, entries


def _display_order(settings: list[SettingDef]) -> list[SettingDef]:
    """Alphabetical like Intune; each firewall profile's "Enable … Network Firewall" first, deprecated ones last."""
    return sorted(
        settings,
        key=lambda s: (
            not s.id.endswith("_enablefirewall"),
            s.display_name.startswith("[Deprecated]"),
            s.display_name.lower(),
            s.id,
        ),
    )


def settings_view(
    profile: Profile,
    values: Mapping[str, Any],
    *,
    raw: Mapping[str, Any] | None = None,
    errors: Mapping[str, list[str]] | None = None,
    rule_errors: Mapping[int, list[str]] | None = None,
    query: str = "",
) -> list[CategoryView]:
    """The editor: categories of fields, every field showing its stored value (or what was just posted)."""
    raw = raw or {}
    errors = errors or {}
    catalog = get_catalog()
    editable = [s for s in profile.settings if s.is_value_key and not s.hidden]
    nested = {
        s.id for s in editable if s.parent_id and (p := catalog.get(s.parent_id)) and p.type == "choice"
    }
    # Fields of a firewall rule or of a macOS / Linux list entry are edited inside their group's editor.
    firewall_children = {
        s.id
        for s in editable
        if s.parent_id == FIREWALL_RULE_GROUP_ID
        or (s.parent_id and (p := catalog.get(s.parent_id)) is not None and p.is_instance_collection)
    }

    def current(setting: SettingDef) -> Any:
        return raw[setting.id] if setting.id in raw else raw_of(setting, values.get(setting.id))

    by_category: dict[str, list[SettingDef]] = {}
    for setting in editable:
        if setting.id not in nested and setting.id not in firewall_children:
            by_category.setdefault(setting.category, []).append(setting)
    children_of: dict[str, list[SettingDef]] = {}
    for setting in editable:
        if setting.id in nested:
            children_of.setdefault(setting.parent_id or "", []).append(setting)

    needle = query.strip().lower()
    result: list[CategoryView] = []
    for name, settings in by_category.items():
        fields: list[FieldView] = []
        for setting in _display_order(settings):
            view = field_view(setting, current(setting), errors.get(setting.id))
            view.children = [
                field_view(c, current(c), errors.get(c.id)) for c in children_of.get(setting.id, [])
            ]
            if view.widget == "rules":
                view.rule_errors = dict(rule_errors or {})
            if needle and needle not in view.search_text and not view.all_errors:
                continue
            fields.append(view)
        if fields:
            result.append(CategoryView(name, fields))
    return result


def shown_ids(categories: list[CategoryView]) -> list[str]:
    ids = []
    for category in categories:
        for view in category.fields:
            if view.widget != "rules":
                ids.append(view.setting.id)
                ids += [child.setting.id for child in view.children]
    return ids


def read_settings_post(
    profile: Profile, post, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(merged values to validate, raw input of the shown fields). Settings not on the page keep their values."""
    merged: dict[str, Any] = dict(values)
    raw: dict[str, Any] = {}
    for setting_id in post.getlist("shown"):
        setting = profile.get(setting_id)
        if setting is not None and setting.is_instance_collection and setting.is_managed_config:
            entries, raw[setting_id] = read_table_post(setting, post)
            if entries:
                merged[setting_id] = entries
            else:
                merged.pop(setting_id, None)
            continue
        if setting is None or not setting.is_value_key or setting.is_instance_collection:
            continue  # a forged id: ignored, nothing of it is stored
        if setting.type == "choice_collection":
            value: Any = [v for v in post.getlist(setting_id) if v != ""]
        else:
            value = post.get(setting_id, "")
        raw[setting_id] = value
        if value in ("", []) or (isinstance(value, str) and not value.strip()):
            merged.pop(setting_id, None)
        else:
            merged[setting_id] = value
    return merged, raw


def errors_by_setting(items: list[Problem]) -> tuple[dict[str, list[str]], dict[int, list[str]]]:
    """Messages per setting id, and per firewall rule index."""
    by_setting: dict[str, list[str]] = {}
    by_rule: dict[int, list[str]] = {}
    for problem in items:
        if problem.rule_index is not None:
            by_rule.setdefault(problem.rule_index, []).append(problem.message)
        else:
            by_setting.setdefault(problem.field, []).append(problem.message)
    return by_setting, by_rule


# --------------------------------------------------------------------------------------------------------------
# configured settings, read-only (Review + create, the policy page)


@dataclass
class ConfiguredRow:
    setting: SettingDef
    text: str = ""
    items: list[str] = field(default_factory=list)
    children: list[ConfiguredRow] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)  # {"summary": {...}, "fields": [(label, text)]}

    @property
    def unsupported(self) -> bool:
        return not self.setting.mde_supported


def _configured_row(setting: SettingDef, value: Any) -> ConfiguredRow:
    row = ConfiguredRow(setting)
    if setting.is_instance_collection and setting.is_managed_config:
        catalog = get_catalog()
        for item in value if isinstance(value, list) else []:
            parts = []
            for child_id, child_value in item.items():
                child = catalog.get(child_id)
                if child is not None:
                    parts.append(f"{child.display_name}: {services.value_text(child, child_value)}")
            row.items.append("; ".join(parts))
    elif setting.is_instance_collection:
        catalog = get_catalog()
        for rule in value if isinstance(value, list) else []:
            fields = []
            for child_id, child_value in rule.items():
                child = catalog.get(child_id)
                if child is not None:
                    fields.append((child.display_name, services.value_text(child, child_value)))
            row.rules.append({"summary": rule_summary(rule), "fields": fields})
    elif setting.type in ("string_collection", "choice_collection") and isinstance(value, list):
        row.items = (
            [services.option_label(setting, v) for v in value]
            if setting.type == "choice_collection"
            else [str(v) for v in value]
        )
    else:
        row.text = services.value_text(setting, value)
    return row


def configured_view(profile: Profile, values: Mapping[str, Any]) -> list[tuple[str, list[ConfiguredRow]]]:
    """Only the configured settings, by category, with display names and option labels."""
    catalog = get_catalog()
    groups: dict[str, list[ConfiguredRow]] = {}
    children: dict[str, list[ConfiguredRow]] = {}
    parents: dict[str, ConfiguredRow] = {}
    for setting in _display_order([profile.setting(k) for k in values if profile.get(k) is not None]):
        row = _configured_row(setting, values[setting.id])
        parent = catalog.get(setting.parent_id) if setting.parent_id else None
        if parent is not None and parent.type == "choice":
            children.setdefault(parent.id, []).append(row)
            continue
        parents[setting.id] = row
        groups.setdefault(setting.category, []).append(row)
    for parent_id, rows in children.items():
        if parent_id in parents:
            parents[parent_id].children = rows
    order = {s.category: i for i, s in enumerate(profile.settings)}
    return sorted(groups.items(), key=lambda item: order.get(item[0], 0))


# --------------------------------------------------------------------------------------------------------------
# firewall rules editor

RULE_FIELD_ORDER = (
    "name",
    "description",
    "enabled",
    "direction",
    "action_type",
    "protocol",
    "localportranges",
    "remoteportranges",
    "icmptypesandcodes",
    "localaddressranges",
    "remoteaddressranges",
    "remoteaddressdynamickeywords",
    "app_filepath",
    "app_packagefamilyname",
    "policyappid",
    "app_servicename",
    "profiles",
    "interfacetypes",
    "edgetraversal",
    "localuserauthorizedlist",
)
RULE_HINTS = {
    "protocol": "0–255: 6 = TCP, 17 = UDP, 1 = ICMPv4, 58 = ICMPv6. Ports need TCP or UDP; ICMP types need ICMP.",
    "localportranges": "Ports or ranges, one per line or comma separated: 80, 443, 1000-2000.",
    "remoteportranges": "Ports or ranges, one per line or comma separated: 80, 443, 1000-2000.",
    "icmptypesandcodes": "type:code, one per line (3:4, 8:*), or * for all. Only with ICMP.",
    "localaddressranges": "IPv4/IPv6 addresses, subnets (10.0.0.0/24) or ranges (10.0.0.1-10.0.0.50), or *.",
    "remoteaddressranges": "Addresses, subnets, ranges, * or a keyword such as LocalSubnet, DNS, Internet.",
    "remoteaddressdynamickeywords": "Reusable group ids (GUIDs), one per line.",
    "policyappid": "Can't be combined with Service Name.",
    "app_servicename": "The service's short name (Get-Service). Can't be combined with Policy App Id.",
    "name": "Required. Unique within this policy.",
}


def rule_child(suffix: str) -> str:
    return f"{FIREWALL_RULE_GROUP_ID}_{suffix}"


def rule_fields(
    rule: Mapping[str, Any], *, raw: Mapping[str, Any] | None = None, errors=None
) -> list[FieldView]:
    catalog = get_catalog()
    raw = raw or {}
    errors = errors or {}
    views = []
    for suffix in RULE_FIELD_ORDER:
        setting = catalog.get(rule_child(suffix))
        if setting is None or setting.hidden:
            continue
        value = raw[setting.id] if setting.id in raw else raw_of(setting, rule.get(setting.id))
        view = field_view(setting, value, errors.get(setting.id))
        if suffix in RULE_HINTS:
            view.hint = RULE_HINTS[suffix]
        views.append(view)
    return views


def read_rule_post(post, existing: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rule to validate, raw input). Fields not shown in the editor (hidden ones) are kept from ``existing``."""
    catalog = get_catalog()
    rule: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    shown = set()
    for suffix in RULE_FIELD_ORDER:
        setting = catalog.get(rule_child(suffix))
        if setting is None or setting.hidden:
            continue
        shown.add(setting.id)
        if setting.type == "choice_collection":
            value: Any = [v for v in post.getlist(setting.id) if v]
        else:
            value = post.get(setting.id, "")
        raw[setting.id] = value
        if value not in ("", []) and not (isinstance(value, str) and not value.strip()):
            rule[setting.id] = value
    for key, value in existing.items():
        if key not in shown:
            rule[key] = value
    return rule, raw


def validate_rule(
    rule: Mapping[str, Any], others: list[Mapping[str, Any]]
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """The clean rule or the errors per field (Name must also be unique within the policy)."""
    errors: dict[str, list[str]] = {}
    clean = None
    try:
        clean = validate_firewall_rule(rule)
    except RuleValidationError as exc:
        for child_id, message in exc.errors:
            errors.setdefault(child_id, []).append(message)
    name_id = rule_child("name")
    name = str(rule.get(name_id, "")).strip().lower()
    if name and any(str(other.get(name_id, "")).strip().lower() == name for other in others):
        errors.setdefault(name_id, []).append(
            "Another rule in this policy already has this name; rule names must be unique within a policy."
        )
    if errors:
        return None, errors
    profile = get_catalog().profile_of(FIREWALL_RULE_GROUP_ID)
    ordered = services.canonical_order(profile, {FIREWALL_RULE_GROUP_ID: [clean]})[FIREWALL_RULE_GROUP_ID][0]
    return ordered, {}


def rule_summary(rule: Mapping[str, Any]) -> dict[str, str]:
    """The columns of the rules table."""
    catalog = get_catalog()

    def text(suffix: str, default: str = "") -> str:
        setting = catalog.get(rule_child(suffix))
        value = rule.get(rule_child(suffix))
        if setting is None or value in (None, "", []):
            return default
        return services.value_text(setting, value)

    protocol = rule.get(rule_child("protocol"))
    protocol_names = {6: "TCP", 17: "UDP", 1: "ICMPv4", 58: "ICMPv6"}
    ports = ", ".join(p for p in (text("localportranges"), text("remoteportranges")) if p)
    return {
        "name": text("name", "(no name)"),
        "direction": text("direction", "Out (default)"),
        "action": text("action_type", "Allow (default)"),
        "protocol": protocol_names.get(protocol, str(protocol)) if protocol is not None else "Any",
        "ports": ports or "Any",
        "remote": text("remoteaddressranges", "Any"),
        "enabled": text("enabled", "Enabled (default)"),
        "app": text("app_filepath")
        or text("app_servicename")
        or text("policyappid")
        or text("app_packagefamilyname"),
    }


# --------------------------------------------------------------------------------------------------------------
# assignments editor


@dataclass
class GroupRow:
    group: Any
    included: bool
    excluded: bool
    filter_id: int | None = None  # the assignment filter of this group's inclusion (Intune: per group)
    filter_mode: str = ""

    @property
    def search_text(self) -> str:
        return f"{self.group.name} {self.group.description}".lower()


def group_rows(assignments: Mapping[str, Any], query: str = "", user=None) -> tuple[list[GroupRow], int]:
    """Selected groups first, then the others matching ``query`` (capped); and how many groups ``user`` may target.

    Only groups the admin may target are offered (their role assignment's device groups and scope tags,
    devices.scope.targetable_groups); services.check_assignments refuses any other on save as well."""
    include = set(assignments.get("include") or [])
    exclude = set(assignments.get("exclude") or [])
    try:
        filters = services.Assignments.coerce(assignments).row_filters()
    except services.PolicyError:
        filters = {}
    offered = targetable_groups(user) if user is not None else Group.objects.all()
    selected = list(Group.objects.filter(pk__in=include | exclude).order_by("name"))
    others = offered.exclude(pk__in=include | exclude).order_by("name")
    if query.strip():
        others = others.filter(name__icontains=query.strip())
    rows = [GroupRow(g, g.pk in include, g.pk in exclude, *filters.get(g.pk, (None, ""))) for g in selected]
    rows += [GroupRow(g, False, False) for g in others[:GROUP_LIST_CAP]]
    return rows, offered.count()


def read_assignments_post(post, current: Mapping[str, Any]) -> dict[str, Any]:
    """Merge the posted choices of the groups shown on the page into the current assignments."""

    def ints(values) -> list[int]:
        out = []
        for value in values:
            try:
                out.append(int(value))
            except (TypeError, ValueError):
                continue
        return out

    shown = set(ints(post.getlist("shown_group")))
    include = [pk for pk in (current.get("include") or []) if pk not in shown]
    exclude = [pk for pk in (current.get("exclude") or []) if pk not in shown]
    include += [pk for pk in ints(post.getlist("include")) if pk in shown and pk not in include]
    exclude += [pk for pk in ints(post.getlist("exclude")) if pk in shown and pk not in exclude]
    # The filter of each included group (Intune: chosen per group assignment): the rows on the page from the
    # post, the others as they were. A filter that isn't a number is kept as -1 so the check names it.
    try:
        kept = services.Assignments.coerce(current).row_filters()
    except services.PolicyError:
        kept = {}
    rows: list[list] = [[g, f, m] for g, (f, m) in kept.items() if g not in shown and g in include]
    for pk in include:
        if pk not in shown:
            continue
        raw = post.get(f"filter-{pk}", "")
        if not raw:
            continue
        picked = ints([raw])
        rows.append([pk, picked[0] if picked else -1, post.get(f"filter_mode-{pk}", "")])
    return {"include": include, "exclude": exclude, "filter_id": None, "filter_mode": "", "filters": rows}


def filters_for(platform: str) -> list[AssignmentFilter]:
    return list(AssignmentFilter.objects.filter(platform=platform).order_by("name"))
