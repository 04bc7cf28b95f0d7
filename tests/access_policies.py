"""Who may open each Endpoint security page (GET). Walked for every role by tests/console/test_access.py."""

from __future__ import annotations

GA, ESM, RO = "ga", "esm", "ro"
ALL = {GA: 200, ESM: 200, RO: 200}
WRITERS = {GA: 200, ESM: 200, RO: 403}
# Opening an edit page makes (or reuses) the person's draft and redirects to the wizard step.
WRITERS_REDIRECT = {GA: 302, ESM: 302, RO: 403}


def _policy():
    from policies import services

    return services.create_policy(
        "Microsoft Defender Antivirus",
        "windows",
        "Access check AV",
        "",
        {"device_vendor_msft_policy_config_defender_allowrealtimemonitoring": 1},
    )


def _policy_kwargs():
    return {"policy_id": _policy().policy_id}


def _draft(mode: str = "create"):
    from django.contrib.auth import get_user_model

    from policies import wizard
    from policies.catalog import get_catalog

    # A draft opens only for its author (issue 12): it is made for the person the access test signed in last
    # (force_login sets last_login), i.e. the role being walked; anonymous walks get a stand-in owner.
    users = get_user_model().objects
    owner = users.filter(last_login__isnull=False).order_by("-last_login").first()
    owner = owner or users.get_or_create(username="draft-owner")[0]
    catalog = get_catalog()
    if mode == "create":
        return wizard.new_create_draft(owner, catalog.profile("Microsoft Defender Firewall Rules"), "windows")
    return wizard.edit_draft(owner, _policy(), mode)


def _draft_kwargs(step: str = "settings"):
    return lambda: {"draft_id": _draft().draft_id, "step": step}


def _restore_kwargs():
    from policies import services

    policy = _policy()
    services.update_basics(policy, "Access check AV", "second version")
    return {"policy_id": policy.policy_id, "number": 1}


def _filter_kwargs():
    from policies.models import AssignmentFilter

    f, _ = AssignmentFilter.objects.get_or_create(
        name="Access check filter", defaults={"rule": '(device.deviceName -startsWith "CONTOSO")'}
    )
    return {"pk": f.pk}


ACCESS: dict[str, tuple] = {
    "policies:overview": (None, ALL),
    "policies:list": (lambda: {"policy_type": "antivirus"}, ALL),
    "policies:create": (lambda: {"policy_type": "firewall"}, WRITERS),
    "policies:import": (None, WRITERS),
    "policies:wizard": (_draft_kwargs("settings"), WRITERS),
    "policies:wizard_rule": (lambda: {"draft_id": _draft().draft_id, "index": "new"}, WRITERS),
    "policies:wizard_impact": (lambda: {"draft_id": _draft().draft_id}, WRITERS),
    # Autosave of what the admin types is POST only: a GET is refused before anything runs.
    "policies:wizard_autosave": (lambda: {"draft_id": _draft().draft_id}, {GA: 405, ESM: 405, RO: 405}),
    "policies:detail": (_policy_kwargs, ALL),
    "policies:edit": (lambda: {**_policy_kwargs(), "section": "settings"}, WRITERS_REDIRECT),
    "policies:duplicate": (_policy_kwargs, WRITERS),
    "policies:delete": (_policy_kwargs, WRITERS),
    "policies:versions": (_policy_kwargs, ALL),
    "policies:version_diff": (_policy_kwargs, ALL),
    "policies:restore": (_restore_kwargs, WRITERS),
    "policies:export": (_policy_kwargs, ALL),
    # Tenant administration › Filters: Intune's "Assignment filters" permissions (Read, Create, Update, Delete),
    # which the Endpoint Security Manager holds with the policy permissions and a Read Only Operator reads.
    "policies:filter_list": (None, ALL),
    "policies:filter_create": (None, WRITERS),
    "policies:filter_detail": (_filter_kwargs, ALL),
    "policies:filter_edit": (_filter_kwargs, WRITERS),
    "policies:filter_delete": (_filter_kwargs, WRITERS),
}
