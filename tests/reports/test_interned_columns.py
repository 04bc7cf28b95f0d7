"""Setting keys and values are stored once (console.interned, issue 17: storage per device): a status row holds
8-byte keys, and everything that reads, filters, sorts or searches them sees the texts as before."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldError
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Exists, OuterRef
from django.utils import timezone

from console import interned
from console.interned import canonical_json, text_key
from console.models import StoredText
from reports.ingest import ReportedSetting, ingest
from reports.models import DeviceEffectiveSetting, DeviceSettingStatus
from tests.checkins import fleet as f
from tests.reports.test_status_messages import _plan

RULES = [{"name": "Block Telnet", "ports": ["23"]}, {"name": "Teams", "ports": ["3478-3481"]}]


def _raw(column: str, pk: tuple):
    """The column as stored, of the row with primary key (device, policy, setting key as text)."""
    device_id, policy_id, key = pk
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM reports_devicesettingstatus"
            " WHERE device_id = %s AND policy_id = %s AND setting_key = %s",
            [device_id, policy_id, text_key(key)],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_check_in_writes_the_keys_of_the_setting_and_value_and_reads_back_the_texts():
    g = f.group("G")
    d = f.device("PC-1", groups=[g])
    f.policy("A", {f.PUA: 1, f.REALTIME: 1}, include=[g])
    ingest([_plan(d, {f.PUA: ReportedSetting("succeeded", 1, None, "Applied")})], timezone.now())

    row = DeviceSettingStatus.objects.get(device=d, setting_key=f.PUA)
    assert (row.setting_key, row.value, row.status) == (f.PUA, 1, "succeeded")
    assert int(_raw("setting_key", row.pk)) == text_key(f.PUA)
    assert int(_raw("value", row.pk)) == text_key("1")
    stored = dict(StoredText.objects.values_list("key", "text"))
    assert stored[text_key(f.PUA)] == f.PUA and stored[text_key("1")] == "1"


@pytest.mark.django_db
def test_values_keep_their_type_and_a_list_read_back_is_the_readers_own():
    rows = [
        DeviceSettingStatus.objects.create(
            device_id=1, policy_id=1, setting_key=f"k{i}", status="pending", value=v
        )
        for i, v in enumerate([1, 1.0, "1", True, None, RULES])
    ]
    back = [DeviceSettingStatus.objects.get(pk=r.pk).value for r in rows]
    assert back == [1, 1.0, "1", True, None, RULES]
    assert [type(v) for v in back[:4]] == [int, float, str, bool]
    assert _raw("value", rows[4].pk) is None  # no value: SQL NULL, no stored text

    first = DeviceSettingStatus.objects.get(pk=rows[5].pk).value
    first[0]["name"] = "changed"
    assert DeviceSettingStatus.objects.get(pk=rows[5].pk).value == RULES


@pytest.mark.django_db
def test_filters_sorting_and_searching_go_by_the_text():
    keys = ["zeta_setting", "alpha_setting", "Mid_Firewall_setting"]
    for i, key in enumerate(keys):
        DeviceSettingStatus.objects.create(
            device_id=1, policy_id=1, setting_key=key, status="succeeded", value=i
        )
    rows = DeviceSettingStatus.objects.all()
    assert list(rows.filter(setting_key="zeta_setting").values_list("value", flat=True)) == [0]
    assert rows.filter(setting_key__in=["alpha_setting", "nope"]).count() == 1
    assert list(rows.filter(setting_key__icontains="FIREWALL").values_list("setting_key", flat=True)) == [
        keys[2]
    ]
    assert list(rows.filter(setting_key__startswith="al").values_list("setting_key", flat=True)) == [keys[1]]
    assert list(rows.order_by("setting_key_text__text").values_list("setting_key", flat=True)) == sorted(keys)
    assert rows.filter(value=2).get().setting_key == keys[2]
    with pytest.raises(FieldError):  # keys have no order: a range over them would mean nothing
        list(rows.filter(setting_key__gt="m"))


@pytest.mark.django_db
def test_interned_columns_compare_with_each_other_across_tables():
    d = f.device("PC-7")
    DeviceSettingStatus.objects.create(device=d, policy_id=1, setting_key=f.PUA, status="succeeded", value=1)
    DeviceEffectiveSetting.objects.create(
        device=d, setting_key=f.PUA, value=1, configured_by="gpo", changed_at=timezone.now()
    )
    same = DeviceSettingStatus.objects.filter(
        device_id=OuterRef("device_id"), setting_key=OuterRef("setting_key")
    )
    assert DeviceEffectiveSetting.objects.filter(Exists(same)).get().setting_key == f.PUA


@pytest.mark.django_db
def test_a_key_that_stands_for_another_text_is_refused():
    StoredText.objects.create(key=text_key("k"), text="another text")
    with pytest.raises(ValueError, match="another text"):
        DeviceSettingStatus.objects.create(device_id=1, policy_id=1, setting_key="k", status="pending")


@pytest.mark.django_db(transaction=True)
def test_a_text_lost_to_a_rollback_or_an_emptied_table_is_stored_again():
    with pytest.raises(RuntimeError), transaction.atomic():
        DeviceSettingStatus.objects.create(
            device_id=1, policy_id=1, setting_key="rolled_back", status="pending"
        )
        raise RuntimeError
    assert not StoredText.objects.filter(text="rolled_back").exists()

    row = DeviceSettingStatus.objects.create(
        device_id=1, policy_id=1, setting_key="rolled_back", status="pending"
    )
    assert StoredText.objects.filter(key=text_key("rolled_back"), text="rolled_back").exists()
    interned._TEXTS.clear()  # another process: reads the text from the table
    assert DeviceSettingStatus.objects.get(pk=row.pk).setting_key == "rolled_back"

    StoredText.objects.all().delete()  # emptied under a running process (a restore, a benchmark's TRUNCATE)
    DeviceSettingStatus.objects.create(device_id=2, policy_id=1, setting_key="rolled_back", status="pending")
    assert StoredText.objects.filter(key=text_key("rolled_back"), text="rolled_back").exists()


@pytest.mark.django_db
def test_canonical_json_sorts_keys_and_drops_spaces():
    assert canonical_json({"b": [1, "é"], "a": None}) == '{"a":null,"b":[1,"é"]}'


BEFORE = [("reports", "0008_policy_status_device_name")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_keys_and_values_out_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    old = old_apps.get_model("reports", "DeviceSettingStatus")
    old_effective = old_apps.get_model("reports", "DeviceEffectiveSetting")
    values = [1, "true", RULES, None, {"b": 2, "a": "é"}]
    for index, value in enumerate(values):
        old.objects.create(
            device_id=index, policy_id=1, setting_key=f"key_{index % 2}", status="succeeded", value=value
        )
    device = old_apps.get_model("devices", "Device").objects.create(display_name="PC-1")
    old_effective.objects.create(
        device_id=device.pk, setting_key="key_1", value=5, configured_by="gpo", changed_at=timezone.now()
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # 0009 and the later ones (the texts' table moves)
    interned._TEXTS.clear()
    interned.InternedJSONField._DECODED.clear()
    rows = DeviceSettingStatus.objects.order_by("device_id")
    assert [(r.setting_key, r.value) for r in rows] == [(f"key_{i % 2}", v) for i, v in enumerate(values)]
    assert [int(_raw("value", r.pk)) for r in rows if r.value is not None] == [
        text_key(canonical_json(v)) for v in values if v is not None
    ]
    assert DeviceEffectiveSetting.objects.get().setting_key == "key_1"

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(BEFORE)
    back = executor.loader.project_state(BEFORE).apps.get_model("reports", "DeviceSettingStatus")
    assert [(r.setting_key, r.value) for r in back.objects.order_by("device_id")] == [
        (f"key_{i % 2}", v) for i, v in enumerate(values)
    ]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
