from __future__ import annotations

import csv
import io

from console import audit
from console.models import AuditEvent, TenantSettings


def test_record_keeps_actor_object_and_before_after(db, global_admin):
    tenant = TenantSettings.load()
    actor = audit.Actor(user=global_admin, name="ga", source="ui", ip="10.1.2.3")
    with audit.acting_as(actor):
        event = audit.record("tenant.update", tenant, before={"a": 1}, after={"a": 2})
    assert (event.actor, event.actor_name, event.ip, event.source) == (global_admin, "ga", "10.1.2.3", "ui")
    assert event.object_type == "Tenant Settings"
    assert (event.before, event.after) == ({"a": 1}, {"a": 2})


def test_without_a_person_the_system_is_the_actor(db):
    event = audit.record("checkin.schedule", object_type="Device", object_id="1", object_repr="PC-1")
    assert event.actor_name == "System"
    assert event.source == "system"


def test_changed_keeps_only_what_differs():
    assert audit.changed({"a": 1, "b": 2}, {"a": 1, "b": 3}) == ({"b": 2}, {"b": 3})


def test_audit_log_filters_by_actor_action_type_and_date(ga_client):
    audit.record(
        "policy.create", object_type="Policy", object_repr="AV baseline", actor=audit.Actor(name="alice")
    )
    audit.record("device.delete", object_type="Device", object_repr="PC-9", actor=audit.Actor(name="bob"))
    page = ga_client.get("/tenant-admin/audit-logs/", {"actor": "alice"}).content.decode()
    assert "AV baseline" in page and "PC-9" not in page
    page = ga_client.get("/tenant-admin/audit-logs/", {"object_type": "Device"}).content.decode()
    assert "PC-9" in page and "AV baseline" not in page
    page = ga_client.get("/tenant-admin/audit-logs/", {"start": "2999-01-01"}).content.decode()
    assert "PC-9" not in page


def test_audit_log_exports_csv_with_before_and_after(ga_client):
    audit.record("policy.update", object_type="Policy", object_repr="FW", before={"x": 1}, after={"x": 2})
    response = ga_client.get("/tenant-admin/audit-logs/", {"export": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:4] == ["Date", "Initiated by", "Source", "Activity"]
    assert rows[1][3] == "policy.update"
    assert rows[1][-2:] == ['{"x": 1}', '{"x": 2}']


def test_a_bad_date_filter_shows_an_error_and_does_not_crash(ga_client):
    response = ga_client.get("/tenant-admin/audit-logs/", {"start": "not-a-date"})
    assert response.status_code == 200
    assert b"Enter a valid date" in response.content


def test_read_only_operator_cannot_export(reader_client):
    assert reader_client.get("/tenant-admin/audit-logs/", {"export": "csv"}).status_code == 403


def test_audit_events_are_newest_first(db):
    audit.record("a.first")
    audit.record("a.second")
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["a.second", "a.first"]


def _audit_log_queries(client, rows: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    AuditEvent.objects.all().delete()
    for i in range(rows):
        audit.record(
            "policy.update", object_type="Policy", object_repr=f"P{i}", before={"x": i}, after={"x": i + 1}
        )
    client.get("/tenant-admin/audit-logs/")  # session and caches warm
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/tenant-admin/audit-logs/")
    assert response.status_code == 200
    assert response.content.count(b"policy.update") == min(rows, 50)
    return len(captured)


def test_audit_log_query_count_does_not_grow_with_rows_shown(ga_client):
    assert _audit_log_queries(ga_client, 10) == _audit_log_queries(ga_client, 50)


def test_the_changes_column_shows_each_property_old_and_new_escaped(ga_client):
    AuditEvent.objects.all().delete()
    audit.record(
        "policy.update", object_type="policy", object_id="1", object_repr="<b>Baseline</b>",
        before={"name": "Old <name>", "count": 1}, after={"name": "New & better", "count": 2, "added": [1, 2]},
    )  # fmt: skip
    audit.record("device.sync", object_type="device", object_id="2", object_repr="PC-1")
    html = ga_client.get("/tenant-admin/audit-logs/").content.decode()
    rows = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("<tr>")
    assert (
        '<td class="mono">name</td><td class="mono">Old &lt;name&gt;</td><td class="mono">New &amp; better</td>'
        in html
    )
    assert '<td class="mono">added</td><td class="mono"></td><td class="mono">[1, 2]</td>' in html
    assert "&lt;b&gt;Baseline&lt;/b&gt;" in html and "<b>Baseline</b>" not in html
    assert sum("<details>" in row for row in rows) == 1  # the sync has no changes: "—"
    assert '<span class="mono">device.sync</span>' in html and "System" in html
