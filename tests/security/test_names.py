"""Names and free text (issue 12, item 4): control characters (ESC, backspace, CR, …) and right-to-left override
characters are refused with a message in policy names (wizard, import, API), group names and descriptions; rows
saved before are cleaned by a migration; CSV exports keep their formula-injection guard."""

from __future__ import annotations

import csv
import io
import json
from importlib import import_module

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from console.models import AuditEvent
from console.text import problem, strip_unsafe
from devices.models import Group
from policies import services
from policies.exports import export_document
from policies.models import Policy, PolicyDraft
from tests.api.shapes import REALTIME, assert_graph_error

pytestmark = pytest.mark.django_db

ESC = "\x1b[31mAV red"
BACKSPACE = "AV\x08\x08\x08Evil"
CR = "AV pilot\rAV production"
RLO = "AV \u202egnp.exe"  # shows as "AV exe.png"
HOSTILE_NAMES = [ESC, BACKSPACE, CR, RLO, "AV\u0000nul", "AV\u2066isolate\u2069", "AV\u0085next line"]
AV = "Microsoft Defender Antivirus"


def _no_trace_in_audit(fragment: str) -> bool:
    return not any(fragment in repr(e.object_repr) + repr(e.after) for e in AuditEvent.objects.all())


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_it_names_the_character_it_refuses(name):
    message = problem(name)
    assert message and "U+" in message and "not allowed" in message


def test_it_accepts_ordinary_names_in_any_script_and_line_breaks_in_descriptions():
    for name in ["AV pilot – Contoso", "Защита", "防病毒", "مكافحة الفيروسات", "AV 🛡️", "=SUM(1)"]:
        assert problem(name) is None
    assert problem("First line\r\nsecond\tline\n", multiline=True) is None
    assert problem("First line\rsecond", multiline=True)


# ---------------------------------------------------------------------------------------------- policies


def _draft(client) -> PolicyDraft:
    client.post(
        reverse("policies:create", kwargs={"policy_type": "antivirus"}),
        {"platform": "windows", "profile": "microsoft-defender-antivirus"},
    )
    return PolicyDraft.objects.latest("id")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_it_refuses_a_hostile_policy_name_in_the_wizard(ga_client, name):
    draft = _draft(ga_client)
    url = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "basics"})

    response = ga_client.post(url, {"name": name, "description": "", "nav": "next"})

    assert response.status_code == 200
    assert "not allowed" in str(response.context["form"].errors["name"])
    draft.refresh_from_db()
    assert draft.data["name"] == ""


@pytest.mark.parametrize("description", [ESC, BACKSPACE, "line\rover", RLO])
def test_it_refuses_a_hostile_description_in_the_wizard_but_keeps_line_breaks(ga_client, description):
    draft = _draft(ga_client)
    url = reverse("policies:wizard", kwargs={"draft_id": draft.draft_id, "step": "basics"})

    refused = ga_client.post(url, {"name": "AV", "description": description, "nav": "next"})
    accepted = ga_client.post(url, {"name": "AV", "description": "one\r\ntwo\tthree", "nav": "next"})

    assert "not allowed" in str(refused.context["form"].errors["description"])
    assert accepted.status_code == 302


def _import(client, document: dict, name: str = ""):
    upload = SimpleUploadedFile("p.json", json.dumps(document).encode(), content_type="application/json")
    return client.post(reverse("policies:import"), {"file": upload, "name": name})


@pytest.mark.parametrize("name", [ESC, BACKSPACE, CR, RLO])
def test_it_refuses_a_hostile_policy_name_in_an_imported_file_and_in_the_name_field(ga_client, name):
    source = services.create_policy(AV, "windows", "AV source", values={REALTIME: 1})
    document = export_document(source)

    from_file = _import(ga_client, {**document, "name": name})
    from_field = _import(ga_client, document, name=name)

    # ESC and backspace are refused by the JSON parser already (a file error), CR and RLO by the name rule
    file_errors = from_file.context["form"].errors.get("file", [])
    problems = [p.message for p in from_file.context["problems"] or []]
    assert any(f"U+{ord(c):04X}" in " ".join([*file_errors, *problems]) for c in "\x1b\x08\r\u202e")
    assert "not allowed" in str(from_field.context["form"].errors["name"])
    assert Policy.objects.count() == 1
    assert _no_trace_in_audit(name)


@pytest.mark.parametrize("name", [ESC, BACKSPACE, CR, RLO])
def test_it_refuses_a_hostile_policy_name_over_the_api(ga_api, name):
    source = services.create_policy(AV, "windows", "AV source", values={REALTIME: 1})
    document = {**export_document(source), "name": name}

    assert_graph_error(ga_api.post("/beta/deviceManagement/configurationPolicies", document), 400, text="U+")
    path = f"/beta/deviceManagement/configurationPolicies/{source.policy_id}"
    assert_graph_error(ga_api.patch(path, {"name": name}), 400, text="U+")
    assert list(Policy.objects.values_list("name", flat=True)) == ["AV source"]


# ---------------------------------------------------------------------------------------------- groups


def _group_form(**fields) -> dict:
    return {"name": "Group", "description": "", "object_kind": "device", "membership_type": "assigned",
            "membership_rule": "", **fields}  # fmt: skip


@pytest.mark.parametrize("name", [ESC, BACKSPACE, "Pilot\rProduction", RLO])
def test_it_refuses_hostile_group_names_and_descriptions_in_the_ui(ga_client, name):
    create = reverse("devices:group_create")
    bad_name = ga_client.post(create, _group_form(name=name))
    bad_description = ga_client.post(create, _group_form(name="Pilot", description=name))

    assert "not allowed" in str(bad_name.context["form"].errors["name"])
    assert "not allowed" in str(bad_description.context["form"].errors["description"])
    assert not Group.objects.exists()


@pytest.mark.parametrize("name", [ESC, BACKSPACE, CR, RLO])
def test_it_refuses_hostile_group_names_and_descriptions_over_the_api(ga_api, name):
    required = {
        "mailEnabled": False,
        "mailNickname": "pilot",
        "securityEnabled": True,
    }  # Graph's required trio
    assert_graph_error(ga_api.post("/beta/groups", {"displayName": name, **required}), 400, text="U+")
    body = {"displayName": "Pilot", "description": name, **required}
    assert_graph_error(ga_api.post("/v1.0/groups", body), 400, text="U+")
    assert not Group.objects.exists()


# ---------------------------------------------------------------------------------------------- old rows, exports


def test_the_migration_cleans_names_and_descriptions_saved_before(db):
    clean = import_module("console.migrations.0004_clean_unsafe_text").clean
    policy = services.create_policy(AV, "windows", "AV clean", values={REALTIME: 1})
    Policy.objects.filter(pk=policy.pk).update(name=RLO, description="ok\r\nline\x1b[2J")
    Group.objects.create(name="Pilot")
    dirty = Group.objects.create(name="Pi\x08lot-old")
    Group.objects.filter(pk=dirty.pk).update(name="Pilot\x1b", description=CR)

    clean(apps, None)

    policy.refresh_from_db()
    dirty.refresh_from_db()
    assert policy.name == "AV gnp.exe" and policy.description == "ok\nline[2J"
    assert dirty.name == "Pilot (2)" and dirty.description == "AV pilot\nAV production"
    assert strip_unsafe(ESC) == "[31mAV red"


def test_csv_exports_keep_their_formula_guard(ga_client):
    services.create_policy(AV, "windows", '=HYPERLINK("http://evil.example","x")', values={REALTIME: 1})

    response = ga_client.get(reverse("audit_logs"), {"export": "csv"})

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    targets = [row[6] for row in rows[1:]]
    assert '\'=HYPERLINK("http://evil.example","x")' in targets
