"""Fixtures for the status page tests: a small fleet checked in through the real check-in path."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.checkins import fleet as f


@dataclass
class World:
    devices: dict  # name -> Device
    policies: dict  # name -> Policy
    group: object


def build_world(extra_devices: int = 0) -> World:
    """Three Windows devices and a server in one group; "Baseline" and "Strict PUA" both set PUA protection to
    different values (a conflict on every device); "Cloud" turns behavior monitoring off, which Tamper Protection
    blocks on WS-3 (an error there, succeeded elsewhere). WS-9 is outside the group (no status)."""
    g = f.group("Workstations")
    names = ("WS-1", "WS-2", "WS-3", "SRV-1", *(f"WS-X{i:03d}" for i in range(extra_devices)))
    devices = {
        name: f.device(
            name,
            os="windows_server" if name.startswith("SRV") else "windows",
            groups=[g],
            tamper=name == "WS-3",
        )
        for name in names
    }
    devices["WS-9"] = f.device("WS-9")
    policies = {
        "Baseline": f.policy("Baseline", {f.PUA: 1, f.REALTIME: 1}, include=[g]),
        "Strict PUA": f.policy("Strict PUA", {f.PUA: 2}, include=[g]),
        "Cloud": f.policy("Cloud", {f.CLOUD: 1, f.BEHAVIOR: 0}, include=[g]),
    }
    f.checkin(*(devices[name] for name in names))
    return World(devices, policies, g)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The overview caches tenant-wide counts by version; test databases reuse primary keys."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(db) -> World:
    return build_world()
