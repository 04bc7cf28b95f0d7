"""Access to every Graph endpoint: 401 without a valid token, 403 for a Read Only Operator's writes, the Graph
error envelope for unknown paths and methods, throttling at the tenant's limits, and the public OpenAPI schema."""

from __future__ import annotations

import json
import uuid

import pytest

from console.tokens import revoke_token
from tests.api.shapes import assert_graph_error

WRITES = ("post", "patch", "put", "delete")


def _operations(client) -> list[tuple[str, str]]:
    schema = json.loads(client.get("/api/schema/").content)
    guid = str(uuid.uuid4())
    ops = []
    for template, item in schema["paths"].items():
        path = template
        for name in ("policy_id", "device_id", "group_id", "member_id", "setting_id", "assignment_id"):
            path = path.replace("{" + name + "}", guid)
        ops += [(method, path) for method in item if method in ("get", "post", "patch", "put", "delete")]
    return ops


def test_the_schema_is_public_json_and_lists_every_resource(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    paths = json.loads(response.content)["paths"]
    for needed in (
        "/beta/deviceManagement/configurationPolicies/{policy_id}/assign",
        "/v1.0/deviceManagement/managedDevices/{device_id}/syncDevice",
        "/beta/deviceManagement/reports/getConfigurationPolicyDevicesReport",
        "/v1.0/groups/{group_id}/members/$ref",
        "/v1.0/groups/$count",
        "/beta/devices",
    ):
        assert needed in paths
    assert client.get("/api/schema/?format=yaml")["Content-Type"].startswith("application/vnd.oai.openapi")


def test_every_operation_needs_a_token(anon_api, client):
    operations = _operations(client)
    assert len(operations) > 40
    for method, path in operations:
        response = getattr(anon_api, method)(path)
        error = assert_graph_error(response, 401, "InvalidAuthenticationToken")
        assert response["WWW-Authenticate"].startswith("Bearer"), (method, path, error)


@pytest.mark.parametrize("header", ["Bearer nope", "Basic abc", "Bearer mdec_abcd_wrong"])
def test_bad_tokens_are_401(client, db, header):
    response = client.get("/beta/groups", headers={"Authorization": header})
    assert_graph_error(response, 401, "InvalidAuthenticationToken")


def test_a_revoked_token_is_401(client, global_admin):
    from console.roles import GLOBAL_ADMIN
    from console.tokens import create_token

    token, secret = create_token(name="t", owner=global_admin, role=GLOBAL_ADMIN)
    assert client.get("/beta/groups", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    revoke_token(token)
    assert_graph_error(client.get("/beta/groups", headers={"Authorization": f"Bearer {secret}"}), 401)


def _people(path: str) -> bool:
    return path.startswith(("/v1.0/users", "/beta/users")) or "/role" in path


def test_a_read_only_operator_reads_but_every_write_is_403(ro_api, client):
    for method, path in _operations(client):
        response = (
            getattr(ro_api, method)(path, {} if method in ("post", "patch", "put") else None)
            if method in WRITES
            else ro_api.get(path, headers={"ConsistencyLevel": "eventual"})
        )
        if method == "post" and path.endswith(("/cachedReportConfigurations", "/getCachedReport")):
            assert_graph_error(response, 400)  # reads too: allowed, but {} names no report
        elif "/cachedReportConfigurations/" in path:
            assert_graph_error(response, 404)  # a reader's own cached report (none with this id)
        elif method == "post" and "/reports/" in path:
            assert response.status_code == 200, path  # reports are reads, sent as POST
        elif method in WRITES or _people(path):
            # users and roles are read by the roles that administer them, as in Tenant administration
            assert_graph_error(response, 403, "Authorization_RequestDenied")
        else:
            assert response.status_code in (200, 404), (path, response.content[:300])


def test_an_endpoint_security_manager_writes_policies_and_groups(esm_api):
    body = {"displayName": "ESM group", "mailEnabled": False, "mailNickname": "esm", "securityEnabled": True}
    assert esm_api.post("/beta/groups", body).status_code == 201


def test_unknown_paths_and_methods_get_the_graph_envelope(ga_api):
    assert_graph_error(ga_api.get("/beta/deviceManagement/nothingHere"), 404, "ResourceNotFound")
    assert_graph_error(ga_api.get("/v1.0/"), 400, "BadRequest")
    assert_graph_error(ga_api.delete("/beta/deviceManagement/configurationPolicies"), 405, "MethodNotAllowed")
    assert_graph_error(ga_api.put("/beta/groups/" + str(uuid.uuid4()), {}), 405)


def test_non_json_bodies_and_nul_characters_are_refused(ga_api):
    response = ga_api.client.post(
        "/beta/groups", data="displayName=x", content_type="text/plain", headers=ga_api.headers
    )
    assert_graph_error(response, 415, "UnsupportedMediaType")
    assert_graph_error(ga_api.post("/beta/groups", {"displayName": "a\u0000b"}), 400, text="NUL")
    assert_graph_error(ga_api.get("/beta/groups", **{"$filter": "displayName eq 'a\u0000'"}), 400, text="NUL")
    assert_graph_error(ga_api.post("/beta/groups", '{"displayName": "a\\ud800"}'), 400, text="surrogate")


def test_the_tenant_is_throttled_with_retry_after(ga_api, settings, monkeypatch):
    from console.api.auth import _TenantThrottle

    # The counters are fixed windows: a real clock that passed a minute's end mid-test would start a fresh one.
    clock = [600.0]
    monkeypatch.setattr(_TenantThrottle, "timer", lambda self: clock[0])
    settings.GRAPH_THROTTLE_RATES = {"read": "3/m", "write": "1/m"}
    statuses = [ga_api.get("/beta/groups").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = ga_api.get("/beta/groups")
    assert_graph_error(throttled, 429, "TooManyRequests")
    assert int(throttled["Retry-After"]) > 0
    group = {"mailEnabled": False, "mailNickname": "g", "securityEnabled": True}
    assert ga_api.post("/beta/groups", {"displayName": "one", **group}).status_code == 201
    assert_graph_error(ga_api.post("/beta/groups", {"displayName": "two"}), 429)
    assert int(throttled["Retry-After"]) == 60
    clock[0] += 60  # the next window
    assert ga_api.get("/beta/groups").status_code == 200
    assert ga_api.post("/beta/groups", {"displayName": "two", **group}).status_code == 201
