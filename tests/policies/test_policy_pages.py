"""The Endpoint security pages over HTTP: the wizard as plain POSTs (no JavaScript) and with htmx, the policy
page and its actions, import and export. Bad input gets a message and changes nothing."""

from __future__ import annotations

import json
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from policies import services
from policies.catalog import FIREWALL_RULE_GROUP_ID, asr_rules, get_catalog
from policies.exports import export_document
from policies.models import Policy, PolicyDraft
from tests.policies.conftest import ASR, AV

pytestmark = pytest.mark.django_db

D = "device_vendor_msft_policy_config_defender_"
REALTIME = D + "allowrealtimemonitoring"
CPU = D + "avgcpuloadfactor"
R = FIREWALL_RULE_GROUP_ID + "_"
LSASS = next(r for r, _ in asr_rules(get_catalog()) if "local security authority" in r.display_name)


def start(client, profile="microsoft-defender-antivirus", policy_type="antivirus") -> PolicyDraft:
    response = client.post(
        reverse("policies:create", kwargs={"policy_type": policy_type}),
        {"platform": "windows", "profile": profile},
    )
    assert response.status_code == 302, response.content[:500]
    draft = PolicyDraft.objects.latest("id")
    assert response["Location"] == step_url(draft, "basics")
    return draft


def html(response) -> str:
    return unescape(response.content.decode())


def step_url(draft, step):
    return reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": step})


def saved(draft):
    draft.refresh_from_db()
    return draft.data


# ---- the wizard without JavaScript ---------------------------------------------------------------------------


def test_the_wizard_creates_a_policy_with_plain_posts(ga_client, fleet):
    draft = start(ga_client)
    r = ga_client.post(step_url(draft, "basics"), {"name": "AV pilot", "description": "First", "nav": "next"})
    assert r.status_code == 302 and r["Location"] == step_url(draft, "settings")
    page = html(ga_client.get(step_url(draft, "settings")))
    assert "Allow Realtime Monitoring" in page and "Not configured" in page
    r = ga_client.post(
        step_url(draft, "settings"), {"shown": [REALTIME, CPU], REALTIME: "1", CPU: "25", "nav": "next"}
    )
    assert r["Location"] == step_url(draft, "assignments")
    r = ga_client.post(
        step_url(draft, "assignments"),
        {
            "shown_group": [fleet.workstations.pk, fleet.pilot.pk],
            "include": [fleet.workstations.pk],
            "exclude": [fleet.pilot.pk],
            "nav": "next",
        },
    )
    assert r["Location"] == step_url(draft, "review")
    review = html(ga_client.get(step_url(draft, "review")))
    for text in (
        "AV pilot",
        "Allowed. Turns on and runs the real-time monitoring service.",
        "25",
        "Workstations",
        "Pilot workstations",
    ):
        assert text in review
    r = ga_client.post(step_url(draft, "review"), {"nav": "create"})
    policy = Policy.objects.get(name="AV pilot")
    assert r.status_code == 302 and r["Location"] == reverse(
        "policies:detail", kwargs={"policy_id": policy.policy_id}
    )
    assert policy.values == {REALTIME: 1, CPU: 25} and policy.description == "First"
    assert set(policy.assignments.values_list("group_id", "intent")) == {
        (fleet.workstations.pk, "include"),
        (fleet.pilot.pk, "exclude"),
    }
    # The finished draft's URLs redirect to the policy (Back or reload after Create never dead-ends).
    for step in ("basics", "review"):
        r = ga_client.get(step_url(draft, step))
        assert r.status_code == 302 and r["Location"] == reverse(
            "policies:detail", kwargs={"policy_id": policy.policy_id}
        )


def test_each_step_is_saved_so_a_reload_or_a_second_tab_loses_nothing(ga_client, client, global_admin):
    draft = start(ga_client)
    ga_client.post(step_url(draft, "basics"), {"name": "Kept", "description": "", "nav": "next"})
    ga_client.post(step_url(draft, "settings"), {"shown": [CPU], CPU: "33", "nav": "next"})
    client.force_login(global_admin)  # a second tab: a fresh session, the same URL
    assert 'value="Kept"' in html(client.get(step_url(draft, "basics")))
    assert 'value="33"' in html(client.get(step_url(draft, "settings")))


def test_two_tabs_saving_different_steps_keep_both(ga_client):
    draft = start(ga_client)
    ga_client.post(step_url(draft, "settings"), {"shown": [CPU], CPU: "12", "nav": "stay"})
    ga_client.post(step_url(draft, "basics"), {"name": "Both", "description": "", "nav": "stay"})
    data = saved(draft)
    assert (data["name"], data["values"]) == ("Both", {CPU: 12})


def test_an_invalid_value_is_refused_beside_its_field_and_nothing_is_saved(ga_client):
    draft = start(ga_client)
    ga_client.post(step_url(draft, "settings"), {"shown": [CPU], CPU: "10", "nav": "stay"})
    r = ga_client.post(
        step_url(draft, "settings"), {"shown": [CPU, REALTIME], CPU: "500", REALTIME: "1", "nav": "next"}
    )
    assert r.status_code == 200
    page = html(r)
    row = page[page.index('id="s-' + CPU + '-row"') :]
    row = row[: row.index('class="sgroup"') if 'class="sgroup"' in row else len(row)]
    assert "must be between 0 and 100; 500 is out of range" in row
    assert 'value="500"' in row  # what was typed stays in the field
    assert saved(draft)["values"] == {CPU: 10}


def test_settings_not_shown_on_the_page_keep_their_values_and_forged_ids_are_ignored(ga_client):
    draft = start(ga_client)
    ga_client.post(step_url(draft, "settings"), {"shown": [REALTIME], REALTIME: "1", "nav": "stay"})
    r = ga_client.post(
        step_url(draft, "settings"), {"shown": [CPU, "made_up_setting"], CPU: "7", "made_up_setting": "1"}
    )
    assert r.status_code == 302
    assert saved(draft)["values"] == {REALTIME: 1, CPU: 7}


def test_the_settings_search_works_without_javascript(ga_client):
    draft = start(ga_client)
    page = html(ga_client.get(step_url(draft, "settings"), {"q": "realtime"}))
    assert "Allow Realtime Monitoring" in page and "Avg CPU Load Factor" not in page


def test_a_user_group_is_refused_on_the_assignments_step_with_the_seeds_reason(ga_client, fleet):
    draft = start(ga_client)
    r = ga_client.post(
        step_url(draft, "assignments"),
        {"shown_group": [fleet.users.pk], "include": [fleet.users.pk], "nav": "next"},
    )
    assert r.status_code == 200
    assert "Only Device Objects are applicable for Microsoft Defender for Endpoint management." in html(r)
    assert saved(draft)["assignments"]["include"] == []


def test_the_assignments_page_warns_that_mde_devices_ignore_filters(ga_client, fleet):
    page = html(ga_client.get(step_url(start(ga_client), "assignments")))
    assert "devices ignore the filter" in page or "ignore the filter" in page


def test_review_lists_what_is_missing_with_a_link_to_the_step_and_creates_nothing(ga_client):
    draft = start(ga_client)
    page = html(ga_client.get(step_url(draft, "review")))
    assert "Enter a name for the policy." in page and step_url(draft, "basics") in page
    r = ga_client.post(step_url(draft, "review"), {"nav": "create"})
    assert r.status_code == 200 and not Policy.objects.exists()


def test_a_name_in_use_is_a_warning_and_the_policy_is_still_created(ga_client):
    services.create_policy(AV, "windows", "AV baseline")
    draft = start(ga_client)
    ga_client.post(step_url(draft, "basics"), {"name": "av baseline", "nav": "review"})
    page = html(ga_client.get(step_url(draft, "review")))
    assert "Another policy in Antivirus is already named “av baseline”" in page
    assert "Another policy" in html(ga_client.get(step_url(draft, "basics")))
    ga_client.post(step_url(draft, "review"), {"nav": "create"})
    assert Policy.objects.filter(name__iexact="av baseline").count() == 2


def test_htmx_gets_the_next_step_in_place_with_its_url_pushed(ga_client):
    draft = start(ga_client)
    r = ga_client.post(step_url(draft, "basics"), {"name": "Via htmx", "nav": "next"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200
    assert r["HX-Push-Url"] == step_url(draft, "settings")
    body = html(r)
    assert body.lstrip().startswith('<div id="wizard"') and "<html" not in body
    assert 'data-step="settings"' in body
    history = ga_client.get(
        step_url(draft, "settings"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in html(history)  # a history restore gets the whole page


def test_the_create_step_through_htmx_redirects_the_browser_to_the_policy(ga_client):
    draft = start(ga_client)
    ga_client.post(step_url(draft, "basics"), {"name": "Quick", "nav": "next"})
    r = ga_client.post(step_url(draft, "review"), {"nav": "create"}, HTTP_HX_REQUEST="true")
    policy = Policy.objects.get(name="Quick")
    assert r.status_code == 204 and r["HX-Redirect"] == reverse(
        "policies:detail", kwargs={"policy_id": policy.policy_id}
    )


def test_warn_is_offered_disabled_and_refused_for_rules_that_do_not_support_it(ga_client):
    draft = start(ga_client, "attack-surface-reduction-rules", "attack-surface-reduction")
    page = html(ga_client.get(step_url(draft, "settings")))
    row = page[page.index('id="s-' + LSASS.id + '-row"') :][:3000]
    assert "Warn (not supported by this rule)" in row and "disabled" in row
    warn = next(o.value for o in LSASS.options if o.label == "Warn")
    r = ga_client.post(step_url(draft, "settings"), {"shown": [LSASS.id], LSASS.id: warn})
    assert "doesn't support Warn mode" in html(r)
    assert saved(draft)["values"] == {}


def test_unsupported_settings_and_the_intune_only_profile_are_marked(ga_client):
    page = html(ga_client.get(step_url(start(ga_client), "settings")))
    assert "Not supported by Microsoft Defender for Endpoint security settings management" in page
    draft = start(ga_client, "windows-security-experience")
    page = html(ga_client.get(step_url(draft, "basics")))
    assert "only applies to devices enrolled in Intune" in page


def test_every_setting_has_an_info_panel_with_its_csp_path_and_learn_more_link(ga_client):
    page = html(ga_client.get(step_url(start(ga_client), "settings")))
    setting = get_catalog().setting(REALTIME)
    assert setting.csp_path in page and setting.learn_more_url in page
    assert page.count('class="info"') == len(
        [s for s in get_catalog().profile(AV).settings if s.is_value_key]
    )


# ---- firewall rules editor -----------------------------------------------------------------------------------


def rule_url(draft, index):
    return reverse("policies:wizard_rule", kwargs={"draft_id": draft.draft_id, "index": index})


def test_the_firewall_rules_editor_adds_edits_and_removes_rules(ga_client):
    draft = start(ga_client, "microsoft-defender-firewall-rules", "firewall")
    r = ga_client.post(
        rule_url(draft, "new"),
        {R + "name": "RDP", R + "protocol": "6", R + "localportranges": "3389", R + "direction": "in"},
    )
    assert r.status_code == 302 and r["Location"] == step_url(draft, "settings")
    ga_client.post(
        rule_url(draft, "new"), {R + "name": "Ping", R + "protocol": "1", R + "icmptypesandcodes": "8:*"}
    )
    rules = saved(draft)["values"][FIREWALL_RULE_GROUP_ID]
    assert [r[R + "name"] for r in rules] == ["RDP", "Ping"]
    ga_client.post(
        rule_url(draft, 0), {R + "name": "RDP", R + "protocol": "6", R + "localportranges": "3389, 3390"}
    )
    assert saved(draft)["values"][FIREWALL_RULE_GROUP_ID][0][R + "localportranges"] == ["3389", "3390"]
    page = html(ga_client.get(step_url(draft, "settings")))
    assert "RDP" in page and "3389; 3390" in page
    ga_client.post(step_url(draft, "settings"), {"remove_rule": "0"})
    assert [r[R + "name"] for r in saved(draft)["values"][FIREWALL_RULE_GROUP_ID]] == ["Ping"]
    assert ga_client.post(step_url(draft, "settings"), {"remove_rule": "9"}).status_code == 400
    assert ga_client.get(rule_url(draft, "7")).status_code == 404


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({R + "protocol": "6"}, "Enter a name for the rule."),
        ({R + "name": "x", R + "protocol": "1", R + "localportranges": "80"}, "Port ranges can only be used"),
        (
            {R + "name": "x", R + "protocol": "6", R + "icmptypesandcodes": "8:*"},
            "ICMP types and codes can only be used",
        ),
        (
            {R + "name": "x", R + "policyappid": "a", R + "app_servicename": "Spooler"},
            "can't be used in the same rule",
        ),
        ({R + "name": "Ping"}, "rule names must be unique within a policy"),
    ],
)
def test_an_invalid_rule_is_refused_beside_its_field(ga_client, fields, message):
    draft = start(ga_client, "microsoft-defender-firewall-rules", "firewall")
    ga_client.post(rule_url(draft, "new"), {R + "name": "Ping", R + "protocol": "1"})
    r = ga_client.post(rule_url(draft, "new"), fields)
    assert r.status_code == 200 and message in html(r)
    assert len(saved(draft)["values"][FIREWALL_RULE_GROUP_ID]) == 1


# ---- editing, the policy page and its actions -----------------------------------------------------------------


@pytest.fixture
def policy(fleet):
    return services.create_policy(
        AV, "windows", "AV baseline", "Baseline", {REALTIME: 1, CPU: 50}, {"include": [fleet.workstations.pk]}
    )


def test_the_policy_page_shows_basics_assignments_and_only_configured_settings_with_labels(ga_client, policy):
    page = html(ga_client.get(reverse("policies:detail", kwargs={"policy_id": policy.policy_id})))
    assert "Allowed. Turns on and runs the real-time monitoring service." in page
    assert "Avg CPU Load Factor" in page and "Allow Cloud Protection" not in page
    assert "Workstations" in page
    for section in ("basics", "assignments", "settings"):
        assert reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": section}) in page


def test_editing_a_section_goes_through_the_wizard_and_saves_a_new_version(ga_client, policy, fleet):
    r = ga_client.get(reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": "settings"}))
    draft = PolicyDraft.objects.get(policy=policy)
    assert r["Location"] == step_url(draft, "settings")
    # Opening Edit again reuses the same draft.
    ga_client.get(reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": "settings"}))
    assert PolicyDraft.objects.filter(policy=policy).count() == 1
    assert ga_client.get(step_url(draft, "basics")).status_code == 404  # only the edited section
    r = ga_client.post(
        step_url(draft, "settings"), {"shown": [REALTIME, CPU], REALTIME: "0", CPU: "50", "nav": "next"}
    )
    assert r["Location"] == step_url(draft, "review")
    review = html(ga_client.get(step_url(draft, "review")))
    assert (
        "Changes to save" in review and "Not allowed. Turns off the real-time monitoring service." in review
    )
    ga_client.post(step_url(draft, "review"), {"nav": "save"})
    policy.refresh_from_db()
    assert (policy.version, policy.values) == (2, {REALTIME: 0, CPU: 50})


def test_an_edit_started_before_someone_else_saved_is_refused(ga_client, policy):
    ga_client.get(reverse("policies:edit", kwargs={"policy_id": policy.policy_id, "section": "basics"}))
    draft = PolicyDraft.objects.get(policy=policy)
    ga_client.post(step_url(draft, "basics"), {"name": "Mine", "nav": "next"})
    services.update_basics(policy, "Theirs", "")
    r = ga_client.post(step_url(draft, "review"), {"nav": "save"})
    assert r.status_code == 200 and "changed by someone else" in html(r)
    policy.refresh_from_db()
    assert policy.name == "Theirs"


def test_duplicate_delete_and_restore_pages(ga_client, policy, fleet):
    url = reverse("policies:duplicate", kwargs={"policy_id": policy.policy_id})
    assert 'value="AV baseline - Copy"' in html(ga_client.get(url))
    r = ga_client.post(url, {"name": "AV baseline", "description": ""})  # a duplicate name is allowed (Graph)
    assert r.status_code == 302 and Policy.objects.filter(name="AV baseline").count() == 2
    r = ga_client.post(url, {"name": "AV copy", "description": ""})
    copy = Policy.objects.get(name="AV copy")
    assert r["Location"] == reverse("policies:detail", kwargs={"policy_id": copy.policy_id})

    services.update_settings(policy, {REALTIME: 0})
    restore = reverse("policies:restore", kwargs={"policy_id": policy.policy_id, "number": 1})
    assert "Allow Realtime Monitoring" in html(ga_client.get(restore))
    ga_client.post(restore)
    policy.refresh_from_db()
    assert (policy.version, policy.values) == (3, {REALTIME: 1, CPU: 50})

    delete = reverse("policies:delete", kwargs={"policy_id": policy.policy_id})
    page = html(ga_client.get(delete))
    assert "Are you sure" in page and "will stop receiving it" in page
    assert Policy.objects.filter(pk=policy.pk).exists()  # GET changes nothing
    r = ga_client.post(delete)
    assert r["Location"] == reverse("policies:list", kwargs={"policy_type": "antivirus"})
    assert not Policy.objects.filter(pk=policy.pk).exists()


def test_versions_list_and_compare_any_two(ga_client, policy):
    services.update_settings(policy, {REALTIME: 0, CPU: 50})
    services.update_basics(policy, "AV renamed", "Baseline")
    page = html(ga_client.get(reverse("policies:versions", kwargs={"policy_id": policy.policy_id})))
    assert "Configuration settings updated" in page and "Basics updated" in page
    diff = ga_client.get(
        reverse("policies:version_diff", kwargs={"policy_id": policy.policy_id}), {"from": 1, "to": 3}
    )
    text = html(diff)
    assert "Allow Realtime Monitoring" in text and "AV renamed" in text
    missing = ga_client.get(
        reverse("policies:version_diff", kwargs={"policy_id": policy.policy_id}), {"from": 1, "to": 9}
    )
    assert missing.status_code == 404
    bad = ga_client.get(
        reverse("policies:version_diff", kwargs={"policy_id": policy.policy_id}), {"from": "x"}
    )
    assert bad.status_code == 400


def test_export_downloads_the_document_and_import_creates_a_policy(ga_client, policy):
    r = ga_client.get(reverse("policies:export", kwargs={"policy_id": policy.policy_id}))
    assert r["Content-Disposition"] == 'attachment; filename="av-baseline.json"'
    document = json.loads(r.content)
    assert document == export_document(policy)
    upload = SimpleUploadedFile("av.json", r.content, content_type="application/json")
    r = ga_client.post(
        reverse("policies:import"), {"file": upload, "name": "AV imported", "with_assignments": "on"}
    )
    imported = Policy.objects.get(name="AV imported")
    assert r["Location"] == reverse("policies:detail", kwargs={"policy_id": imported.policy_id})
    assert imported.values == policy.values


def test_import_shows_every_problem_with_its_setting_id(ga_client, policy):
    document = export_document(policy)
    document["settings"][0]["settingInstance"]["choiceSettingValue"]["value"] = REALTIME + "_5"
    upload = SimpleUploadedFile("bad.json", json.dumps(document).encode(), content_type="application/json")
    r = ga_client.post(reverse("policies:import"), {"file": upload, "name": "Other"})
    page = html(r)
    assert r.status_code == 200 and "nothing was saved" in page and f"<code>{REALTIME}</code>" in page
    not_json = SimpleUploadedFile("bad.json", b"{nope", content_type="application/json")
    r = ga_client.post(reverse("policies:import"), {"file": not_json})
    assert "isn't valid JSON" in html(r)
    assert Policy.objects.count() == 1


def test_readers_see_pages_but_cannot_change_anything(reader_client, policy):
    detail = html(reader_client.get(reverse("policies:detail", kwargs={"policy_id": policy.policy_id})))
    assert "Delete" not in detail and ">Edit<" not in detail
    assert (
        reader_client.post(reverse("policies:delete", kwargs={"policy_id": policy.policy_id})).status_code
        == 403
    )
    assert (
        reader_client.post(
            reverse("policies:create", kwargs={"policy_type": "antivirus"}), {"platform": "windows"}
        ).status_code
        == 403
    )
    assert Policy.objects.filter(pk=policy.pk).exists()


def test_a_forged_create_post_gets_a_message(ga_client):
    r = ga_client.post(
        reverse("policies:create", kwargs={"policy_type": "antivirus"}),
        {"platform": "windows", "profile": "attack-surface-reduction-rules"},
    )
    assert r.status_code == 200 and "Select a valid choice" in html(r)
    assert ga_client.get(reverse("policies:create", kwargs={"policy_type": "nope"})).status_code == 404
    assert not PolicyDraft.objects.exists()


def test_macos_and_linux_offer_their_own_profiles_and_create_a_draft(ga_client):
    url = reverse("policies:create", kwargs={"policy_type": "antivirus"})
    page = html(ga_client.get(url, {"platform": "macos"}))
    assert (
        "microsoft-defender-antivirus-exclusions-macos" in page and "Windows Security Experience" not in page
    )
    assert "microsoft-defender-antivirus-linux" not in page
    assert "aren't in this console's reference setting catalog" not in page
    r = ga_client.post(
        url, {"platform": "macos", "profile": "microsoft-defender-antivirus"}
    )  # the Windows one
    assert r.status_code == 200 and "errorlist" in html(r)  # the Windows profile isn't offered for macOS
    assert not PolicyDraft.objects.exists()
    r = ga_client.post(url, {"platform": "linux", "profile": "microsoft-defender-antivirus-linux"})
    assert r.status_code == 302
    draft = PolicyDraft.objects.get()
    assert (draft.data["profile"], draft.data["platform"]) == (
        "Microsoft Defender Antivirus (Linux)",
        "linux",
    )
    edr = html(
        ga_client.get(
            reverse("policies:create", kwargs={"policy_type": "endpoint-detection-and-response"}),
            {"platform": "linux"},
        )
    )
    assert "Microsoft Defender Global Exclusions (AV+EDR)" in edr


def test_the_lists_search_and_the_overview_counts(ga_client, policy):
    services.create_policy(AV, "windows", "Servers AV", "", {})
    services.create_policy(ASR, "windows", "ASR audit", "", {})
    url = reverse("policies:list", kwargs={"policy_type": "antivirus"})
    page = html(ga_client.get(url, {"q": "serv"}))
    assert "Servers AV" in page and "AV baseline" not in page
    page = html(ga_client.get(url))
    assert "AV baseline" in page and "ASR audit" not in page and "Devices" in page
    overview = html(ga_client.get(reverse("policies:overview")))
    assert reverse("policies:list", kwargs={"policy_type": "attack-surface-reduction"}) in overview


def test_the_impact_preview_is_a_partial_for_htmx_and_a_page_without_javascript(ga_client, fleet):
    draft = start(ga_client)
    ga_client.post(
        step_url(draft, "assignments"),
        {"shown_group": [fleet.workstations.pk], "include": [fleet.workstations.pk]},
    )
    url = reverse("policies:wizard_impact", kwargs={"draft_id": draft.draft_id})
    partial = html(ga_client.get(url, HTTP_HX_REQUEST="true"))
    assert partial.lstrip().startswith('<div id="impact"') and 'id="impact-mde">3<' in partial
    assert "<html" in html(ga_client.get(url))


def test_the_exclusions_table_adds_keeps_and_removes_entries(ga_client):
    from django.urls import reverse as url_of

    ga_client.post(
        url_of("policies:create", kwargs={"policy_type": "antivirus"}),
        {"platform": "linux", "profile": "microsoft-defender-antivirus-linux"},
    )
    draft = PolicyDraft.objects.latest("id")
    e = "linux_mdatp_managed_antivirusengine_exclusions"

    def row(i: int, **fields) -> dict:
        return {f"{e}__{i}__{e}_item_{k}": v for k, v in fields.items()}

    post = {"shown": [e], f"{e}__rows": "3", "nav": "stay"}
    post |= row(0, **{"$type": "excludedPath", "path": "/srv/a", "isdirectory": "true"})
    post |= row(1, **{"$type": "excludedFileName", "name": "/usr/bin/tool"})
    post |= row(2, **{"$type": "", "path": ""})  # the empty "new entry" row: ignored
    ga_client.post(step_url(draft, "settings"), post)
    assert [x.get(e + "_item_path") or x.get(e + "_item_name") for x in saved(draft)["values"][e]] == [
        "/srv/a",
        "/usr/bin/tool",
    ]
    page = html(ga_client.get(step_url(draft, "settings")))
    assert 'value="/usr/bin/tool"' in page and f'name="{e}__rows" value="3"' in page  # 2 entries + a new row

    post = {"shown": [e], f"{e}__rows": "3", "nav": "stay", f"{e}__0__remove": "1"}
    post |= row(0, **{"$type": "excludedPath", "path": "/srv/a"}) | row(
        1, **{"$type": "excludedFileName", "name": "/usr/bin/tool"}
    )
    ga_client.post(step_url(draft, "settings"), post)
    assert [x[e + "_item_name"] for x in saved(draft)["values"][e]] == ["/usr/bin/tool"]

    bad = {"shown": [e], f"{e}__rows": "1", "nav": "next"} | row(
        0, **{"$type": "excludedFileExtension", "extension": "a/b"}
    )
    r = ga_client.post(step_url(draft, "settings"), bad)
    assert r.status_code == 200 and "looks like a path" in html(r)
    assert 'value="a/b"' in html(r)  # the typed value stays
    assert [x[e + "_item_name"] for x in saved(draft)["values"][e]] == ["/usr/bin/tool"]  # nothing lost
