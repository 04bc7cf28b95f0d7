"""The simulated agent's state is stored once per distinct state (devices.models.AgentStateField; issue 17: storage
per device): the device row holds the key of its canonical JSON. Until devices 0014 it was packed into each row
(devices.statepack, deflated against a frozen dictionary of setting ids): that format is still read by the
migration, so its dictionary stays frozen."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core import serializers
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from console.models import StoredText
from devices import statepack
from devices.models import Device, state_key
from tests.checkins import fleet as f

# The dictionary every stored row of format version 1 was packed against: it must never change.
V1_SHA256 = "3e97da4f3574d2e4f6544b40c53a627d44eaa46c9d3230426f7ef4e48003f6e2"


def _stored_value(device):
    with connection.cursor() as cursor:
        cursor.execute("SELECT agent_state FROM devices_device WHERE id = %s", [device.pk])
        return cursor.fetchone()[0]


def _stored_bytes(device) -> bytes:
    return bytes(_stored_value(device))


def _enforced_device():
    g = f.group("Workstations")
    d = f.device("PC-001", groups=[g])
    f.policy("AV baseline", {f.REALTIME: 1, f.PUA: 1, f.SCRIPT_SCANNING: 1}, include=[g])
    f.checkin(d)
    return d


def test_the_version_1_dictionary_is_frozen():
    assert hashlib.sha256(statepack.dictionary(1)).hexdigest() == V1_SHA256


@pytest.mark.django_db
def test_devices_in_the_same_state_share_one_stored_copy_of_it():
    g = f.group("Workstations")
    one, two = f.device("PC-001", groups=[g]), f.device("PC-002", groups=[g])
    f.policy("AV baseline", {f.REALTIME: 1, f.PUA: 1, f.SCRIPT_SCANNING: 1}, include=[g])
    f.checkin(one)
    f.checkin(two)

    state = Device.objects.get(pk=one.pk).agent_state
    assert state["preferences"]["PUAProtection"] == 1
    assert f.PUA in state["managed"]
    assert Device.objects.get(pk=two.pk).agent_state == state
    key = _stored_value(one)
    assert isinstance(key, int) and key == _stored_value(
        two
    )  # 8 bytes a row, the same key for the same state
    assert StoredText.objects.filter(key=key).count() == 1
    assert json.loads(StoredText.objects.get(key=key).text) == state


@pytest.mark.django_db
def test_the_same_state_has_the_same_key_whatever_its_order():
    # the check-in pipeline keys its per-state cache on the stored key (devices.checkins.agent_apply)
    d = _enforced_device()
    state = Device.objects.get(pk=d.pk).agent_state
    reordered = dict(reversed(list(state.items())))

    assert state_key(reordered) == state_key(state) == _stored_value(d)


@pytest.mark.django_db
def test_an_empty_state_is_stored_as_null_with_no_text_and_read_back_as_an_empty_object():
    texts = StoredText.objects.count()
    d = f.device("NEW-001")

    assert _stored_value(d) is None
    assert StoredText.objects.count() == texts
    assert Device.objects.get(pk=d.pk).agent_state == {}


def test_damaged_or_unknown_bytes_are_refused_with_a_reason():
    packed = statepack.pack({"preferences": {"PUAProtection": 1}})

    with pytest.raises(statepack.PackError, match="cut short"):
        statepack.unpack(packed[:-3])
    with pytest.raises(statepack.PackError, match="damaged"):
        statepack.unpack(packed[:1] + b"\xff" * 8)
    with pytest.raises(statepack.PackError, match="unknown format version 9"):
        statepack.unpack(b"\x09" + packed[1:])


def test_a_state_that_is_not_a_json_object_is_refused_before_the_database():
    with pytest.raises(TypeError, match="JSON object"):
        Device._meta.get_field("agent_state").get_prep_value(["not", "an", "object"])


@pytest.mark.django_db
def test_a_device_survives_dumpdata_and_loaddata_with_its_state():
    d = _enforced_device()
    state = Device.objects.get(pk=d.pk).agent_state
    text = serializers.serialize("json", Device.objects.filter(pk=d.pk))
    assert json.loads(json.loads(text)[0]["fields"]["agent_state"]) == state

    Device.objects.filter(pk=d.pk).update(agent_state={})
    for obj in serializers.deserialize("json", text):
        obj.save()

    assert Device.objects.get(pk=d.pk).agent_state == state


BEFORE = [("devices", "0010_device_counts")]
AFTER = [("devices", "0011_pack_agent_state")]
STATES = [
    {},
    {
        "preferences": {"PUAProtection": 1},
        "managed": [f.PUA],
        "applied": {f.PUA: 1},
        "tamper_protection": True,
    },
    {"preferences": {}, "local": {"antivirusEngine": {"enforcementLevel": "real_time"}}, "note": "Échec ✓"},
]


@pytest.mark.django_db(transaction=True)
def test_the_migration_packs_existing_states_and_unpacks_them_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("devices", "Device")
    ids = [old.objects.create(display_name=f"M-{i}", agent_state=state).pk for i, state in enumerate(STATES)]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("devices", "Device")  # the model of that time
    assert [new.objects.get(pk=pk).agent_state for pk in ids] == STATES
    assert [len(_stored_bytes(Device(pk=pk))) > 0 for pk in ids] == [False, True, True]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(BEFORE)
    back = executor.loader.project_state(BEFORE).apps.get_model("devices", "Device")
    assert [back.objects.get(pk=pk).agent_state for pk in ids] == STATES

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the latest schema for the other tests


@pytest.mark.django_db(transaction=True)
def test_the_migration_stores_each_distinct_packed_state_once_and_packs_them_back():
    before, after = [("devices", "0013_interned_messages")], [("devices", "0014_agent_state_stored_once")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    with connection.cursor() as cursor:
        ids = []
        for i, state in enumerate([*STATES, STATES[1]]):  # the last two devices share a state
            old = executor.loader.project_state(before).apps.get_model("devices", "Device")
            ids.append(old.objects.create(display_name=f"M-{i}", agent_state=state).pk)
        cursor.execute("SELECT agent_state FROM devices_device WHERE id = %s", [ids[1]])
        packed = bytes(cursor.fetchone()[0])
    assert statepack.unpack(packed) == STATES[1]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("devices", "Device")
    assert [new.objects.get(pk=pk).agent_state for pk in ids] == [*STATES, STATES[1]]
    keys = [_stored_value(Device(pk=pk)) for pk in ids]
    assert keys[0] is None and keys[1] == keys[3] == state_key(STATES[1]) and keys[2] == state_key(STATES[2])

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(before)
    back = executor.loader.project_state(before).apps.get_model("devices", "Device")
    assert [back.objects.get(pk=pk).agent_state for pk in ids] == [*STATES, STATES[1]]
    assert _stored_bytes(Device(pk=ids[1])) == packed and _stored_bytes(Device(pk=ids[0])) == b""

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
