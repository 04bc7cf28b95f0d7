"""devices/0003 gives devices that existed before it their own Entra object id and managedDevice id (issue 14
item 4): every device gets two fresh GUIDs, all distinct, and its deviceId is kept."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("devices", "0002_onboarding_changes")]
AFTER = [("devices", "0003_distinct_graph_ids")]


@pytest.mark.django_db(transaction=True)
def test_it_gives_existing_devices_distinct_object_and_managed_device_ids():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("devices", "Device")
    device_ids = [uuid.uuid4() for _ in range(3)]
    for index, device_id in enumerate(device_ids):
        old.objects.create(device_id=device_id, display_name=f"WS-{index}", os="windows")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("devices", "Device")
    rows = list(
        new.objects.order_by("display_name").values("device_id", "entra_object_id", "managed_device_id")
    )

    assert [r["device_id"] for r in rows] == device_ids
    ids = [r[k] for r in rows for k in ("device_id", "entra_object_id", "managed_device_id")]
    assert None not in ids and len(set(ids)) == 9

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the latest schema for the other tests
