"""A setting row's message is stored once in reports_storedtext and the row keeps its 8-byte key (issue 17:
storage per device). What a report shows is unchanged: the text comes back with the row."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from console.models import StoredText
from devices import channel
from reports.ingest import ReportedSetting, ingest, plan_device
from reports.models import DeviceSettingStatus, message_key
from tests.checkins import fleet as f

TEXTS = [
    "Applied: ./Vendor/MSFT/Policy/Config/Defender/PUAProtection",
    "Échec : paramètre refusé ✓",
    "x" * 500,
]


def _plan(device, reports):
    device = channel.load_device(device.pk)
    context = channel.current_context()
    resolution, _, _ = context.resolve(device)
    return plan_device(device.pk, "mde", resolution, reports, context.values)


@pytest.mark.django_db
def test_devices_that_report_the_same_message_share_one_stored_text():
    g = f.group("G")
    devices = [f.device(f"PC-{i}", groups=[g]) for i in range(3)]
    f.policy("A", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    applied = ReportedSetting("succeeded", 1, None, "Applied: PUAProtection = 1")
    realtime = ReportedSetting("succeeded", 1, None, "Applied: DisableRealtimeMonitoring = False")
    ingest([_plan(d, {f.PUA: applied, f.REALTIME: realtime}) for d in devices], timezone.now())

    assert DeviceSettingStatus.objects.count() == 6
    messages = set(StoredText.objects.values_list("text", flat=True)) - {f.PUA, f.REALTIME, "1"}
    # stored once, beside the key and value texts and the policy rows' message (reports 0013)
    assert messages == {applied.message, realtime.message, "The policy applies."}
    row = DeviceSettingStatus.objects.select_related("message_ref").get(device=devices[1], setting_key=f.PUA)
    assert row.message == "Applied: PUAProtection = 1"
    assert row.message_ref_id == message_key(row.message)


@pytest.mark.django_db
def test_a_new_message_alone_rewrites_the_row_and_the_report_shows_it():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("A", {f.PUA: 1}, include=[g])
    ingest([_plan(d, {f.PUA: ReportedSetting("error", 0, -2147467259, "Unspecified error")})], timezone.now())

    again = ingest(
        [_plan(d, {f.PUA: ReportedSetting("error", 0, -2147467259, "Access is denied.")})], timezone.now()
    )

    assert again.settings_changed[d.pk] == 1
    assert DeviceSettingStatus.objects.get(device=d, setting_key=f.PUA).message == "Access is denied."
    assert (
        ingest(
            [_plan(d, {f.PUA: ReportedSetting("error", 0, -2147467259, "Access is denied.")})], timezone.now()
        ).rows_written
        == 0
    )


@pytest.mark.django_db
def test_a_row_without_a_message_has_no_key_and_shows_an_empty_message():
    row = DeviceSettingStatus.objects.create(
        device_id=1, policy_id=1, setting_key="k", status="pending", message=""
    )
    assert row.message_ref_id is None
    assert DeviceSettingStatus.objects.get(pk=row.pk).message == ""
    assert list(StoredText.objects.values_list("text", flat=True)) == ["k"]  # the setting key, no message


@pytest.mark.django_db
def test_a_key_already_standing_for_another_text_is_refused_not_misreported():
    StoredText.objects.create(key=message_key("Applied"), text="Something else")
    with pytest.raises(ValueError, match="already stands for another text"):
        StoredText.objects.intern(["Applied"])


@pytest.mark.django_db
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's md5 computes the migration's keys"
)
def test_postgresql_computes_the_same_key_as_python():
    with connection.cursor() as cursor:
        for text in TEXTS:
            cursor.execute("SELECT ('x' || left(md5(%s), 16))::bit(64)::bigint", [text])
            assert cursor.fetchone()[0] == message_key(text)


BEFORE = [("reports", "0006_hash_unique_status_keys")]
AFTER = [("reports", "0007_status_messages")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_messages_out_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("reports", "DeviceSettingStatus")
    for index, text in enumerate([*TEXTS, TEXTS[0], ""]):
        old.objects.create(device_id=index, policy_id=1, setting_key="k", status="succeeded", message=text)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps
    rows = dict(
        new_apps.get_model("reports", "DeviceSettingStatus").objects.values_list("device_id", "message_ref")
    )
    texts = dict(new_apps.get_model("reports", "StatusMessage").objects.values_list("key", "text"))
    assert len(texts) == 3
    assert [texts.get(rows[i], "") for i in range(5)] == [*TEXTS, TEXTS[0], ""]
    assert all(rows[i] == message_key(text) for i, text in enumerate(TEXTS))

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(BEFORE)
    back = executor.loader.project_state(BEFORE).apps.get_model("reports", "DeviceSettingStatus")
    assert dict(back.objects.values_list("device_id", "message")) == dict(enumerate([*TEXTS, TEXTS[0], ""]))

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the latest schema for the other tests
