"""Endpoint security pages: overview, a list per policy type, the Create policy wizard, the policy page with its
edit pages, versions, duplicate, delete, export and import. Views stay thin: writes go through policies.services."""

from __future__ import annotations

import functools
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console import audit, scopetags
from console.listing import ObjectListView
from devices.models import Group
from policies import assignment_filters, exports, services, wizard
from policies.catalog import FIREWALL_RULE_GROUP_ID, get_catalog
from policies.filtersets import PolicyFilterSet
from policies.forms import BasicsForm, CreatePolicyForm, DuplicateForm, ImportForm
from policies.models import (
    SLUG_OF_TYPE,
    TYPE_SLUGS,
    Policy,
    PolicyAssignment,
    PolicyDraft,
    PolicyPlatform,
    PolicyType,
)
from policies.preview import impact as compute_impact
from policies.tables import PolicyTable
from reports.drift import drift_count

TYPE_DESCRIPTIONS = {
    PolicyType.ANTIVIRUS: "Manage the Microsoft Defender Antivirus settings, its exclusions and the Windows Security "
    "experience.",
    PolicyType.FIREWALL: "Configure Microsoft Defender Firewall for each network profile, and granular firewall rules "
    "for ports, protocols, applications and networks.",
    PolicyType.EDR: "Manage the Defender for Endpoint capabilities that provide near real-time, actionable attack "
    "detections.",
    PolicyType.ASR: "Minimize the places where your organization is vulnerable to cyberthreats and attacks with "
    "attack surface reduction rules.",
}
BREADCRUMBS = [("Endpoint security", "policies:overview")]


def _type_of_slug(slug: str) -> str:
    try:
        return TYPE_SLUGS[slug]
    except KeyError:
        raise Http404("No such policy type") from None


def _type_url(policy_type: str) -> str:
    return reverse("policies:list", kwargs={"policy_type": SLUG_OF_TYPE[policy_type]})


def _optional_url(name: str, **kwargs) -> str | None:
    try:
        return reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


def _partial(request) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


def _visible_policies(user=None):
    """Policies the signed-in person sees through their scope tags (console.scopetags); another is a 404."""
    return scopetags.visible(Policy.objects.all(), user or audit.current_actor().user)


def _policy(policy_id) -> Policy:
    return get_object_or_404(_visible_policies(), policy_id=policy_id)


# --------------------------------------------------------------------------------------------------------------
# overview and lists


@require_GET
@permission_required("policies.view_policy", raise_exception=True)
def overview(request):
    in_scope = _visible_policies(request.user)
    counts = dict(in_scope.values_list("policy_type").annotate(n=Count("id")).values_list("policy_type", "n"))
    assigned = dict(
        in_scope.filter(assignments__intent="include")
        .values_list("policy_type")
        .annotate(n=Count("id", distinct=True))
        .values_list("policy_type", "n")
    )
    profiles_by_type: dict[str, list] = {}
    for profile in get_catalog().profiles.values():
        profiles_by_type.setdefault(profile.policy_type, []).append(profile)
    profile_counts = dict(in_scope.values_list("profile").annotate(n=Count("id")).values_list("profile", "n"))
    types = [
        {
            "value": value,
            "label": label,
            "url": _type_url(value),
            "create_url": reverse("policies:create", kwargs={"policy_type": SLUG_OF_TYPE[value]}),
            "count": counts.get(value, 0),
            "assigned": assigned.get(value, 0),
            "description": TYPE_DESCRIPTIONS[value],
            "profiles": [
                {"profile": p, "count": profile_counts.get(p.name, 0)}
                for p in profiles_by_type.get(value, [])
            ],
        }
        for value, label in PolicyType.choices
    ]
    recent = in_scope.annotate(
        is_assigned=Exists(PolicyAssignment.objects.filter(policy=OuterRef("pk"), intent="include"))
    ).order_by("-updated_at")[:8]
    return render(
        request,
        "policies/overview.html",
        {
            "title": "Endpoint security",
            "types": types,
            "total": sum(counts.values()),
            "recent": recent,
            "type_slugs": SLUG_OF_TYPE,
            "mde_connector_url": _optional_url("devices:mde_connector"),
            "drift_24h": drift_count(request.user)
            if request.user.has_perm("reports.view_driftevent")
            else None,
        },
    )


class PolicyListView(ObjectListView):
    permission_required = "policies.view_policy"
    table_class = PolicyTable
    filterset_class = PolicyFilterSet
    template_name = "policies/policy_list.html"
    breadcrumbs = BREADCRUMBS
    export_columns = [
        ("Policy name", lambda p: p.name),
        ("Platform", lambda p: p.get_platform_display()),
        ("Policy type", lambda p: p.profile),
        ("Assigned", lambda p: "Yes" if p.is_assigned else "No"),
        ("Target", lambda p: "Devices"),
        ("Last modified", lambda p: p.updated_at.isoformat()),
        ("ID", lambda p: str(p.policy_id)),
    ]

    def dispatch(self, request, *args, **kwargs):
        self.policy_type = _type_of_slug(kwargs["policy_type"])
        self.title = PolicyType(self.policy_type).label
        self.export_filename = f"{kwargs['policy_type']}-policies.csv"
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        return (
            _visible_policies(self.request.user)
            .filter(policy_type=self.policy_type)
            .annotate(
                is_assigned=Exists(PolicyAssignment.objects.filter(policy=OuterRef("pk"), intent="include"))
            )
        )

    def filtered(self):
        qs = self.get_queryset()
        filterset = PolicyFilterSet(
            self.request.GET or None, queryset=qs, request=self.request, policy_type=self.policy_type
        )
        return filterset, (filterset.qs if filterset.is_bound and filterset.is_valid() else qs)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            policy_type=self.policy_type,
            type_slug=SLUG_OF_TYPE[self.policy_type],
            description=TYPE_DESCRIPTIONS[self.policy_type],
            profiles=[p for p in get_catalog().profiles.values() if p.policy_type == self.policy_type],
        )
        return ctx


# --------------------------------------------------------------------------------------------------------------
# Create policy (platform and profile)


@require_http_methods(["GET", "POST"])
@permission_required("policies.add_policy", raise_exception=True)
def create(request, policy_type: str):
    value = _type_of_slug(policy_type)
    form = CreatePolicyForm(value, request.POST if request.method == "POST" else (request.GET or None))
    platform = (form.data.get("platform") if form.is_bound else None) or PolicyPlatform.WINDOWS
    if request.method == "POST" and form.is_valid():
        profile, platform = form.cleaned_data["profile"], form.cleaned_data["platform"]
        problem = services.platform_problem(profile, platform)
        if problem is None:
            draft = wizard.new_create_draft(request.user, profile, platform)
            return redirect("policies:wizard", draft_id=draft.draft_id, step="basics")
        form.add_error("platform", problem.message)
    if request.method == "GET":
        form.errors.clear()  # a GET only narrows the profile list
    notice = None  # every platform's settings are in the reference catalog (Windows, macOS, Linux)
    ctx = {
        "title": "Create a profile",
        "form": form,
        "policy_type": value,
        "type_label": PolicyType(value).label,
        "type_url": _type_url(value),
        "breadcrumbs": BREADCRUMBS,
        "notice": notice,
        "platform": platform,
        "profiles": [p for p in form.profiles if platform in p.platforms] or form.profiles,
    }
    return render(request, "policies/create.html", ctx)


# --------------------------------------------------------------------------------------------------------------
# the wizard


def _draft_for(request, draft_id) -> PolicyDraft:
    """The signed-in person's own draft. Anyone else's is a 404, not a 403: a draft id must not even be
    confirmed to exist for someone who is not its author (every wizard URL, GET or POST, comes through here).
    Someone who may neither create nor change policies is told so (403) before any draft is looked up."""
    if not any(
        request.user.has_perm(p)
        for p in ("policies.add_policy", "policies.change_policy", services.ASSIGN_PERM)
    ):
        raise PermissionDenied("You can't change endpoint security policies.")
    draft = get_object_or_404(
        PolicyDraft.objects.select_related("policy"), draft_id=draft_id, owner_id=request.user.pk
    )
    mode = wizard.state(draft)["mode"]
    needed = {wizard.CREATE: "policies.add_policy", "assignments": services.ASSIGN_PERM}.get(
        mode, "policies.change_policy"
    )
    if not request.user.has_perm(needed):
        raise PermissionDenied(
            services.NO_ASSIGN if mode == "assignments" else "You can't change endpoint security policies."
        )
    if mode != wizard.CREATE and draft.policy is None:
        raise Http404("The policy being edited no longer exists.")
    if wizard.is_finished(draft) and draft.policy is not None:
        raise FinishedDraft(reverse("policies:detail", kwargs={"policy_id": draft.policy.policy_id}))
    return draft


class FinishedDraft(Exception):
    """A wizard URL of a draft that was already created or saved: the view answers with its policy's URL."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _to_policy_once_finished(view):
    """Wizard views: a finished draft's URL redirects to its policy (htmx requests get HX-Location)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except FinishedDraft as finished:
            if _partial(request):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = finished.url
                return response
            return redirect(finished.url)

    return wrapped


def _steps(draft: PolicyDraft, current: str) -> list[dict[str, Any]]:
    data = wizard.state(draft)
    steps = wizard.steps_for(data["mode"])
    index = steps.index(current)
    items = []
    for i, key in enumerate(steps):
        reachable = key in data["done"] or i <= index + 1 or all(s in data["done"] for s in steps[:i])
        items.append(
            {
                "key": key,
                "number": i + 1,
                "label": wizard.step_label(data["mode"], key),
                "url": reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": key}),
                "current": key == current,
                "done": key in data["done"] and key != current,
                "reachable": reachable,
            }
        )
    return items


def _wizard_context(request, draft: PolicyDraft, step: str, **extra) -> dict[str, Any]:
    data = wizard.state(draft)
    profile = wizard.profile_of(draft)
    mode = data["mode"]
    steps = wizard.steps_for(mode)
    index = steps.index(step)
    policy = draft.policy
    ctx: dict[str, Any] = {
        "draft": draft,
        "data": data,
        "mode": mode,
        "profile": profile,
        "platform_label": PolicyPlatform(data["platform"]).label,
        "policy": policy,
        "step": step,
        "step_label": wizard.step_label(mode, step),
        "steps": _steps(draft, step),
        "step_url": reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": step}),
        "prev_step": steps[index - 1] if index > 0 else None,
        "next_step": steps[index + 1] if index + 1 < len(steps) else None,
        "is_last_input_step": index == len(steps) - 2,
        "intune_only_notice": None if profile.mde_supported else wizard.INTUNE_ONLY_PROFILE,
        "unsupported_label": wizard.UNSUPPORTED_IN_MDE,
        "title": (
            "Create profile" if mode == wizard.CREATE else f"Edit {policy.name if policy else 'profile'}"
        ),
        "breadcrumbs": BREADCRUMBS,
        "type_url": _type_url(profile.policy_type),
        "type_label": PolicyType(profile.policy_type).label,
        "reached_review": "review" in data["done"] or all(s in data["done"] for s in steps[:-1]),
        "name_warning": services.name_in_use(
            profile.policy_type, data["name"], exclude_pk=policy.pk if policy else None
        )
        if step in ("basics", "review")
        else "",
    }
    ctx.update(extra)
    typing = data.get("typing") or {}
    ctx["autosave_url"] = reverse("policies:wizard_autosave", kwargs={"draft_id": draft.draft_id})
    if step == "basics" and "form" not in ctx:
        kept = typing.get("basics") or {}
        chosen = data.get("scope_tags")
        ctx["form"] = BasicsForm(
            initial={
                "name": kept.get("name", data["name"]),
                "description": kept.get("description", data["description"]),
                "scope_tags": chosen or scopetags.initial_for(request.user),
            },
            user=request.user,
        )
    if step == "settings" and "categories" not in ctx:
        query = request.GET.get("q", "")
        ctx["query"] = query
        ctx["categories"] = wizard.settings_view(
            profile, data["values"], raw=typing.get("settings"), query=query
        )
    if step == "settings":
        ctx["shown"] = wizard.shown_ids(ctx["categories"])
        query_active = bool(ctx.get("query"))
        ctx["configured_count"] = (
            len(data["values"]) if query_active else sum(c.configured for c in ctx["categories"])
        )
        ctx["is_rules_profile"] = FIREWALL_RULE_GROUP_ID in profile
        if ctx["is_rules_profile"]:
            views = [f for c in ctx["categories"] for f in c.fields if f.widget == "rules"]
            rule_errors = views[0].rule_errors if views else {}
            ctx["rule_rows"] = [
                {
                    "index": i,
                    "summary": wizard.rule_summary(rule),
                    "errors": rule_errors.get(i, []),
                    "edit_url": reverse(
                        "policies:wizard_rule", kwargs={"draft_id": draft.draft_id, "index": i}
                    ),
                }
                for i, rule in enumerate(data["values"].get(FIREWALL_RULE_GROUP_ID) or [])
            ]
    if step == "assignments":
        query = request.GET.get("q", "")
        if "assignments_state" not in ctx and typing.get("assignments"):
            ctx["assignments_state"] = typing["assignments"]
        rows, total = wizard.group_rows(
            ctx.get("assignments_state") or data["assignments"], query, user=request.user
        )
        ctx.update(
            query=query,
            group_rows=rows,
            group_total=total,
            group_cap=wizard.GROUP_LIST_CAP,
            filters=wizard.filters_for(data["platform"]),
            assignment_state=ctx.get("assignments_state") or data["assignments"],
            filter_warning=services.FILTER_IGNORED_WARNING,
            user_group_refusal=services.USER_GROUP_REFUSAL,
        )
    if step == "review":
        assignments = services.Assignments.coerce(data["assignments"])
        ctx.update(
            configured=wizard.configured_view(profile, data["values"]),
            assignment_view=_assignment_view(assignments),
            step_problems=ctx.get("step_problems") or wizard.problems(draft),
            changes=_pending_changes(draft) if mode != wizard.CREATE else None,
            show_impact=mode in (wizard.CREATE, "settings", "assignments"),
            filter_warning=services.FILTER_IGNORED_WARNING,
        )
    if step in ("review", "assignments", "settings") and mode != "basics":
        ctx["impact_url"] = reverse("policies:wizard_impact", kwargs={"draft_id": draft.draft_id})
    return ctx


def _assignment_view(assignments: services.Assignments) -> dict[str, Any]:
    from .models import AssignmentFilter

    groups = Group.objects.in_bulk(list(assignments.include) + list(assignments.exclude))
    rows = assignments.row_filters()
    filters = AssignmentFilter.objects.in_bulk({f for f, _ in rows.values()})
    include = [
        {
            "group": groups[pk],
            "filter": filters.get(rows[pk][0]) if pk in rows else None,
            "filter_mode": rows[pk][1] if pk in rows else "",
        }
        for pk in assignments.include
        if pk in groups
    ]
    return {
        "include": include,
        "exclude": [groups[pk] for pk in assignments.exclude if pk in groups],
        "has_filter": any(row["filter"] for row in include),
    }


def _pending_changes(draft: PolicyDraft) -> list[services.Change]:
    """What saving this edit draft would change on the policy."""
    data = wizard.state(draft)
    policy = draft.policy
    if policy is None:
        return []
    mode = data["mode"]
    if mode == "basics":
        changes = []
        for key, label in (("name", "Name"), ("description", "Description")):
            old, new = (
                getattr(policy, key),
                " ".join(data[key].split()) if key == "name" else data[key].strip(),
            )
            if old != new:
                changes.append(services.Change("changed", label, old, new))
        return changes
    if mode == "settings":
        return services.diff_values(wizard.profile_of(draft), policy.values, data["values"])
    old, new = services.current_assignments(policy), services.Assignments.coerce(data["assignments"])
    names = dict(
        Group.objects.filter(pk__in=[*old.include, *old.exclude, *new.include, *new.exclude]).values_list(
            "pk", "name"
        )
    )
    changes = []
    for intent, before, after in (
        ("Included", old.include, new.include),
        ("Excluded", old.exclude, new.exclude),
    ):
        for pk in after:
            if pk not in before:
                changes.append(services.Change("added", names.get(pk, str(pk)), "", intent))
        for pk in before:
            if pk not in after:
                changes.append(services.Change("removed", names.get(pk, str(pk)), intent, ""))
    from .models import AssignmentFilter

    old_rows, new_rows = old.row_filters(), new.row_filters()
    filter_names = dict(
        AssignmentFilter.objects.filter(
            pk__in={f for f, _ in [*old_rows.values(), *new_rows.values()]}
        ).values_list("pk", "name")
    )
    modes = {"include": "Include filtered devices", "exclude": "Exclude filtered devices"}

    def filter_text(row) -> str:
        return (
            f"{filter_names.get(row[0], 'Deleted filter')} ({modes.get(row[1], row[1])})" if row else "None"
        )

    for pk in new.include:
        if pk in old.include and old_rows.get(pk) != new_rows.get(pk):
            changes.append(
                services.Change(
                    "changed",
                    f"Assignment filter of {names.get(pk, 'a group')}",
                    filter_text(old_rows.get(pk)),
                    filter_text(new_rows.get(pk)),
                )
            )
        elif pk not in old.include and pk in new_rows:
            changes.append(
                services.Change(
                    "added", f"Assignment filter of {names.get(pk, 'a group')}", "", filter_text(new_rows[pk])
                )
            )
    return changes


def _render_step(request, draft: PolicyDraft, step: str, *, status: int = 200, push: bool = False, **extra):
    ctx = _wizard_context(request, draft, step, **extra)
    template = "policies/wizard/body.html" if _partial(request) else "policies/wizard.html"
    response = render(request, template, ctx, status=status)
    if push and _partial(request):
        response["HX-Push-Url"] = ctx["step_url"]
    return response


def _go(request, draft: PolicyDraft, step: str):
    """After a successful POST: htmx gets the next step in place (and its URL pushed); others a redirect."""
    if _partial(request):
        return _render_step(request, draft, step, push=True)
    return redirect("policies:wizard", draft_id=draft.draft_id, step=step)


def _target(request, steps: list[str], step: str) -> str:
    nav = request.POST.get("nav", "next")
    index = steps.index(step)
    if nav.startswith("goto:") and nav[5:] in steps:
        return nav[5:]
    if nav == "prev":
        return steps[max(index - 1, 0)]
    if nav == "stay":
        return step
    if nav == "review" and "review" in steps:
        return "review"
    return steps[min(index + 1, len(steps) - 1)]


@require_http_methods(["GET", "POST"])
@_to_policy_once_finished
def wizard_step(request, draft_id, step: str):
    draft = _draft_for(request, draft_id)
    data = wizard.state(draft)
    steps = wizard.steps_for(data["mode"])
    if step not in steps:
        raise Http404("No such step")
    if request.method == "GET":
        return _render_step(request, draft, step)
    profile = wizard.profile_of(draft)
    target = _target(request, steps, step)

    if step == "basics":
        form = BasicsForm(request.POST, user=request.user)
        if not form.is_valid():
            return _render_step(request, draft, step, form=form)
        exclude_pk = draft.policy.pk if draft.policy else None
        name, description, problems = services.check_basics(
            profile.policy_type,
            form.cleaned_data["name"],
            form.cleaned_data["description"],
            exclude_pk=exclude_pk,
        )
        tags, tag_problems = services.check_scope_tags(form.cleaned_data["scope_tags"], request.user)
        problems += tag_problems
        if problems:
            for problem in problems:
                form.add_error(problem.field if problem.field in form.fields else None, problem.message)
            return _render_step(request, draft, step, form=form)
        chosen = [t.pk for t in tags] or [scopetags.default_tag().pk]
        draft = wizard.save_section(
            draft,
            {"name": name, "description": description, "scope_tags": chosen},
            done=step,
            step=target,
            typed_in=step,
        )
        return _go(request, draft, target)

    if step == "settings":
        values = data["values"]
        remove = request.POST.get("remove_rule")
        if remove is not None:
            rules = list(values.get(FIREWALL_RULE_GROUP_ID) or [])
            try:
                rules.pop(int(remove))
            except (ValueError, IndexError):
                return HttpResponseBadRequest("No such firewall rule.")
            new_values = dict(values)
            if rules:
                new_values[FIREWALL_RULE_GROUP_ID] = rules
            else:
                new_values.pop(FIREWALL_RULE_GROUP_ID, None)
            draft = wizard.save_section(draft, {"values": new_values}, step=step)
            return _go(request, draft, step)
        merged, raw = wizard.read_settings_post(profile, request.POST, values)
        clean, problems = services.check_values(profile, merged)
        if problems:
            errors, rule_errors = wizard.errors_by_setting(problems)
            categories = wizard.settings_view(
                profile,
                values,
                raw=raw,
                errors=errors,
                rule_errors=rule_errors,
                query=request.POST.get("q", ""),
            )
            return _render_step(
                request,
                draft,
                step,
                categories=categories,
                error_count=len(problems),
                query=request.POST.get("q", ""),
            )
        draft = wizard.save_section(draft, {"values": clean}, done=step, step=target, typed_in=step)
        return _go(request, draft, target)

    if step == "assignments":
        wanted = wizard.read_assignments_post(request.POST, data["assignments"])
        clean, problems = services.check_assignments(wanted, data["platform"])
        if (
            not problems
            and (clean.include or clean.exclude)
            and not request.user.has_perm(services.ASSIGN_PERM)
        ):
            problems = [
                services.Problem("include", services.NO_ASSIGN + " Create the policy without assignments.")
            ]
        if problems:
            by_field: dict[str, list[str]] = {}
            for problem in problems:
                by_field.setdefault(problem.field, []).append(problem.message)
            return _render_step(request, draft, step, assignments_state=wanted, assignment_errors=by_field)
        draft = wizard.save_section(
            draft, {"assignments": clean.as_dict()}, done=step, step=target, typed_in=step
        )
        return _go(request, draft, target)

    # review
    if request.POST.get("nav") in ("prev",) or request.POST.get("nav", "").startswith("goto:"):
        return _go(request, draft, target)
    try:
        if data["mode"] == wizard.CREATE and not request.user.has_perm(services.ASSIGN_PERM):
            pending = services.Assignments.coerce(data["assignments"])
            if pending.include or pending.exclude:
                raise services.PolicyError([services.Problem("include", services.NO_ASSIGN)])
        policy = wizard.commit(draft, request.user)
    except services.PolicyError as exc:
        grouped: dict[str, list] = {}
        for problem in exc.problems:
            grouped.setdefault(_step_of_problem(problem.field), []).append(problem)
        return _render_step(request, draft, step, step_problems=grouped)
    created = data["mode"] == wizard.CREATE
    wizard.finish(draft, policy)
    messages.success(request, f"“{policy.name}” was {'created' if created else 'saved'}.")
    url = reverse("policies:detail", kwargs={"policy_id": policy.policy_id})
    if _partial(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _step_of_problem(field: str) -> str:
    if field in ("name", "description", "platform", "profile"):
        return "basics"
    if field in ("include", "exclude", "filter", "filter_mode"):
        return "assignments"
    if field in ("version", "policy"):
        return "review"
    return "settings"


@require_http_methods(["GET", "POST"])
@_to_policy_once_finished
def wizard_rule(request, draft_id, index: str):
    """Add or edit one firewall rule of the draft (a sub-page of Configuration settings)."""
    draft = _draft_for(request, draft_id)
    data = wizard.state(draft)
    profile = wizard.profile_of(draft)
    if FIREWALL_RULE_GROUP_ID not in profile or "settings" not in wizard.steps_for(data["mode"]):
        raise Http404("This profile has no firewall rules.")
    rules = list(data["values"].get(FIREWALL_RULE_GROUP_ID) or [])
    if index == "new":
        position, existing = len(rules), {}
    else:
        try:
            position = int(index)
            existing = rules[position]
        except (ValueError, IndexError):
            raise Http404("No such firewall rule.") from None
    raw = wizard.typed(draft, f"rule:{index}")
    errors = None
    if request.method == "POST":
        if request.POST.get("nav") == "cancel":
            draft = wizard.save_section(draft, {}, step="settings", typed_in=f"rule:{index}")
            return _go(request, draft, "settings")
        rule, raw = wizard.read_rule_post(request.POST, existing)
        others = [r for i, r in enumerate(rules) if i != position]
        clean, errors = wizard.validate_rule(rule, others)
        if clean is not None:
            if position == len(rules):
                rules.append(clean)
            else:
                rules[position] = clean
            values = dict(data["values"])
            values[FIREWALL_RULE_GROUP_ID] = rules
            draft = wizard.save_section(
                draft,
                {"values": services.canonical_order(profile, values)},
                step="settings",
                typed_in=f"rule:{index}",
            )
            return _go(request, draft, "settings")
    ctx = _wizard_context(request, draft, "settings")
    rule_url = reverse("policies:wizard_rule", kwargs={"draft_id": draft.draft_id, "index": index})
    ctx.update(
        rule_mode=True,
        rule_index=index,
        rule_url=rule_url,
        rule_fields=wizard.rule_fields(existing, raw=raw, errors=errors),
        rule_is_new=index == "new",
        rule_place=f"rule:{index}",
        rule_error_count=sum(len(v) for v in (errors or {}).values()),
    )
    template = "policies/wizard/body.html" if _partial(request) else "policies/wizard.html"
    response = render(request, template, ctx)
    if _partial(request) and request.method == "GET":
        response["HX-Push-Url"] = rule_url
    return response


@require_POST
@_to_policy_once_finished
def wizard_autosave(request, draft_id):
    """Keep what the admin is typing on a step or in the open rule form (debounced by the page): 204."""
    draft = _draft_for(request, draft_id)
    place = wizard.typing_place(request.POST.get("autosave_for", ""))
    if place is None:
        return HttpResponseBadRequest("autosave_for must be basics, settings, assignments or rule:<index>.")
    wizard.keep_typing(draft, place, wizard.read_typing(draft, place, request.POST))
    return HttpResponse(status=204)


@require_GET
@_to_policy_once_finished
def wizard_impact(request, draft_id):
    draft = _draft_for(request, draft_id)
    result = compute_impact(wizard.candidate(draft))
    ctx = {"impact": result, "draft": draft, "title": "Impact preview", "breadcrumbs": BREADCRUMBS}
    ctx["back_url"] = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "review"})
    template = "policies/partials/impact.html" if _partial(request) else "policies/impact_page.html"
    return render(request, template, ctx)


# --------------------------------------------------------------------------------------------------------------
# the policy page and its actions


@require_GET
@permission_required("policies.view_policy", raise_exception=True)
def detail(request, policy_id):
    policy = _policy(policy_id)
    profile = get_catalog().profile(policy.profile)
    assignments = services.current_assignments(policy)
    return render(
        request,
        "policies/detail.html",
        {
            "policy": policy,
            "profile": profile,
            "title": policy.name,
            "breadcrumbs": BREADCRUMBS,
            "type_url": _type_url(policy.policy_type),
            "type_label": policy.get_policy_type_display(),
            "configured": wizard.configured_view(profile, policy.values),
            "assignment_view": _assignment_view(assignments),
            "filter_warning": services.FILTER_IGNORED_WARNING,
            "intune_only_notice": None if profile.mde_supported else wizard.INTUNE_ONLY_PROFILE,
            "unsupported_label": wizard.UNSUPPORTED_IN_MDE,
            "latest_versions": policy.versions.all()[:5],
            "monitor_url": _optional_url("reports:policy_monitor", policy_id=policy.policy_id),
        },
    )


@require_GET
def edit(request, policy_id, section: str):
    policy = _policy(policy_id)
    if section not in wizard.EDIT_SECTIONS:
        raise Http404("No such section")
    # Settings and Basics need Update; Assignments needs Assign (Intune keeps them apart).
    if not request.user.has_perm(
        services.ASSIGN_PERM if section == "assignments" else "policies.change_policy"
    ):
        raise PermissionDenied(
            services.NO_ASSIGN if section == "assignments" else "You can't change endpoint security policies."
        )
    draft = wizard.edit_draft(request.user, policy, section)
    return redirect("policies:wizard", draft_id=draft.draft_id, step=section)


@require_http_methods(["GET", "POST"])
@permission_required("policies.add_policy", raise_exception=True)
def duplicate(request, policy_id):
    policy = _policy(policy_id)
    initial = {
        "name": services.available_copy_name(policy.policy_type, policy.name),
        "description": policy.description,
    }
    form = DuplicateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            copy = services.duplicate(
                policy, form.cleaned_data["name"], form.cleaned_data["description"], request.user
            )
        except services.PolicyError as exc:
            for problem in exc.problems:
                form.add_error(problem.field if problem.field in form.fields else None, problem.message)
        else:
            messages.success(
                request, f"“{copy.name}” was created as a copy of “{policy.name}”. It isn't assigned yet."
            )
            return redirect("policies:detail", policy_id=copy.policy_id)
    return render(
        request,
        "policies/duplicate.html",
        {"policy": policy, "form": form, "title": f"Duplicate {policy.name}", "breadcrumbs": BREADCRUMBS},
    )


@require_http_methods(["GET", "POST"])
@permission_required("policies.delete_policy", raise_exception=True)
def delete(request, policy_id):
    policy = _policy(policy_id)
    assignments = services.current_assignments(policy)
    if request.method == "POST":
        name, type_url = policy.name, _type_url(policy.policy_type)
        device_ids = services.delete(policy, request.user)
        messages.success(
            request,
            f"“{name}” was deleted. {len(device_ids)} device{'s' if len(device_ids) != 1 else ''} will stop "
            "receiving it at their next check-in.",
        )
        return redirect(type_url)
    return render(
        request,
        "policies/delete.html",
        {
            "policy": policy,
            "title": f"Delete {policy.name}",
            "breadcrumbs": BREADCRUMBS,
            "assignment_view": _assignment_view(assignments),
            "device_count": len(services.targeted_device_ids(assignments.include, assignments.exclude)),
        },
    )


@require_GET
@permission_required("policies.view_policy", raise_exception=True)
def versions(request, policy_id):
    policy = _policy(policy_id)
    rows = list(policy.versions.all())
    return render(
        request,
        "policies/versions.html",
        {
            "policy": policy,
            "versions": rows,
            "title": f"{policy.name} - Versions",
            "breadcrumbs": BREADCRUMBS,
            "default_from": rows[1].number if len(rows) > 1 else (rows[0].number if rows else None),
            "default_to": rows[0].number if rows else None,
        },
    )


@require_GET
@permission_required("policies.view_policy", raise_exception=True)
def version_diff(request, policy_id):
    policy = _policy(policy_id)
    numbers = list(policy.versions.values_list("number", flat=True))
    try:
        old_n = int(request.GET.get("from") or (numbers[1] if len(numbers) > 1 else numbers[0]))
        new_n = int(request.GET.get("to") or numbers[0])
    except (ValueError, IndexError):
        return HttpResponseBadRequest("Choose two versions to compare.")
    old = policy.versions.filter(number=old_n).first()
    new = policy.versions.filter(number=new_n).first()
    if old is None or new is None:
        raise Http404("No such version")
    diff = services.diff_snapshots(old.snapshot, new.snapshot)
    return render(
        request,
        "policies/version_diff.html",
        {
            "policy": policy,
            "old": old,
            "new": new,
            "diff": diff,
            "numbers": numbers,
            "title": f"{policy.name} - Compare versions",
            "breadcrumbs": BREADCRUMBS,
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required("policies.change_policy", raise_exception=True)
def restore(request, policy_id, number: int):
    policy = _policy(policy_id)
    version = get_object_or_404(policy.versions, number=number)
    current = policy.versions.filter(number=policy.version).first()
    diff = services.diff_snapshots(current.snapshot, version.snapshot) if current else None
    error = None
    if request.method == "POST":
        try:
            result = services.restore_version(
                policy, number, request.user, may_assign=request.user.has_perm(services.ASSIGN_PERM)
            )
        except services.PolicyError as exc:
            error = exc.problems
        else:
            note = ""
            if result.skipped_groups:
                note = f" {len(result.skipped_groups)} group(s) of that version no longer exist and were left out."
            messages.success(
                request, f"Version {number} was restored as version {result.policy.version}.{note}"
            )
            return redirect("policies:detail", policy_id=policy.policy_id)
    return render(
        request,
        "policies/restore.html",
        {
            "policy": policy,
            "version": version,
            "diff": diff,
            "problems": error,
            "title": f"Restore version {number}",
            "breadcrumbs": BREADCRUMBS,
        },
    )


@require_GET
@permission_required("policies.view_policy", raise_exception=True)
def export(request, policy_id):
    policy = _policy(policy_id)
    document = exports.export_document(policy)
    response = HttpResponse(
        json.dumps(document, indent=2, ensure_ascii=False), content_type="application/json"
    )
    filename = slugify(policy.name) or "policy"
    response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
    return response


@require_http_methods(["GET", "POST"])
@permission_required("policies.add_policy", raise_exception=True)
def import_policy(request):
    form = ImportForm(request.POST or None, request.FILES or None, initial={"with_assignments": True})
    problems = None
    if request.method == "POST" and form.is_valid():
        try:
            policy = services.import_policy(
                form.cleaned_data["file"],
                request.user,
                name=form.cleaned_data["name"],
                with_assignments=form.cleaned_data["with_assignments"],
            )
        except services.PolicyError as exc:
            problems = exc.problems
        else:
            messages.success(request, f"“{policy.name}” was imported.")
            return redirect("policies:detail", policy_id=policy.policy_id)
    back = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    return render(
        request,
        "policies/import.html",
        {
            "form": form,
            "problems": problems,
            "title": "Import policy",
            "breadcrumbs": BREADCRUMBS,
            "back_url": back or reverse("policies:overview"),
        },
    )


# --------------------------------------------------------------------------------------------------------------
# Tenant administration › Filters (Intune's assignment filters)


def _filter_context(request, **extra) -> dict[str, Any]:
    return {
        "breadcrumbs": [("Tenant administration", "tenant_admin")],
        "supported_properties": assignment_filters.SUPPORTED_PROPERTIES,
        "operators": assignment_filters.OPERATORS,
        "platforms": PolicyPlatform.choices,
        "filter_warning": services.FILTER_IGNORED_WARNING,
        **extra,
    }


def _rule_marker(rule: str, column: int | None) -> dict | None:
    if column is None:
        return None
    position = max(0, min(column - 1, len(rule)))
    return {
        "before": rule[:position],
        "at": rule[position : position + 1] or " ",
        "after": rule[position + 1 :],
    }


@require_GET
@permission_required("policies.view_assignmentfilter", raise_exception=True)
def filter_list(request):
    from policies.models import AssignmentFilter

    rows = AssignmentFilter.objects.annotate(
        policy_count=Count("policyassignment__policy", distinct=True)
    ).order_by("name")
    return render(request, "policies/filter_list.html", _filter_context(request, filters=rows))


def _filter_form(request, instance, *, title: str):
    """Create or edit: Preview devices shows the devices the typed rule matches, Save saves (and audits)."""
    values = {
        "name": instance.name if instance else "",
        "description": instance.description if instance else "",
        "platform": instance.platform if instance else PolicyPlatform.WINDOWS,
        "rule": instance.rule if instance else "",
    }
    errors: dict[str, list[str]] = {}
    preview = None
    marker = None
    if request.method == "POST":
        values = {key: request.POST.get(key, "") for key in values}
        problem = assignment_filters.check_rule(values["rule"])
        if request.POST.get("preview"):
            if problem is None:
                preview = assignment_filters.preview(values["rule"], values["platform"])
            else:
                errors["rule"] = [problem.message]
        else:
            try:
                saved = assignment_filters.save(
                    instance,
                    name=values["name"],
                    description=values["description"],
                    platform=values["platform"],
                    rule=values["rule"],
                )
            except services.PolicyError as exc:
                errors = exc.by_field()
            else:
                messages.success(request, f"Filter {saved.name} {'saved' if instance else 'created'}.")
                return redirect("policies:filter_detail", pk=saved.pk)
        if problem is not None:
            marker = _rule_marker(values["rule"], problem.column)
    return render(
        request,
        "policies/filter_form.html",
        _filter_context(
            request,
            title=title,
            assignment_filter=instance,
            values=values,
            errors=errors,
            preview=preview,
            marker=marker,
        ),
        status=400 if errors else 200,
    )


@require_http_methods(["GET", "POST"])
@permission_required("policies.add_assignmentfilter", raise_exception=True)
def filter_create(request):
    return _filter_form(request, None, title="Create filter")


@require_http_methods(["GET", "POST"])
@permission_required("policies.change_assignmentfilter", raise_exception=True)
def filter_edit(request, pk: int):
    from policies.models import AssignmentFilter

    instance = get_object_or_404(AssignmentFilter, pk=pk)
    return _filter_form(request, instance, title=f"Edit {instance.name}")


@require_GET
@permission_required("policies.view_assignmentfilter", raise_exception=True)
def filter_detail(request, pk: int):
    from policies.models import AssignmentFilter

    instance = get_object_or_404(AssignmentFilter, pk=pk)
    problem = assignment_filters.check_rule(instance.rule)
    preview = assignment_filters.preview(instance.rule, instance.platform) if problem is None else None
    return render(
        request,
        "policies/filter_detail.html",
        _filter_context(
            request,
            assignment_filter=instance,
            problem=problem,
            preview=preview,
            using=assignment_filters.policies_using(instance),
        ),
    )


@require_http_methods(["GET", "POST"])
@permission_required("policies.delete_assignmentfilter", raise_exception=True)
def filter_delete(request, pk: int):
    from policies.models import AssignmentFilter

    instance = get_object_or_404(AssignmentFilter, pk=pk)
    using = assignment_filters.policies_using(instance)
    if request.method == "POST":
        name = instance.name
        try:
            assignment_filters.delete(instance)
        except services.PolicyError as exc:
            messages.error(request, str(exc))
            return redirect("policies:filter_detail", pk=pk)
        messages.success(request, f"Filter {name} deleted.")
        return redirect("policies:filter_list")
    return render(
        request,
        "policies/filter_delete.html",
        _filter_context(request, assignment_filter=instance, using=using),
    )
