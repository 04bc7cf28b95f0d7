"""The fleet Effective settings report: counts from the aggregates equal a recount, scoped people see their
devices only, each count lists its devices, CSV, and the live poll answers 204 until a count changes."""

from __future__ import annotations

import csv
import html
import io

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console import rbac
from console.interned import store_texts, text_key
from console.roles import sync_roles
from devices.models import Device, GroupPolicyObject, LocalAdminChange
from reports import effective
from reports.ingest import SETTING_COLUMNS, insert_rows
from reports.models import STATUS_CODES, DeviceSettingStatus
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

ADOBE = f.P + "attacksurfacereductionrules_blockadobereaderfromcreatingchildprocesses"
GUID = "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c"


@pytest.fixture
def fleet():
    servers, desktops = f.group("Servers"), f.group("Desktops")
    s1 = f.device("SRV-1", os="windows_server", groups=[servers], ad_domain="contoso.com")
    s2 = f.device("SRV-2", os="windows_server", groups=[servers], ad_domain="contoso.com")
    w1 = f.device("WS-1", groups=[desktops])
    f.device("MAC-1", os="macos", groups=[desktops])
    f.policy(
        "ASR", {ADOBE: f"{GUID}=1"}, profile="Attack Surface Reduction Rules", include=[servers, desktops]
    )
    GroupPolicyObject.objects.create(
        name="Domain audit", settings={ADOBE: f"{GUID}=2"}, link_domain="contoso.com"
    )
    GroupPolicyObject.objects.create(name="PUA", settings={f.PUA: 1}).devices.add(w1)
    from django.utils import timezone

    LocalAdminChange.objects.create(device=w1, setting_id=f.EXCLUDED_PATHS, operation="add", value=["C:\\dev"],
                                    at=timezone.now())  # fmt: skip
    f.checkin(s1, s2, w1)
    return {"servers": servers, "desktops": desktops, "s1": s1, "w1": w1}


def rows_by_key(rows):
    return {(r.setting_key, r.entry): r for r in rows}


def test_the_fleet_counts_intent_matches_overrides_by_source_and_nothing_configured(fleet, global_admin):
    rows, reporting = effective.fleet_rows(global_admin)
    assert reporting == 3  # the Windows devices; the Mac reports none
    by_key = rows_by_key(rows)
    adobe = by_key[(ADOBE, "")]
    assert (adobe.matches, adobe.overridden, adobe.not_configured) == (1, {"group_policy": 2}, 0)
    pua = by_key[(f.PUA, "")]
    assert (pua.matches, pua.unmanaged, pua.not_configured) == (0, {"group_policy": 1}, 2)
    local = by_key[(f.EXCLUDED_PATHS, "C:\\dev")]
    assert (local.kind, local.unmanaged, local.not_configured) == ("exclusion", {"local_admin": 1}, 2)


def test_a_person_scoped_to_desktops_counts_only_desktops(fleet):
    sync_roles()
    user = get_user_model().objects.create_user("scoped", password="x-Unused-1234")
    role = rbac.create_role(name="Readers", actions=["Managed devices: Read"])
    rbac.create_assignment(name="Desktops only", role=role, members=[user], scope_groups=[fleet["desktops"]])

    rows, reporting = effective.fleet_rows(user)

    assert reporting == 1
    adobe = rows_by_key(rows)[(ADOBE, "")]
    assert (adobe.matches, adobe.overridden) == (1, {})
    servers = effective.fleet_devices(user, ADOBE, "", "overridden", "group_policy")
    assert list(servers) == []


def test_each_count_links_to_its_devices_and_the_csv_has_the_same_numbers(fleet, ga_client):
    page = ga_client.get(reverse("reports:effective_settings"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Block Adobe Reader from creating child processes" in text
    listed = ga_client.get(
        reverse("reports:effective_devices"),
        {"setting": ADOBE, "bucket": "overridden", "source": "group_policy"},
    )
    names = {i["device"].display_name for i in listed.context["items"]}
    assert names == {"SRV-1", "SRV-2"}
    nothing = ga_client.get(
        reverse("reports:effective_devices"), {"setting": f.PUA, "bucket": "not_configured"}
    )
    assert {i["device"].display_name for i in nothing.context["items"]} == {"SRV-1", "SRV-2"}

    exported = ga_client.get(reverse("reports:effective_settings"), {"export": "csv"})
    table = list(csv.DictReader(io.StringIO(exported.content.decode())))
    adobe = next(r for r in table if r["Setting"] == "Block Adobe Reader from creating child processes")
    assert (adobe["Devices matching intent"], adobe["Overridden by Group Policy"], adobe["Nothing configured"]) == (
        "1", "2", "0",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"setting": "nope", "bucket": "matches"}, "isn't in the catalog"),
        ({"setting": ADOBE, "bucket": "everything"}, "There is no count"),
        ({"setting": ADOBE, "bucket": "overridden", "source": "sccm"}, "There is no source"),
    ],
)
def test_a_bad_drill_down_is_400_with_a_way_back(fleet, ga_client, params, says):
    response = ga_client.get(reverse("reports:effective_devices"), params)
    assert response.status_code == 400
    assert says in html.unescape(response.content.decode())
    assert reverse("reports:effective_settings") in response.content.decode()


def test_the_live_poll_is_204_until_a_count_changes(fleet, ga_client, global_admin):
    version = effective.fleet_version(global_admin)
    live = reverse("reports:effective_settings_live")
    assert ga_client.get(live, {"v": version}).status_code == 204

    GroupPolicyObject.objects.filter(name="Domain audit").update(enabled=False)
    f.make_due(fleet["s1"])
    f.checkin(fleet["s1"])

    changed = ga_client.get(live, {"v": version})
    assert changed.status_code == 200
    assert "effective-live" in changed.content.decode()


def test_the_device_tab_filters_by_source_and_mismatch(fleet, ga_client):
    url = reverse("devices:effective", args=[fleet["w1"].pk])
    everything = ga_client.get(url, {"hide_defaults": "1"}).context["entries"]
    assert {e.source for e in everything} == {"intune", "group_policy", "local_admin"}
    assert [e.setting_key for e in ga_client.get(url, {"source": "local_admin"}).context["entries"]] == [
        f.EXCLUDED_PATHS
    ]
    assert ga_client.get(url, {"mismatches": "1"}).context["entries"] == []
    bad = ga_client.get(url, {"source": "sccm"})
    assert bad.status_code == 200 and "There is no source" in html.unescape(bad.content.decode())


def test_get_mppreference_on_the_device_panel_shows_the_effective_values(fleet, ga_client):
    panel = ga_client.get(reverse("checkins:device_panel", args=[fleet["w1"].pk])).content.decode()
    block = panel.split('data-testid="mp-preference"', 1)[1].split("</pre>", 1)[0]
    assert "C:\\dev" in html.unescape(block)  # the local exclusion merges: Get-MpPreference lists it
    servers = ga_client.get(reverse("checkins:device_panel", args=[fleet["s1"].pk])).content.decode()
    block = servers.split('data-testid="mp-preference"', 1)[1].split("</pre>", 1)[0]
    assert "AttackSurfaceReductionRules_Actions" in block and ": {2}" in block  # the domain GPO's Audit


WEBSHELL = f.P + "attacksurfacereductionrules_blockwebshellcreationforservers"


def test_the_device_tab_lists_every_av_setting_and_asr_rule_with_default_where_nothing_configures_it(
    fleet, ga_client
):
    from devices.agent import effective_defaults

    url = reverse("devices:effective", args=[fleet["w1"].pk])
    entries = {(e.setting_key, e.entry): e for e in ga_client.get(url).context["entries"]}
    assert {(key, "") for key in effective_defaults()} <= set(entries)
    webshell = entries[(WEBSHELL, "")]
    assert (webshell.source, webshell.source_label, webshell.value, webshell.intent) == (
        "default", "Default", "Off", "none",
    )  # fmt: skip
    assert entries[(ADOBE, "")].source == "intune"  # configured entries are not shadowed by a default
    only_defaults = ga_client.get(url, {"source": "default"}).context["entries"]
    assert only_defaults and {e.source for e in only_defaults} == {"default"}
    assert (WEBSHELL, "") in {(e.setting_key, e.entry) for e in only_defaults}
    hidden = ga_client.get(url, {"hide_defaults": "1"}).context["entries"]
    assert "default" not in {e.source for e in hidden}


def test_the_fleet_report_counts_nothing_configured_for_every_setting_and_rule(
    fleet, ga_client, global_admin
):
    from devices.agent import effective_defaults

    rows, reporting = effective.fleet_rows(global_admin, universe=tuple(effective_defaults()))
    by_key = rows_by_key(rows)
    assert {(key, "") for key in effective_defaults()} <= set(by_key)
    webshell = by_key[(WEBSHELL, "")]
    assert (webshell.matches, webshell.overridden, webshell.not_configured) == (0, {}, reporting)
    assert by_key[(ADOBE, "")].not_configured == 0

    exported = ga_client.get(reverse("reports:effective_settings"), {"export": "csv"})
    table = list(csv.DictReader(io.StringIO(exported.content.decode())))
    name = effective.setting_name(WEBSHELL)
    assert next(r for r in table if r["Setting"] == name)["Nothing configured"] == "3"
    nothing = ga_client.get(
        reverse("reports:effective_devices"), {"setting": WEBSHELL, "bucket": "not_configured"}
    )
    assert {i["device"].display_name for i in nothing.context["items"]} == {"SRV-1", "SRV-2", "WS-1"}


def test_the_view_report_csv_says_which_source_overrides_each_device(fleet, ga_client):
    from policies.models import Policy

    policy = Policy.objects.get(name="ASR")
    url = reverse("reports:policy_devices", args=[policy.policy_id])
    exported = ga_client.get(url, {"export": "csv"})
    assert exported.status_code == 200
    body = b"".join(exported.streaming_content).decode().lstrip("\ufeff")
    table = {r["Device name"]: r for r in csv.DictReader(io.StringIO(body))}
    assert (table["SRV-1"]["Overridden by"], table["SRV-2"]["Overridden by"]) == (
        "Group Policy",
        "Group Policy",
    )
    assert table["WS-1"]["Overridden by"] == ""  # the desktop enforces the policy's Block


def test_a_linux_devices_tab_shows_managed_local_and_default_values_from_the_agents_merge(ga_client):
    from django.utils import timezone

    from devices.models import Device

    cloud = "linux_mdatp_managed_cloudservice_enabled"
    device = Device.objects.create(
        display_name="lnx-app-01",
        os="linux",
        managed_by="mde",
        last_checkin_at=timezone.now(),
        agent_state={
            "preferences": {},
            "applied": {cloud: True},
            "managed": [cloud],
            "local": {"cloudService.enabled": False, "cloudService.diagnosticLevel": "required"},
        },
    )
    detail = ga_client.get(reverse("devices:detail", args=[device.pk])).content.decode()
    url = reverse("devices:effective", args=[device.pk])
    assert url in detail  # the device page has the Effective settings tab
    page = ga_client.get(url)
    entries = {e.setting_key: e for e in page.context["entries"]}
    managed = entries["cloudService.enabled"]
    assert (managed.value, managed.source, managed.intent) == ("true", "intune", "matches")
    assert managed.attempts == [{"source": "Local admin", "value": "false", "name": "mdatp config"}]
    local = entries["cloudService.diagnosticLevel"]
    assert (local.value, local.source_label) == ("required", "Local admin")
    assert {e.source for e in entries.values()} == {"intune", "local_admin", "default"}
    assert "Windows devices only" not in page.content.decode().split('id="mdatp-effective-note"')[0]
    only_local = ga_client.get(url, {"source": "local_admin"}).context["entries"]
    assert [e.setting_key for e in only_local] == ["cloudService.diagnosticLevel"]
    assert "default" not in {e.source for e in ga_client.get(url, {"hide_defaults": "1"}).context["entries"]}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
def test_overrides_probe_the_policys_rows_per_effective_row_whatever_join_the_planner_prefers(fleet):
    # At 1,000,000 devices the Per setting page took 3 s: the check "this policy's row Succeeded" was an EXISTS,
    # which PostgreSQL made a hash semi-join over every succeeded row of the policy. The same plan is chosen here
    # by telling the planner to avoid nested loops, as its misestimate did there. When a device b-tree stood beside a
    # hash key, a row was found by ANDing two indexes, reading every entry of the policy's setting per probe (80 s).
    from policies.models import Policy

    policy = Policy.objects.get(name="ASR")
    servers = set(Device.objects.filter(display_name__startswith="SRV-").values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as ctx:
        assert effective.policy_overrides(policy.pk) == {ADOBE: {"group_policy": 2}}
        assert set(effective.overridden_devices(policy.pk, ADOBE)) == servers
        assert set(effective.policy_device_overrides(policy.pk)) == servers
    checks = [q["sql"] for q in ctx.captured_queries if "reports_devicesettingstatus" in q["sql"]]
    assert len(checks) == 3
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_nestloop = off")
        # A handful of narrow rows fit one page, and a scan of it costs less than any index: rule that out, as
        # a million devices do, so the plan shows which index the probe would take.
        cursor.execute("SET LOCAL enable_seqscan = off")
        # And the policy's setting Succeeded on thousands of other devices, as it does at scale: reading them by
        # the (policy, setting, status) index is then the slow way, and the statistics say so.
        store_texts(["1"])
        insert_rows(
            DeviceSettingStatus,
            SETTING_COLUMNS,
            [
                (
                    10**9 + i,
                    policy.pk,
                    text_key(ADOBE),
                    text_key("1"),
                    STATUS_CODES["succeeded"],
                    None,
                    None,
                    "[]",
                )
                for i in range(5000)
            ],
        )
        cursor.execute("ANALYZE reports_devicesettingstatus")
        for sql in checks:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "SubPlan" in plan and "Join" not in plan, plan
            # the device's rows for the policy through the (device, policy) b-tree (reports 0015), not a
            # combination of the (policy, setting) index with another
            assert "Index Scan using dss_device_policy_idx" in plan and "BitmapAnd" not in plan, plan
