"""Untrusted JSON (issue 12, item 1): every entry point answers 400 (or 413) in its own error format - never a
500 - for NUL and control characters, deep nesting, NaN and oversized bodies, and nothing is written.

Entry points: the device channel's report (channel error JSON), policy import in the UI (a form error) and the
Graph-shaped API (the Graph error envelope). The fuzz at the bottom throws generated hostile documents at all
three (bounded: a few dozen examples each).
"""

from __future__ import annotations

import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console import untrusted_json
from devices import agent, credentials
from policies.exports import export_document
from policies.models import Policy
from reports.models import CheckinRecord, DeviceSettingStatus
from tests.api.shapes import assert_graph_error
from tests.checkins import fleet as f

pytestmark = pytest.mark.django_db

REPORT = "/devicechannel/v1/report"
CHECKIN = "/devicechannel/v1/checkin"
POLICIES = "/beta/deviceManagement/configurationPolicies"
DEEP = 20_000


def nested(depth: int, leaf: str = "1", key: str | None = None) -> str:
    """JSON text nesting ``depth`` levels (built as text: json.dumps itself would recurse)."""
    if key is None:
        return "[" * depth + leaf + "]" * depth
    return f'{{"{key}":' * depth + leaf + "}" * depth


# ---------------------------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"a": "x\\u0000y"}', "NUL"),
        ('{"a\\u0000": 1}', "NUL"),
        ('{"a": "\\u001b[31mred"}', "U+001B"),
        ('{"a": "back\\bspace"}', "U+0008"),
        ('{"a": "\\ud800"}', "surrogate"),
        ('{"a": "raw\x7fdelete"}', "U+007F"),  # no escape at all: found in the text itself
        ("[NaN]", "NaN"),
        ("[1e999]", "too large"),
        (nested(DEEP), "levels deep"),
        (nested(1_000, key="k"), "levels deep"),
        ("{nope", "isn't valid JSON"),
    ],
)
def test_it_refuses_what_no_caller_can_store_with_a_message(text, needle):
    with pytest.raises(untrusted_json.UntrustedJSONError) as refused:
        untrusted_json.loads(text.encode(), max_bytes=1024 * 1024)
    assert refused.value.status == 400
    assert needle in refused.value.message


def test_it_keeps_tabs_line_breaks_and_brackets_inside_strings():
    text = json.dumps({"a": "line\nnext\ttab\r\n" + "[" * 500, "b": [[[{"c": None}]]]})
    assert untrusted_json.loads(text, max_bytes=4096) == json.loads(text)
    assert untrusted_json.nesting_depth(text) == 5  # the object, three arrays, an object


@pytest.mark.parametrize(
    "text",
    [
        '"' + '\\"' * 1_900_000,  # one quote, then escaped quotes only: no string ever ends
        '["a' + "\\\\" * 1_900_000,
        "[" * 3_900_000,
    ],
    ids=["escaped-quotes", "unterminated-backslashes", "brackets"],
)
def test_it_measures_depth_in_linear_time_on_a_4_mb_body(text):
    started = time.perf_counter()
    with pytest.raises(untrusted_json.UntrustedJSONError):
        untrusted_json.loads(text, max_bytes=untrusted_json.GRAPH_MAX_BYTES)
    assert time.perf_counter() - started < 3


def test_it_answers_413_over_the_size_limit():
    with pytest.raises(untrusted_json.UntrustedJSONError) as refused:
        untrusted_json.loads(b"[" + b"1," * 600 + b"1]", max_bytes=1024)
    assert refused.value.status == 413


# ---------------------------------------------------------------------------------------------- the device channel


@pytest.fixture
def device_world():
    g = f.group("Mine")
    d = f.device("PC-1", groups=[g])
    f.policy("AV mine", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    token = credentials.issue(d)
    return Client(headers={"Authorization": f"Bearer {token}", "X-Tenant-Id": str(f.tenant().tenant_id)})


def _report(client) -> dict:
    doc = client.get(CHECKIN).json()
    state, reports = agent.apply(agent.AgentState.initial(), doc["desired"])
    return {
        "protocolVersion": 1,
        "desiredFingerprint": doc["desiredFingerprint"],
        "reportToken": doc["reportToken"],
        "settings": {
            k: {"status": r.status, "value": r.value, "errorCode": r.error_code, "message": r.message}
            for k, r in reports.items()
        },
        "agentState": state.to_dict(),
    }


def _post_text(client, text: str):
    return client.post(REPORT, text.encode("utf-8", "surrogatepass"), content_type="application/json")


def _with_placeholder(payload: dict, field: str, raw: str) -> str:
    payload["settings"][f.PUA][field] = "@@PLACEHOLDER@@"
    return json.dumps(payload).replace('"@@PLACEHOLDER@@"', raw)


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("message", '"Applied\\u0000"'),
        ("value", '"\\u0000"'),
        ("value", '{"nested": "x\\u0000"}'),
        ("message", '"\\u001b[2J cleared"'),
        ("value", nested(DEEP)),
        ("value", nested(DEEP, key="v")),
        ("value", "NaN"),
    ],
)
def test_it_answers_400_to_a_hostile_report_and_the_device_can_report_again(device_world, field, raw):
    client = device_world
    payload = _report(client)
    rows = DeviceSettingStatus.objects.count()

    response = _post_text(client, _with_placeholder(payload, field, raw))

    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "malformed_report"
    assert response.json()["error"]["message"]
    assert DeviceSettingStatus.objects.count() == rows and CheckinRecord.objects.count() == 0
    assert (
        client.post(REPORT, json.dumps(_report(client)), content_type="application/json").status_code == 200
    )


# ---------------------------------------------------------------------------------------------- policy import (UI)


@pytest.fixture
def exported(ga_client):
    from policies import services
    from tests.api.shapes import REALTIME

    policy = services.create_policy(
        "Microsoft Defender Antivirus", "windows", "AV source", values={REALTIME: 1}
    )
    return export_document(policy)


def _import(client, content: bytes, name: str = ""):
    upload = SimpleUploadedFile("policy.json", content, content_type="application/json")
    return client.post(reverse("policies:import"), {"file": upload, "name": name})


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda doc: json.dumps({**doc, "name": "AV\u0000imported"}), id="NUL-in-name"),
        pytest.param(lambda doc: nested(DEEP), id="nested-20000"),
        pytest.param(lambda doc: nested(1_000, key="settings"), id="nested-1000-objects"),
        pytest.param(
            lambda doc: json.dumps(doc).replace('"settings": [', '"settings": [' + nested(5_000) + ",", 1),
            id="deep-inside-settings",
        ),
    ],
)
def test_it_shows_a_form_error_for_a_hostile_import_file(ga_client, exported, content):
    before = Policy.objects.count()

    response = _import(ga_client, content(exported).encode())

    assert response.status_code == 200
    errors = response.context["form"].errors["file"]
    assert errors and ("NUL" in errors[0] or "levels deep" in errors[0])
    assert Policy.objects.count() == before


# ---------------------------------------------------------------------------------------------- the Graph API


@pytest.fixture
def api_paths(ga_api) -> list[str]:
    """Every JSON-taking write of the API: policy create, /assign, /groups (beta and v1.0), the report actions."""
    from policies import services
    from reports.api.views import REPORTS
    from tests.api.shapes import REALTIME

    policy = services.create_policy("Microsoft Defender Antivirus", "windows", "AV api", values={REALTIME: 1})
    return [
        POLICIES,
        f"{POLICIES}/{policy.policy_id}/assign",
        "/beta/groups",
        "/v1.0/groups",
        *(f"/beta/deviceManagement/reports/{name}" for name in REPORTS),
    ]


def test_it_answers_the_graph_envelope_to_a_body_nested_1000_levels(ga_api, api_paths):
    body = nested(1_000, key="displayName" + "x" * 45)
    assert 55_000 < len(body) < 70_000
    for path in api_paths:
        assert_graph_error(ga_api.post(path, body), 400, "BadRequest", text="levels deep")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ('{"displayName": "a\\u0000b"}', "NUL"),
        ('{"displayName": "\\u001b[31mred"}', "control character"),
        ('{"displayName": "a", "description": NaN}', "NaN"),
        ('{"displayName": "a\\ud800"}', "surrogate"),
    ],
)
def test_it_answers_400_to_unstorable_text_in_an_api_body(ga_api, body, text):
    assert_graph_error(ga_api.post("/beta/groups", body), 400, "BadRequest", text=text)


def test_it_accepts_bodies_up_to_graphs_4_mb_and_answers_413_above(ga_api):
    padding = "x" * (3 * 1024 * 1024)
    required = {"mailEnabled": False, "mailNickname": "big", "securityEnabled": True}  # Graph's required trio
    big = json.dumps({"displayName": "Big", "description": padding, **required})
    # over Django's own 2.5 MB body limit but within Graph's 4 MB: the API's validation answers, in its envelope
    assert_graph_error(ga_api.post("/beta/groups", big), 400, "BadRequest", text="description")
    huge = json.dumps({"displayName": "Huge", "description": "x" * (4 * 1024 * 1024), **required})
    assert_graph_error(ga_api.post("/beta/groups", huge), 413, "RequestEntityTooLarge", text="4 MB")


# ---------------------------------------------------------------------------------------------- bounded fuzz

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),  # any code point, NUL and control characters included
    st.sampled_from(["\x00", "\x1b[31m", "\b", "\r", "\u202e", "\ud800"]),
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _hostile_text(value, depth: int, tail: str) -> str:
    text = json.dumps(value, ensure_ascii=True)  # lone surrogates survive as \\udxxx escapes
    return nested(depth, text) + tail


_hostile = st.builds(
    _hostile_text,
    _values,
    st.sampled_from([0, 1, 3, 200, 1_500, DEEP]),
    st.sampled_from(["", "", "", "x", "NaN", "]"]),
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(field=st.sampled_from(["message", "value", "status", "errorCode"]), raw=_hostile)
def test_fuzz_the_device_channel_never_answers_5xx(device_world, field, raw):
    response = _post_text(device_world, _with_placeholder(_report(device_world), field, raw))
    assert response.status_code < 500, response.content[:300]


@FUZZ
@given(
    field=st.sampled_from(["name", "description", "settings", "assignments", "templateReference"]),
    raw=_hostile,
)
def test_fuzz_policy_import_never_answers_5xx(ga_client, exported, field, raw):
    text = json.dumps({**exported, field: "@@PLACEHOLDER@@"}).replace('"@@PLACEHOLDER@@"', raw)
    response = _import(ga_client, text.encode("utf-8", "surrogatepass"))
    assert response.status_code < 500


@FUZZ
@given(path=st.integers(min_value=0, max_value=20), raw=_hostile)
def test_fuzz_the_api_never_answers_5xx(ga_api, api_paths, path, raw):
    response = ga_api.post(api_paths[path % len(api_paths)], raw.encode("utf-8", "surrogatepass"))
    assert response.status_code < 500, response.content[:300]
    assert response.json().get("error", {}).get("code") != "InternalServerError"
